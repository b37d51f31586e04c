"""Official-layout checkpoints (random weights) load through every path a user has.

Each test writes a ``.pth`` the way the release ships its weights (``{"state_dict": ...}``
with the stale ``pos_embed``, the caption path and the cross-attentions) and goes in through
one user entry point: ``TorchBackend(model_path=...)``, the ONNX backend's export, ``worldfm
bench-model --model`` (the node's ``backend.model`` parameter: test/ros/test_official_weights_node.py). The XL/2 shape is the released one.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from worldfm_ros.backends.base import FrameRequest
from worldfm_ros.backends.registry import create_backend
from worldfm_ros.model.config import DiTConfig

from official import TINY_OFFICIAL, official_pth, vae_dir, write_official_checkpoint  # noqa: F401  (fixtures)

SIZE = 64  # TINY_OFFICIAL's 8x8 latents through a x8 VAE


def frame_request(seed: int = 3) -> FrameRequest:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    valid = rng.random((SIZE, SIZE)) > 0.2
    K = np.array([[SIZE, 0, (SIZE - 1) / 2], [0, SIZE, (SIZE - 1) / 2], [0, 0, 1.0]])
    return FrameRequest(rgb, valid.astype(np.float32), valid, K, np.eye(4),
                        rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), K, np.eye(4), 0, seed)


def test_torch_backend_loads_an_official_pth_from_its_model_path(official_pth, vae_dir):
    path, source = official_pth
    backend = create_backend("torch", model_path=path, vae_path=vae_dir, steps=2)
    assert backend.model.cfg == TINY_OFFICIAL
    assert backend.model.pos_embed.device.type == "cpu"
    for name, value in source.state_dict().items():
        assert torch.equal(backend.model.state_dict()[name], value), name
    frame = backend.generate_one(frame_request())
    assert frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8 and frame.std() > 0


def test_official_pth_frames_equal_the_frames_of_the_same_network_in_memory(official_pth, vae_dir):
    path, source = official_pth
    from_file = create_backend("torch", model_path=path, vae_path=vae_dir, steps=2)
    in_memory = create_backend("torch", model=source, vae_path=vae_dir, steps=2)
    assert np.array_equal(from_file.generate_one(frame_request()), in_memory.generate_one(frame_request()))


def test_onnx_backend_exports_an_official_pth_and_matches_the_torch_frame(official_pth, vae_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    path, _ = official_pth
    onnx = create_backend("onnxruntime", model_path=path, vae_path=vae_dir, steps=2, cache_dir=tmp_path)
    assert onnx.onnx_path.is_file() and onnx.onnx_path.parent == tmp_path / "onnx"
    torch_frame = create_backend("torch", model_path=path, vae_path=vae_dir, steps=2).generate_one(frame_request())
    diff = np.abs(onnx.generate_one(frame_request()).astype(int) - torch_frame.astype(int))
    assert diff.max() <= 2


def test_bench_model_times_an_official_pth(official_pth, vae_dir, capsys):
    from worldfm_ros.eval import bench_model

    parser = argparse.ArgumentParser()
    bench_model.add_arguments(parser)
    args = parser.parse_args(["--model", str(official_pth[0]), "--vae", str(vae_dir), "--repeats", "1",
                              "--warmup", "0"])
    assert bench_model.run(args) == 0
    out = capsys.readouterr().out
    assert "worldfm_2-step.pth" in out and f"{SIZE}x{SIZE} px" in out and "| step_1 |" in out


@pytest.fixture(scope="module")
def xl_pth(tmp_path_factory):
    """The released XL/2 shape (612 M parameters, fp16 on disk like a half-precision release)."""
    path = tmp_path_factory.mktemp("xl") / "worldfm_1-step.pth"
    write_official_checkpoint(path, DiTConfig.xl_2(), dtype=torch.float16)
    return path


def test_xl2_official_pth_loads_through_the_torch_backend_and_runs_the_network(xl_pth, vae_dir):
    backend = create_backend("torch", model_path=xl_pth, vae_path=vae_dir, steps=1)
    model = backend.model
    assert model.cfg == DiTConfig.xl_2()
    assert math.isclose(sum(p.numel() for p in model.parameters()) / 1e6, 456.04, abs_tol=0.01)
    assert model.pos_embed.device.type == "cpu" and model.pos_embed.shape == (1, 3072, 1152)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # 3 x 16 tokens: fast on a CPU
    with torch.inference_mode():
        out = model(x, torch.tensor([999]), x, x)
    assert out.shape == (1, 8, 8, 8) and torch.isfinite(out).all()
