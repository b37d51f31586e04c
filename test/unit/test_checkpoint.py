"""Checkpoint loading: official .pth layout (safe, strict, readable errors) and our safetensors format."""

import collections

import pytest
import torch

from worldfm_ros.errors import CheckpointError
from worldfm_ros.model.checkpoint import (
    infer_config,
    load_model,
    load_official_checkpoint,
    load_official_model,
    load_official_state_dict,
    read_model_config,
    read_model_metadata,
    save_model,
)
from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.dit import CameraInputs, WorldFMDiT

from official import official_layout

CFG = DiTConfig.tiny()


def _random_model(cfg: DiTConfig = CFG, seed: int = 0) -> WorldFMDiT:
    torch.manual_seed(seed)
    model = WorldFMDiT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.2)
    return model


def _inputs(cfg: DiTConfig = CFG):
    g = torch.Generator().manual_seed(5)
    shape = (1, cfg.latent_channels, cfg.input_size, cfg.input_size)
    return torch.randn(shape, generator=g), torch.tensor([999]), torch.randn(shape, generator=g), \
        torch.randn(shape, generator=g)


@pytest.fixture(scope="module")
def source() -> WorldFMDiT:
    return _random_model()


@pytest.fixture
def official_file(tmp_path, source):
    path = tmp_path / "worldfm_2-step.pth"
    torch.save({"state_dict": official_layout(source), "step": 4000}, path)
    return path


def test_official_checkpoint_loads_and_reproduces_outputs(official_file, source):
    model = WorldFMDiT(CFG).eval()
    load_official_checkpoint(model, official_file)
    with torch.no_grad():
        assert torch.equal(model(*_inputs()), source(*_inputs()))


def test_official_state_dict_drops_exactly_the_unused_keys(official_file, source):
    state = load_official_state_dict(official_file, CFG)
    assert set(state) == set(source.state_dict())


def test_plucker_model_keeps_the_official_plucker_weights(official_file):
    cfg = DiTConfig.tiny(camera_encoding="plucker")
    model = WorldFMDiT(cfg)
    load_official_checkpoint(model, official_file)
    expected = torch.load(official_file, weights_only=True)["state_dict"]["plucker_proj.2.weight"]
    assert torch.equal(model.plucker_proj[2].weight, expected)


def test_ema_weights_are_used_only_when_asked(tmp_path, source):
    other = _random_model(seed=1)
    path = tmp_path / "ema.pth"
    torch.save({"state_dict": official_layout(source), "state_dict_ema": official_layout(other)}, path)
    plain = load_official_state_dict(path, CFG)
    ema = load_official_state_dict(path, CFG, use_ema=True)
    assert torch.equal(plain["t_block.1.weight"], source.t_block[1].weight)
    assert torch.equal(ema["t_block.1.weight"], other.t_block[1].weight)


def test_module_prefix_is_stripped(tmp_path, source):
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in official_layout(source).items()}}, path)
    model = WorldFMDiT(CFG).eval()
    load_official_checkpoint(model, path)
    with torch.no_grad():
        assert torch.equal(model(*_inputs()), source(*_inputs()))


def test_missing_and_misshapen_keys_are_listed_in_one_error_naming_the_file(tmp_path, source):
    state = official_layout(source)
    del state["blocks.1.attn.qkv.weight"]
    state["x_embedder.proj.weight"] = torch.randn(1152, 4, 2, 2)
    state["blocks.0.attn.q_norm.weight"] = torch.randn(16)
    path = tmp_path / "worldfm_2-step.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_official_checkpoint(WorldFMDiT(CFG), path)
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    assert "1 missing key (blocks.1.attn.qkv.weight)" in message
    assert "1 unexpected key (blocks.0.attn.q_norm.weight)" in message
    assert "1 shape mismatch (x_embedder.proj.weight: checkpoint (1152, 4, 2, 2) vs model (64, 4, 2, 2))" in message
    assert "\n" not in message


def test_long_key_lists_are_abbreviated(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"state_dict": {"x_embedder.proj.bias": torch.zeros(64)}}, path)
    with pytest.raises(CheckpointError, match=r"missing keys \((\S+, ){5}\.\.\.\)"):
        load_official_state_dict(path, CFG)


class TrainerState:
    """Stands for any Python object a training checkpoint might pickle alongside the weights."""

    def __init__(self) -> None:
        self.epoch = 3


def test_pickle_with_a_custom_class_is_refused(tmp_path, source):
    path = tmp_path / "trainer.pth"
    torch.save({"state_dict": collections.OrderedDict(official_layout(source)), "trainer": TrainerState()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_official_state_dict(path, CFG)


def test_unreadable_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pth"):
        load_official_state_dict(path, CFG)


@pytest.mark.parametrize("content", [b"not a checkpoint", bytes(range(256)) * 16], ids=["text", "random"])
def test_refusal_never_advises_loading_unsafely(tmp_path, content):
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_official_state_dict(path, CFG)
    assert "weights_only" not in str(info.value) and "will likely succeed" not in str(info.value)


def test_config_is_inferred_from_the_state_dict(source):
    state = official_layout(source)
    assert infer_config(state, num_heads=4) == CFG


def test_xl_2_config_is_inferred_from_released_shapes():
    with torch.device("meta"):
        state = dict(WorldFMDiT(DiTConfig.xl_2()).state_dict())
        state["pos_embed"] = torch.empty(1, 1024, 1152)
    assert infer_config(state) == DiTConfig.xl_2()


def test_safetensors_round_trip_restores_config_metadata_and_outputs(tmp_path):
    cfg = DiTConfig.tiny(camera_encoding="prope", pe_interpolation=0.5)
    model = _random_model(cfg)
    path = save_model(model, tmp_path / "frame_model.safetensors", metadata={"steps": 1200, "data": "synthetic"})
    assert read_model_config(path) == cfg
    assert read_model_metadata(path) == {"steps": 1200, "data": "synthetic"}
    loaded = load_model(path)
    assert loaded.cfg == cfg and not loaded.training
    K = torch.tensor([[8.0, 0, 8], [0, 8.0, 8], [0, 0, 1]])
    cams = CameraInputs.from_c2w(torch.eye(4), torch.eye(4), K, K, (16, 16))
    with torch.no_grad():
        assert torch.equal(loaded(*_inputs(cfg), cameras=cams), model(*_inputs(cfg), cameras=cams))


def test_load_model_casts_to_the_requested_dtype(tmp_path, source):
    path = save_model(source, tmp_path / "m.safetensors")
    model = load_model(path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.pos_embed.dtype == torch.bfloat16


def test_safetensors_with_wrong_weights_is_a_checkpoint_error(tmp_path, source):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = save_model(source, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys() if k != "final_layer.linear.bias"}
    save_file(state, str(path), metadata=header)
    with pytest.raises(CheckpointError, match="1 missing key \\(final_layer.linear.bias\\)"):
        load_model(path)


def test_foreign_safetensors_file_is_rejected(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "vae.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a worldfm_ros model file"):
        load_model(path)


def test_official_model_is_built_without_random_init_and_matches(official_file, source):
    model = load_official_model(official_file, cfg=CFG)
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(*_inputs()), source(*_inputs()))


def test_official_model_with_uninferable_heads_names_the_file(official_file):
    with pytest.raises(CheckpointError, match=r"worldfm_2-step.pth: cannot infer num_heads"):
        load_official_model(official_file)
