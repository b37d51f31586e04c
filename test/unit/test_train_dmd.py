"""Specification of Stage III (DMD): signs of the distribution-matching update, the generator's
chain, and a short distillation run that exports a working 2-step model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldfm_ros.backends.base import FrameRequest
from worldfm_ros.backends.torch_backend import TorchBackend
from worldfm_ros.model.checkpoint import read_model_metadata, save_model
from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.dit import WorldFMDiT
from worldfm_ros.model.sampler import DistilledSampler
from worldfm_ros.model.schedule import NoiseSchedule
from worldfm_ros.train.config import DataConfig, DistillConfig
from worldfm_ros.train.data import build_samples
from worldfm_ros.train.dmd import Conditioning, distill, dm_gradient, dm_loss, generate
from worldfm_ros.train.synthetic import synthetic_clip

SCHEDULE = NoiseSchedule()


def gaussian_x0(x_t: torch.Tensor, t: int, mu: float, s: float) -> torch.Tensor:
    """E[x0 | x_t] when x0 ~ N(mu, s^2) elementwise: the exact denoiser of that distribution."""
    a, sigma = SCHEDULE.coefficients(t)
    return mu + a * s ** 2 / (a ** 2 * s ** 2 + sigma ** 2) * (x_t - a * mu)


def test_dm_gradient_is_zero_when_fake_and_real_scores_agree():
    x0 = torch.randn(2, 3, 4, 4)
    pred = torch.randn(2, 3, 4, 4)
    assert torch.count_nonzero(dm_gradient(x0, pred, pred.clone())) == 0


def test_dm_loss_pushes_samples_along_minus_the_gradient():
    x0 = torch.randn(2, 3, 4, 4, requires_grad=True)
    grad = torch.randn(2, 3, 4, 4)
    dm_loss(x0, grad).backward()
    torch.testing.assert_close(x0.grad, grad / x0.numel())


def test_a_step_along_the_dm_gradient_reduces_the_kl_to_the_teacher():
    mu_real, mu_fake, s, t = 0.5, -0.3, 0.4, 500
    gen = torch.Generator().manual_seed(0)
    x0 = (mu_fake + s * torch.randn(64, 3, 8, 8, generator=gen)).requires_grad_(True)
    x_t = SCHEDULE.add_noise(x0.detach(), torch.randn(x0.shape, generator=gen), t)
    grad = dm_gradient(x0.detach(), gaussian_x0(x_t, t, mu_real, s), gaussian_x0(x_t, t, mu_fake, s))
    dm_loss(x0, grad).backward()
    moved = x0.detach() - 0.05 * x0.numel() * x0.grad

    def kl(mean: float) -> float:  # KL(N(mean, s^2) || N(mu_real, s^2))
        return (mean - mu_real) ** 2 / (2 * s ** 2)

    assert kl(float(moved.mean())) < kl(float(x0.detach().mean()))


@pytest.fixture(scope="module")
def teacher() -> WorldFMDiT:
    torch.manual_seed(0)
    model = WorldFMDiT(DiTConfig.tiny(latent_channels=48, input_size=4, patch_size=1, use_mask_channel=True,
                                      learn_sigma=False))
    torch.nn.init.normal_(model.final_layer.linear.weight, std=0.02)  # a non-trivial output
    return model.eval()


def test_generator_chain_is_the_distilled_sampler(teacher):
    gen = torch.Generator().manual_seed(1)
    noises = [torch.randn(2, 48, 4, 4, generator=gen) for _ in range(2)]
    cond = Conditioning(torch.randn(2, 48, 4, 4, generator=gen), torch.randn(2, 48, 4, 4, generator=gen),
                        torch.rand(2, 1, 4, 4, generator=gen))
    with torch.no_grad():
        ours = generate(teacher, SCHEDULE, (999, 200), noises, cond)
        released = DistilledSampler((999, 200)).sample(
            lambda x, t: teacher(x, torch.full((2,), t), cond.render, cond.reference, cond.mask), noises)
    torch.testing.assert_close(ours, released)


def test_short_distillation_exports_a_two_step_model(teacher, tmp_path):
    samples = build_samples(synthetic_clip(2, num_frames=8, image_size=32), 16, np.random.default_rng(0))
    teacher_path = save_model(teacher, tmp_path / "teacher.safetensors")
    cfg = DistillConfig(teacher=str(teacher_path), data=DataConfig(image_size=16, capture_size=32),
                        out_dir=str(tmp_path / "dmd"), num_steps=2, steps=3, batch_size=2, regression_pairs=4,
                        teacher_ddim_steps=2, log_every=1)
    path = distill(cfg, samples, progress=False)
    assert read_model_metadata(path)["timesteps"] == [999, 200]
    backend = TorchBackend(model_path=path, steps=2)
    request = FrameRequest(samples.render[0], samples.render_depth[0], samples.valid[0], samples.K[0],
                           samples.target_c2w[0], samples.reference[0], samples.K[0], samples.reference_c2w[0])
    assert backend.generate_one(request).shape == (16, 16, 3)
    lines = (tmp_path / "dmd" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 3
