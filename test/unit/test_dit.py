"""WorldFMDiT: the released network's structure, embeddings and conditioning, on tiny configs."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worldfm_ros.errors import ConfigError
from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.dit import CameraInputs, WorldFMDiT, sincos_pos_embed_2d, timestep_embedding


def _random_model(cfg: DiTConfig, seed: int = 0) -> WorldFMDiT:
    """A model whose every parameter is random (the from-scratch init zeroes gates and output)."""
    torch.manual_seed(seed)
    model = WorldFMDiT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.2)
    return model


def _inputs(cfg: DiTConfig, batch: int = 2, seed: int = 1, size: int | None = None):
    g = torch.Generator().manual_seed(seed)
    side = size or cfg.input_size
    shape = (batch, cfg.latent_channels, side, side)
    return (torch.randn(shape, generator=g), torch.tensor([999.0, 200.0][:batch]),
            torch.randn(shape, generator=g), torch.randn(shape, generator=g))


def _cameras(batch: int = 2) -> CameraInputs:
    c2w = torch.eye(4).repeat(batch, 1, 1)
    c2w[:, 0, 3] = 0.5
    K = torch.tensor([[10.0, 0, 8], [0, 10.0, 8], [0, 0, 1]])
    return CameraInputs.from_c2w(torch.eye(4), c2w, K, K, (16, 16))


def _official_order_forward(model: WorldFMDiT, x_t, t, render, reference) -> torch.Tensor:
    """The release's forward as WORLDFM_OFFICIAL.md §4.3-4.8 words it: merged-width row-major
    tokens, final layer and unpatchify on the whole canvas, then the first third of the columns."""
    cfg = model.cfg
    p, D, H = cfg.patch_size, cfg.hidden_size, cfg.num_heads
    B, _, h, w = x_t.shape
    x = torch.cat([x_t, render, reference], dim=3)
    x = F.conv2d(x, model.x_embedder.proj.weight, model.x_embedder.proj.bias, stride=p)
    gh, gW = x.shape[2:]
    x = x.flatten(2).transpose(1, 2)
    x = x + torch.from_numpy(sincos_pos_embed_2d(D, (gh, gW), cfg.base_size, cfg.pe_interpolation)).float()
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half) / half)
    f = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1)
    te = model.t_embedder.mlp[2](F.silu(model.t_embedder.mlp[0](f)))
    t0 = model.t_block[1](F.silu(te))
    for blk in model.blocks:
        s = (blk.scale_shift_table[None] + t0.reshape(B, 6, D))
        sh1, sc1, g1, sh2, sc2, g2 = [s[:, i:i + 1] for i in range(6)]
        y = F.layer_norm(x, (D,), eps=1e-6) * (1 + sc1) + sh1
        qkv = blk.attn.qkv(y).reshape(B, -1, 3, H, D // H)
        q, k, v = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H), dim=-1) @ v
        x = x + g1 * blk.attn.proj(a.transpose(1, 2).reshape(B, -1, D))
        y = F.layer_norm(x, (D,), eps=1e-6) * (1 + sc2) + sh2
        x = x + g2 * blk.mlp.fc2(F.gelu(blk.mlp.fc1(y), approximate="tanh"))
    shift, scale = (model.final_layer.scale_shift_table[None] + te[:, None]).chunk(2, dim=1)
    out = model.final_layer.linear(F.layer_norm(x, (D,), eps=1e-6) * (1 + scale) + shift)
    c = cfg.out_channels
    canvas = torch.zeros(B, c, gh * p, gW * p)
    for i in range(gh):
        for j in range(gW):
            for a_ in range(p):
                for b_ in range(p):
                    idx = (p * a_ + b_) * c
                    canvas[:, :, p * i + a_, p * j + b_] = out[:, i * gW + j, idx:idx + c]
    return canvas[:, :, :, :w]


def test_output_is_the_target_slot_with_learned_sigma_channels():
    cfg = DiTConfig.tiny()
    out = _random_model(cfg)(*_inputs(cfg))
    assert out.shape == (2, 2 * cfg.latent_channels, cfg.input_size, cfg.input_size)


def test_output_without_learn_sigma_has_latent_channels():
    cfg = DiTConfig.tiny(learn_sigma=False)
    assert _random_model(cfg)(*_inputs(cfg)).shape == (2, cfg.latent_channels, 8, 8)


def test_forward_matches_the_released_token_order_and_full_canvas_final_layer():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    args = _inputs(cfg)
    with torch.no_grad():
        ours = model(*args)
        reference = _official_order_forward(model, *args)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def test_position_embedding_squeezes_the_three_slots_into_base_size_columns():
    dim, base = 8, 4
    emb = sincos_pos_embed_2d(dim, (4, 12), base_size=base)
    omega = 1.0 / 10000 ** (np.arange(2) / 2.0)
    i, j = 1, 5  # token of row 1, column 5 of the 4 x 12 merged grid: p_x = 5 / 3, p_y = 1
    px, py = j / 3, 1.0
    expected = np.concatenate([np.sin(px * omega), np.cos(px * omega), np.sin(py * omega), np.cos(py * omega)])
    np.testing.assert_allclose(emb[i * 12 + j], expected, rtol=0, atol=1e-15)


def test_position_embedding_of_xl_puts_the_reference_slot_at_21_333():
    emb = sincos_pos_embed_2d(1152, (32, 96), base_size=32)
    # First quarter = sin(p_x * w) with w_0 = 1, so the first entry is sin(p_x) of column 64.
    assert emb[64, 0] == pytest.approx(math.sin(64 / 3), abs=1e-15)
    assert emb[64, 288] == pytest.approx(math.cos(64 / 3), abs=1e-15)
    assert emb[96 * 5 + 64, 576] == pytest.approx(math.sin(5.0), abs=1e-15)


def test_pe_interpolation_divides_positions():
    a = sincos_pos_embed_2d(8, (2, 6), base_size=2, pe_interpolation=2.0)
    b = sincos_pos_embed_2d(8, (4, 12), base_size=2, pe_interpolation=1.0)
    # p_x = j / 3 / 2 on the half grid equals j' / 6 on the full one for j' = j.
    assert a[5, 0] == pytest.approx(b[5, 0])


def test_timestep_embedding_is_cos_then_sin():
    emb = timestep_embedding(torch.tensor([0.0, 999.0]))
    assert emb.shape == (2, 256)
    torch.testing.assert_close(emb[0, :128], torch.ones(128))
    torch.testing.assert_close(emb[0, 128:], torch.zeros(128))
    nu = math.exp(-math.log(10000) * 3 / 128)
    assert emb[1, 3].item() == pytest.approx(math.cos(999 * nu), abs=1e-4)
    assert emb[1, 131].item() == pytest.approx(math.sin(999 * nu), abs=1e-4)


def test_xl_2_has_the_released_live_parameter_count():
    with torch.device("meta"):
        model = WorldFMDiT(DiTConfig.xl_2())
    assert sum(p.numel() for p in model.parameters()) == 456_043_424


def test_reference_latent_changes_the_output():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    x_t, t, render, reference = _inputs(cfg)
    with torch.no_grad():
        a = model(x_t, t, render, reference)
        b = model(x_t, t, render, reference + 1.0)
    assert (a - b).abs().max() > 1e-3


def test_render_latent_changes_the_output():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    x_t, t, render, reference = _inputs(cfg)
    with torch.no_grad():
        a = model(x_t, t, render, reference)
        b = model(x_t, t, render.flip(-1), reference)
    assert (a - b).abs().max() > 1e-3


def test_timestep_changes_the_output():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    x_t, _, render, reference = _inputs(cfg)
    with torch.no_grad():
        a = model(x_t, torch.tensor([999, 999]), render, reference)
        b = model(x_t, torch.tensor([200, 200]), render, reference)
    assert (a - b).abs().max() > 1e-3


def test_forward_is_deterministic_and_batch_independent():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    x_t, t, render, reference = _inputs(cfg)
    with torch.no_grad():
        a = model(x_t, t, render, reference)
        b = model(x_t, t, render, reference)
        single = model(x_t[1:], t[1:], render[1:], reference[1:])
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:], single, atol=1e-5, rtol=1e-5)


def test_scalar_timestep_is_broadcast_over_the_batch():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    x_t, _, render, reference = _inputs(cfg)
    with torch.no_grad():
        a = model(x_t, torch.tensor(999), render, reference)
        b = model(x_t, torch.tensor([999, 999]), render, reference)
    assert torch.equal(a, b)


def test_fresh_model_predicts_zero_and_every_block_starts_as_identity():
    cfg = DiTConfig.tiny()
    model = WorldFMDiT(cfg)
    assert torch.count_nonzero(model(*_inputs(cfg))) == 0
    for block in model.blocks:
        assert torch.count_nonzero(block.scale_shift_table[[2, 5]]) == 0
        assert torch.count_nonzero(block.scale_shift_table[[0, 1, 3, 4]]) > 0


def test_latents_of_another_size_use_their_own_position_grid():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    with torch.no_grad():
        out = model(*_inputs(cfg, size=12))
    assert out.shape == (2, 8, 12, 12) and torch.isfinite(out).all()


def test_bfloat16_model_agrees_with_float32():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    args = _inputs(cfg)
    with torch.no_grad():
        full = model(*args)
        low = model.to(torch.bfloat16)(*[a.to(torch.bfloat16) if a.is_floating_point() and a.ndim == 4 else a
                                         for a in args])
    assert low.dtype == torch.bfloat16
    assert (low.float() - full).abs().max() < 0.05 * full.abs().max()


def test_camera_inputs_are_ignored_without_a_camera_encoding():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    args = _inputs(cfg)
    with torch.no_grad():
        assert torch.equal(model(*args), model(*args, cameras=_cameras()))


def test_fresh_plucker_projection_leaves_the_plain_model_unchanged():
    plain = _random_model(DiTConfig.tiny())
    plucker = WorldFMDiT(DiTConfig.tiny(camera_encoding="plucker"))
    missing, unexpected = plucker.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and sorted(missing) == ["plucker_proj.0.bias", "plucker_proj.0.weight",
                                                    "plucker_proj.2.bias", "plucker_proj.2.weight"]
    args = _inputs(plain.cfg)
    with torch.no_grad():
        torch.testing.assert_close(plucker.eval()(*args, cameras=_cameras()), plain(*args))


def test_trained_plucker_projection_makes_the_output_depend_on_the_cameras():
    model = _random_model(DiTConfig.tiny(camera_encoding="plucker"))
    args = _inputs(model.cfg)
    moved = _cameras()
    moved.viewmats[:, 2, 0, 3] += 1.0
    with torch.no_grad():
        assert (model(*args, cameras=_cameras()) - model(*args, cameras=moved)).abs().max() > 1e-3


def test_camera_encoding_without_cameras_is_a_config_error():
    model = _random_model(DiTConfig.tiny(camera_encoding="prope"))
    with pytest.raises(ConfigError, match="cameras: required"):
        model(*_inputs(model.cfg))


def test_mask_channel_goes_to_the_render_slot_and_is_required():
    cfg = DiTConfig.tiny(use_mask_channel=True)
    model = _random_model(cfg)
    assert model.x_embedder.proj.weight.shape[1] == cfg.latent_channels + 1
    args = _inputs(cfg)
    with pytest.raises(ConfigError, match="mask"):
        model(*args)
    full, half = torch.ones(2, 1, 8, 8), torch.ones(2, 1, 8, 8)
    half[..., 4:] = 0
    with torch.no_grad():
        assert (model(*args, mask=full) - model(*args, mask=half)).abs().max() > 1e-3


def test_mismatched_condition_shape_is_a_config_error():
    cfg = DiTConfig.tiny()
    model = _random_model(cfg)
    x_t, t, render, reference = _inputs(cfg)
    with pytest.raises(ConfigError, match="reference: expected"):
        model(x_t, t, render, reference[:, :, :4])


def test_config_round_trips_through_a_dict():
    cfg = DiTConfig.small(camera_encoding="prope", pe_interpolation=0.5)
    assert DiTConfig.from_dict(cfg.to_dict()) == cfg
    assert DiTConfig.named("xl_2") == DiTConfig.xl_2()


def test_base_size_follows_input_size():
    cfg = dataclasses.replace(DiTConfig.xl_2(), input_size=128)
    assert cfg.base_size == 64 and DiTConfig.xl_2().base_size == 32


@pytest.mark.parametrize("changes, field", [
    ({"hidden_size": 66}, "hidden_size"),
    ({"camera_encoding": "rays"}, "camera_encoding"),
    ({"num_views": 2}, "num_views"),
    ({"input_size": 9}, "input_size"),
    ({"depth": 0}, "depth"),
    ({"hidden_size": 72, "num_heads": 4, "camera_encoding": "prope"}, "camera_encoding"),
])
def test_invalid_config_names_the_field(changes, field):
    with pytest.raises(ConfigError, match=f"DiTConfig.{field}"):
        DiTConfig.tiny(**changes)


def test_unknown_config_key_is_rejected():
    with pytest.raises(ConfigError, match="unknown key"):
        DiTConfig.from_dict({**DiTConfig.tiny().to_dict(), "qk_norm": True})


def test_xl_position_table_rounds_to_fp16_like_a_direct_cast():
    table = torch.from_numpy(sincos_pos_embed_2d(1152, (32, 96), base_size=32))
    assert torch.equal(table.float().half(), table.half())


def test_wrong_number_of_timesteps_is_a_config_error():
    cfg = DiTConfig.tiny()
    x_t, _, render, reference = _inputs(cfg)
    with pytest.raises(ConfigError, match="t: expected 2 timesteps"):
        _random_model(cfg)(x_t, torch.tensor([1.0, 2.0, 3.0]), render, reference)
