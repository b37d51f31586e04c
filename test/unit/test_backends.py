"""Frame backends: registry, the torch backend through the frame pipeline, TensorRT availability."""

import dataclasses

import numpy as np
import pytest
import torch

from worldfm_ros.backends.fill_backend import FillBackend
from worldfm_ros.backends.base import FrameRequest
from worldfm_ros.backends.frame_model import FrameModelPipeline, resized_intrinsics
from worldfm_ros.backends.registry import available_backends, backend_class, create_backend
from worldfm_ros.backends.tensorrt_backend import engine_cache_key
from worldfm_ros.errors import BackendUnavailable, ConfigError
from worldfm_ros.model.codec import PixelCodec, make_codec, uint8_to_unit, unit_to_uint8
from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.dit import WorldFMDiT
from worldfm_ros.model.sampler import DistilledSampler, NoiseSource, draw_noise
from worldfm_ros.model.schedule import NoiseSchedule
from worldfm_ros.render.fill import push_pull_fill

SIZE = 16  # image side: 8x8 latents of a 2x space-to-depth pixel codec


def tiny_model(**changes) -> WorldFMDiT:
    torch.manual_seed(0)
    cfg = dataclasses.replace(DiTConfig.tiny(), latent_channels=12, input_size=SIZE // 2, **changes)
    model = WorldFMDiT(cfg).eval()
    # Random, non-zero output layers so that frames depend on every input.
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0.0, 0.05)
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def request(size=SIZE, seed=None, reference_id=0, with_reference=True, image_seed=0) -> FrameRequest:
    rng = np.random.default_rng(image_seed)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    valid = rng.random((size, size)) > 0.3
    rgb[~valid] = 0
    return FrameRequest(render_rgb=rgb, render_depth=valid.astype(np.float32), render_valid=valid,
                        K=np.eye(3), c2w=np.eye(4),
                        reference_rgb=rng.integers(0, 256, (size, size, 3), dtype=np.uint8) if with_reference else None,
                        reference_id=reference_id if with_reference else -1, seed=seed)


def test_registry_names_every_backend():
    assert {"anchor", "torch", "onnxruntime", "tensorrt"} <= set(available_backends())


def test_unknown_backend_name_is_unavailable():
    with pytest.raises(BackendUnavailable, match="unknown name 'warp'"):
        create_backend("warp")


def test_unknown_backend_option_is_unavailable_naming_it(model):
    with pytest.raises(BackendUnavailable, match="stepz"):
        create_backend("torch", model=model, stepz=2)


def test_node_config_maps_onto_torch_options():
    from worldfm_ros.backends.config import BackendConfig

    cfg = BackendConfig(name="torch", model="w/worldfm_1-step.pth", vae="w/vae", steps=1, device="cpu",
                        dtype="auto", seed=-1, reuse_noise=False, profile="release", correction="everywhere")
    options = backend_class("torch").config_options(cfg)
    seed = options.pop("seed")
    assert isinstance(seed, int) and seed >= 0
    assert options == {"model_path": "w/worldfm_1-step.pth", "vae_path": "w/vae", "steps": 1, "device": "cpu",
                       "dtype": "fp32", "reuse_noise": False, "profile": "release", "correction": "everywhere"}


def test_node_config_without_a_model_uses_the_bundled_one():
    from worldfm_ros.resources import default_model_path
    from worldfm_ros.backends.config import BackendConfig

    options = backend_class("torch").config_options(BackendConfig(device="cpu"))
    assert options["model_path"] == str(default_model_path())
    assert default_model_path().is_file()


def test_node_config_passes_onnx_files_as_onnx_path():
    from worldfm_ros.backends.config import BackendConfig

    options = backend_class("onnxruntime").config_options(BackendConfig(model="dit.onnx", device="cpu"))
    assert options["onnx_path"] == "dit.onnx" and "model_path" not in options
    assert options["providers"] == ["CPUExecutionProvider"]


def test_node_config_gives_the_anchor_backend_only_its_fill():
    from worldfm_ros.backends.config import BackendConfig

    assert backend_class("anchor").config_options(BackendConfig(fill="telea")) == {"fill": "telea"}


def test_torch_backend_without_a_model_is_unavailable_with_reason():
    with pytest.raises(BackendUnavailable, match="model_path or model"):
        create_backend("torch")


def test_missing_model_file_is_unavailable_naming_it(tmp_path):
    with pytest.raises(BackendUnavailable, match="nothing.safetensors"):
        create_backend("torch", model_path=tmp_path / "nothing.safetensors")


def test_cuda_request_without_cuda_is_unavailable(model):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(BackendUnavailable, match="CUDA"):
        create_backend("torch", model=model, device="cuda")


def test_torch_backend_returns_uint8_frame_at_request_size(model):
    frame = create_backend("torch", model=model).generate_one(request())
    assert frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8


def test_frame_is_the_decoded_sampler_output(model):
    # The pipeline is exactly: encode both conditions, distilled 2-step sampling, decode, quantise.
    req = request(seed=4)
    frame = create_backend("torch", model=model, steps=2).generate_one(req)

    codec = PixelCodec(2)
    z_render = codec.encode(uint8_to_unit(req.render_rgb))
    z_ref = codec.encode(uint8_to_unit(req.reference_rgb))
    noises = draw_noise(NoiseSource().frame(4), (1, 12, 8, 8), 2)

    def denoise(x_t, t):
        return model(x_t, torch.full((1,), float(t)), z_render, z_ref)

    with torch.no_grad():
        expected = unit_to_uint8(codec.decode(DistilledSampler((999, 200)).sample(denoise, noises)))[0]
    assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 1


def test_other_request_sizes_are_resized_in_and_out(model):
    frame = create_backend("torch", model=model).generate_one(request(size=24))
    assert frame.shape == (24, 24, 3)


def test_same_seed_gives_same_frame_and_other_seed_differs(model):
    backend = create_backend("torch", model=model)
    a, b = backend.generate_one(request(seed=1)), backend.generate_one(request(seed=1))
    c = backend.generate_one(request(seed=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_fresh_noise_changes_consecutive_frames(model):
    backend = create_backend("torch", model=model, reuse_noise=False)
    assert not np.array_equal(backend.generate_one(request()), backend.generate_one(request()))


def test_reused_noise_repeats_consecutive_frames(model):
    backend = create_backend("torch", model=model, reuse_noise=True)
    assert np.array_equal(backend.generate_one(request()), backend.generate_one(request()))


def test_a_batch_gives_each_request_the_frame_it_gets_alone(model):
    backend = create_backend("torch", model=model, steps=2)
    requests = [request(seed=seed) for seed in (1, 2, 3)]
    batch = backend.generate(requests)
    assert len(batch) == 3 and not np.array_equal(batch[0].rgb, batch[1].rgb)
    for req, out in zip(requests, batch):
        assert np.abs(out.rgb.astype(int) - backend.generate_one(req).astype(int)).max() <= 1  # float sums only


def test_stage_timings_have_one_entry_per_step(model):
    for steps, expected in ((1, ["step_0"]), (2, ["step_0", "step_1"])):
        backend = create_backend("torch", model=model, steps=steps)
        timings = backend.generate([request()])[0].timings_ms
        assert sorted(k for k in timings if k.startswith("step_")) == expected
        assert {"encode_render", "encode_reference", "decode", "total"} <= set(timings)
        assert timings["total"] >= sum(v for k, v in timings.items() if k != "total") - 1e-6


def test_ddim_sampler_calls_the_network_once_per_step(model):
    backend = create_backend("torch", model=model, sampler="ddim", steps=3)
    timings = backend.generate([request()])[0].timings_ms
    assert sorted(k for k in timings if k.startswith("step_")) == ["step_0", "step_1", "step_2"]


def test_reference_latent_is_cached_per_keyframe(model):
    backend = create_backend("torch", model=model)
    assert not backend.generate([request(reference_id=5)])[0].reference_cached
    assert backend.generate([request(reference_id=5)])[0].reference_cached


def test_reference_cache_misses_when_keyframe_pixels_change(model):
    backend = create_backend("torch", model=model)
    backend.generate_one(request(reference_id=5, image_seed=0))
    assert not backend.generate([request(reference_id=5, image_seed=1)])[0].reference_cached


def test_missing_reference_is_replaced_by_the_render(model):
    backend = create_backend("torch", model=model)
    without = request(seed=3, with_reference=False)
    stand_in = request(seed=3, with_reference=False)
    stand_in.reference_rgb = stand_in.render_rgb.copy()
    assert np.array_equal(backend.generate_one(without), backend.generate_one(stand_in))


def test_reference_of_wrong_size_is_a_config_error(model):
    req = request()
    req.reference_rgb = req.reference_rgb[:8]
    with pytest.raises(ConfigError, match="reference_rgb"):
        create_backend("torch", model=model).generate_one(req)


def test_mask_channel_model_sees_render_coverage():
    backend = create_backend("torch", model=tiny_model(use_mask_channel=True))
    full, holes = request(seed=1), request(seed=1)
    full.render_valid = np.ones_like(full.render_valid)
    assert not np.array_equal(backend.generate_one(full), backend.generate_one(holes))


def zero_correction(x_t, t, render, reference, mask, cameras=None):
    """A denoiser whose v makes the distilled sampler's x0 exactly zero."""
    a, s = NoiseSchedule().coefficients(t)
    return x_t * (a / s)


@pytest.mark.parametrize("size", [SIZE, 3 * SIZE])
def test_residual_model_with_zero_correction_returns_the_anchor_backends_frame(size):
    # At the model's size and above it: only the correction is resampled, the fill keeps full detail.
    pipeline = FrameModelPipeline(zero_correction, PixelCodec(2), DistilledSampler((999, 200)), SIZE // 2,
                                  residual="filled_render")
    req = request(size=size, seed=3)
    expected = FillBackend().generate_one(req)
    assert np.abs(pipeline.generate([req])[0].rgb.astype(int) - expected.astype(int)).max() <= 1


def test_residual_model_decodes_its_sample_plus_the_filled_render():
    model = tiny_model(residual="filled_render", residual_scale=4.0)
    req = request(seed=4)
    frame = create_backend("torch", model=model, steps=1, correction="everywhere").generate_one(req)

    codec = PixelCodec(2)
    z_render = codec.encode(uint8_to_unit(req.render_rgb))
    z_ref = codec.encode(uint8_to_unit(req.reference_rgb))
    z_fill = codec.encode(uint8_to_unit(push_pull_fill(req.render_rgb, req.render_valid)))
    noises = draw_noise(NoiseSource().frame(4), (1, 12, 8, 8), 1)

    def denoise(x_t, t):
        return model(x_t, torch.full((1,), float(t)), z_render, z_ref)

    with torch.no_grad():
        expected = unit_to_uint8(codec.decode(DistilledSampler((999,)).sample(denoise, noises) / 4.0 + z_fill))[0]
    assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 1


def test_a_residual_model_corrects_only_the_holes_by_default_and_covered_pixels_stay_the_anchors():
    req = request(seed=4)
    assert req.render_valid.any() and not req.render_valid.all()
    model = tiny_model(residual="filled_render", residual_scale=4.0)
    holes_only = create_backend("torch", model=model, steps=1).generate_one(req)
    everywhere = create_backend("torch", model=model, steps=1, correction="everywhere").generate_one(req)
    fill = FillBackend().generate_one(req)
    assert np.array_equal(holes_only[req.render_valid], fill[req.render_valid])
    assert np.array_equal(holes_only[~req.render_valid], everywhere[~req.render_valid])
    assert not np.array_equal(everywhere[req.render_valid], fill[req.render_valid])


def test_an_unknown_correction_region_is_a_config_error_naming_the_parameter():
    from worldfm_ros.backends.config import BackendConfig

    with pytest.raises(ConfigError, match=r"backend\.correction: expected one of \('holes', 'everywhere'\)"):
        BackendConfig(correction="covered")


def test_unknown_residual_base_is_a_config_error():
    with pytest.raises(ConfigError, match="DiTConfig.residual"):
        DiTConfig.tiny(residual="median")


def test_camera_encoded_model_sees_the_reference_pose():
    backend = create_backend("torch", model=tiny_model(camera_encoding="prope"))
    near, far = request(seed=1), request(seed=1)
    for req, x in ((near, 0.1), (far, 2.0)):
        req.reference_c2w = np.eye(4)
        req.reference_c2w[0, 3] = x
        req.K = req.reference_K = np.array([[16.0, 0, 7.5], [0, 16.0, 7.5], [0, 0, 1]])
    assert not np.array_equal(backend.generate_one(near), backend.generate_one(far))


def test_camera_encoded_model_needs_the_reference_pose():
    backend = create_backend("torch", model=tiny_model(camera_encoding="plucker"))
    with pytest.raises(ConfigError, match="reference_c2w"):
        backend.generate_one(request())


def test_resized_intrinsics_keep_pixel_centres_aligned():
    K = np.array([[100.0, 0, 63.5], [0, 100.0, 31.5], [0, 0, 1]])  # centre of a 128 x 64 image
    K2 = resized_intrinsics(K, (64, 128), 32)
    assert np.allclose(K2, [[25.0, 0, 15.5], [0, 50.0, 15.5], [0, 0, 1]])


def test_bf16_model_runs_on_the_torch_backend(model):
    frame = create_backend("torch", model=tiny_model(), dtype="bf16").generate_one(request())
    assert frame.shape == (SIZE, SIZE, 3)


def test_vae_latent_model_without_vae_path_is_a_config_error():
    with pytest.raises(ConfigError, match="VAE folder"):
        make_codec(4)


def test_pixel_codec_is_chosen_from_latent_channels():
    assert make_codec(48).downsample == 4


def test_cuda_graphs_need_a_cuda_model(model):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(BackendUnavailable, match="cuda_graphs"):
        create_backend("torch", model=model, cuda_graphs=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_frames_match_eager_frames():
    eager = create_backend("torch", model=tiny_model(), device="cuda")
    graphed = create_backend("torch", model=tiny_model(), device="cuda", cuda_graphs=True)
    for seed in (1, 2):
        a, b = eager.generate_one(request(seed=seed)), graphed.generate_one(request(seed=seed))
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_frames_match_eager_frames():
    eager = create_backend("torch", model=tiny_model(), device="cuda")
    compiled = create_backend("torch", model=tiny_model(), device="cuda", compile=True)
    a, b = eager.generate_one(request(seed=1)), compiled.generate_one(request(seed=1))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_tensorrt_unavailability_says_why(model):
    try:
        import tensorrt  # noqa: F401
    except Exception:
        with pytest.raises(BackendUnavailable, match="'tensorrt' Python package cannot be imported"):
            create_backend("tensorrt", model=model)
    else:
        pytest.skip("tensorrt is importable here")


def test_engine_cache_key_depends_on_every_input():
    base = dict(onnx_sha256="ab" * 32, input_shapes={"x_t": (1, 4, 64, 64), "t": (1,)}, precision="fp16",
                gpu_name="NVIDIA H100", trt_version="10.3.0")
    key = engine_cache_key(**base)
    assert len(key) == 32 and all(ch in "0123456789abcdef" for ch in key)
    variants = [dict(onnx_sha256="cd" * 32), dict(input_shapes={"x_t": (1, 4, 32, 32), "t": (1,)}),
                dict(precision="bf16"), dict(gpu_name="NVIDIA A100"), dict(trt_version="10.4.0")]
    assert len({engine_cache_key(**{**base, **v}) for v in variants} | {key}) == len(variants) + 1


def test_engine_cache_key_ignores_input_order():
    a = engine_cache_key("0" * 64, {"x_t": (1, 4, 8, 8), "t": (1,)}, "fp32", "gpu", "10")
    b = engine_cache_key("0" * 64, {"t": (1,), "x_t": (1, 4, 8, 8)}, "fp32", "gpu", "10")
    assert a == b


def test_engine_cache_key_rejects_unknown_precision():
    with pytest.raises(ConfigError, match="int4"):
        engine_cache_key("0" * 64, {}, "int4", "gpu", "10")


def test_safetensors_model_file_loads_into_the_torch_backend(model, tmp_path):
    from worldfm_ros.model.checkpoint import save_model

    path = save_model(model, tmp_path / "tiny.safetensors")
    from_file = create_backend("torch", model_path=path)
    in_memory = create_backend("torch", model=model)
    assert np.array_equal(from_file.generate_one(request(seed=2)), in_memory.generate_one(request(seed=2)))


def test_official_layout_pth_whose_shape_cannot_be_read_is_unavailable_naming_it(model, tmp_path):
    # Official .pth files carry no config: a width that is not a multiple of the 72-wide heads
    # cannot be read back from the weights, and the loader must say so.
    path = tmp_path / "worldfm_2-step.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    with pytest.raises(BackendUnavailable, match="worldfm_2-step.pth: cannot infer num_heads"):
        create_backend("torch", model_path=path)


def test_vae_latent_model_runs_with_a_vae_folder(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, latent_channels=4,
                  down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2).save_pretrained(tmp_path / "vae")
    vae_model = WorldFMDiT(DiTConfig.tiny(latent_channels=4))  # 8x8 latents, x2 VAE -> 16 px
    backend = create_backend("torch", model=vae_model, vae_path=tmp_path / "vae")
    assert backend.generate_one(request()).shape == (SIZE, SIZE, 3)
    assert backend.pipeline.codec.downsample == 2


def test_bench_model_prints_per_stage_table_and_fps(capsys):
    import argparse

    from worldfm_ros.eval import bench_model

    parser = argparse.ArgumentParser()
    bench_model.add_arguments(parser)
    args = parser.parse_args(["--config", "tiny", "--pixel-factor", "2", "--repeats", "2", "--warmup", "1"])
    assert bench_model.run(args) == 0
    out = capsys.readouterr().out
    for stage in ("encode_render", "encode_reference", "step_0", "step_1", "decode", "total", "FPS"):
        assert f"| {stage}" in out or f"**{stage}**" in out
