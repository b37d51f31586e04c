"""Specification of Stage II training: the loss falls, runs resume bit for bit, the phases act."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worldfm_ros.backends.base import FrameRequest
from worldfm_ros.backends.torch_backend import TorchBackend
from worldfm_ros.config import load_config
from worldfm_ros.model.checkpoint import read_model_metadata
from worldfm_ros.model.codec import PixelCodec
from worldfm_ros.train.config import ModelSpec, Stage2Config
from worldfm_ros.train.data import SampleSet, build_samples
from worldfm_ros.train.stage2 import (Stage2Trainer, clean_latent, conditions, draw_timestep_and_noise, hole_weights,
                                     train_stage2, v_loss)
from worldfm_ros.train.synthetic import synthetic_clip

TINY = ModelSpec(size="tiny", pixel_factor=4, patch_size=1)


@pytest.fixture(scope="module")
def samples() -> SampleSet:
    clips = [synthetic_clip(seed, num_frames=8, image_size=32) for seed in (1, 2)]
    return SampleSet.concatenate([build_samples(c, 16, np.random.default_rng(k)) for k, c in enumerate(clips)])


def tiny_config(tmp_path, **overrides) -> Stage2Config:
    base = Stage2Config(model=TINY, out_dir=str(tmp_path / "run"), steps=8, batch_size=4, lr=2e-3, warmup_steps=2,
                        reference_only_until=0.0, masking_from=0.5, log_every=2, checkpoint_every=100)
    return dataclasses.replace(base, **overrides)


def fixed_loss(trainer: Stage2Trainer, steps: range) -> float:
    """Loss of the model on the batches of ``steps`` (fixed seeds), without updating anything."""
    with torch.no_grad():
        losses = []
        for step in steps:
            batch, t, noise = trainer.local_batch(step, list(range(len(trainer.samples)))[:8])
            losses.append(float(v_loss(trainer.model, trainer.codec, trainer.schedule, batch, t, noise, True)))
    return float(np.mean(losses))


def test_a_few_training_steps_reduce_the_loss(samples, tmp_path):
    trainer = Stage2Trainer(tiny_config(tmp_path, steps=40, masking_from=1.0), samples)
    before = fixed_loss(trainer, range(1000, 1004))
    for _ in range(40):
        trainer.train_step()
    assert fixed_loss(trainer, range(1000, 1004)) < 0.8 * before


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(samples, tmp_path):
    straight = train_stage2(tiny_config(tmp_path / "a"), samples, progress=False)
    split_cfg = tiny_config(tmp_path / "b")
    train_stage2(split_cfg, samples, stop_at=4, progress=False)
    assert not (tmp_path / "b" / "run" / "model.safetensors").exists()
    resumed = train_stage2(split_cfg, samples, progress=False)
    from safetensors.torch import load_file

    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_model_metadata(resumed)["steps"] == 8


def test_reference_only_phase_empties_every_render(samples, tmp_path):
    trainer = Stage2Trainer(tiny_config(tmp_path, reference_only_until=0.5), samples)
    early, _, _ = trainer.local_batch(0, [0, 1, 2, 3])
    late, _, _ = trainer.local_batch(7, [0, 1, 2, 3])
    assert torch.all(early.render == -1.0) and torch.all(early.valid == 0)
    assert late.valid.mean() > 0.3


def test_anchor_masking_starts_at_masking_from(samples, tmp_path):
    trainer = Stage2Trainer(tiny_config(tmp_path, masking_from=0.5, mask_patch_prob=1.0, mask_drop_prob=0.0), samples)
    indices = list(range(4))
    before, _, _ = trainer.local_batch(3, indices)
    after, _, _ = trainer.local_batch(4, indices)
    built = torch.from_numpy(samples.valid[indices]).float()[:, None]
    assert torch.equal(before.valid, built)
    assert after.valid.sum() < built.sum()


def test_logit_normal_timesteps_lean_to_high_noise():
    ts = [draw_timestep_and_noise(s, (1,), "logit_normal", 0.5, 1.0)[0] for s in range(400)]
    uniform = [draw_timestep_and_noise(s, (1,), "uniform")[0] for s in range(400)]
    assert np.median(ts) > 560 and 400 < np.median(uniform) < 600
    assert 0 <= min(ts) and max(ts) <= 999


def test_exported_model_runs_as_a_frame_backend(samples, tmp_path):
    path = train_stage2(tiny_config(tmp_path, steps=2), samples, progress=False)
    backend = TorchBackend(model_path=path, steps=2)
    request = FrameRequest(samples.render[0], samples.render_depth[0], samples.valid[0], samples.K[0],
                           samples.target_c2w[0], samples.reference[0], samples.K[0], samples.reference_c2w[0])
    frame = backend.generate_one(request)
    assert frame.shape == samples.target[0].shape and frame.dtype == np.uint8


def test_bundled_training_configs_load():
    from pathlib import Path

    from worldfm_ros.train.config import DistillConfig

    root = Path(__file__).resolve().parents[2] / "config" / "train"
    stage2 = [load_config(Stage2Config, p) for p in sorted(root.glob("stage2_*.yaml"))]
    distill = [load_config(DistillConfig, p) for p in sorted(root.glob("distill_*.yaml"))]
    assert stage2 and distill
    assert all(c.model.dit_config(c.data.image_size).use_mask_channel for c in stage2)


def test_focus_timesteps_replace_a_share_without_changing_the_other_draws():
    plain = [draw_timestep_and_noise(s, (4,)) for s in range(200)]
    off = [draw_timestep_and_noise(s, (4,), focus=(999, 200), focus_prob=0.0) for s in range(200)]
    on = [draw_timestep_and_noise(s, (4,), focus=(999, 200), focus_prob=0.5) for s in range(200)]
    assert all(a[0] == b[0] and torch.equal(a[1], b[1]) for a, b in zip(plain, off))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(plain, on))
    changed = [b[0] for a, b in zip(plain, on) if a[0] != b[0]]
    assert set(changed) <= {999, 200} and 60 < len(changed) < 140


def test_residual_model_learns_the_difference_to_the_filled_render(samples, tmp_path):
    spec = dataclasses.replace(TINY, residual="filled_render", residual_scale=4.0)
    trainer = Stage2Trainer(tiny_config(tmp_path, model=spec), samples)
    batch, _, _ = trainer.local_batch(0, [0, 1])
    codec = trainer.codec
    expected = 4.0 * (codec.encode(batch.target) - codec.encode(batch.filled))
    assert torch.allclose(clean_latent(codec, batch, "filled_render", trainer.dit_cfg.residual_scale), expected)
    # The filled render is the anchor backend's output: every hole filled, valid pixels kept.
    kept = batch.valid.expand_as(batch.render).bool()
    assert torch.equal(batch.filled[kept], batch.render[kept])


def test_hole_weights_fall_on_the_latent_elements_of_hole_pixels():
    valid = torch.ones(1, 1, 8, 8)
    valid[0, 0, 5, 2] = 0.0
    weights = hole_weights(PixelCodec(4), valid, 3.0, torch.Size((1, 48, 2, 2)))
    pixels = F.pixel_shuffle(weights, 4)  # back to (1, 3, 8, 8)
    assert torch.all(pixels[0, :, 5, 2] == 3.0)
    assert int((pixels == 3.0).sum()) == 3 and int((pixels == 1.0).sum()) == 3 * 64 - 3


def test_hole_weight_raises_the_loss_by_the_error_on_holes(samples, tmp_path):
    trainer = Stage2Trainer(tiny_config(tmp_path), samples)
    batch, t, noise = trainer.local_batch(0, [0, 1, 2, 3])
    args = (trainer.model, trainer.codec, trainer.schedule, batch, t, noise, True)
    with torch.no_grad():
        plain, weighted = float(v_loss(*args)), float(v_loss(*args, hole_weight=3.0))
        x0 = trainer.codec.encode(batch.target)
        out = trainer.model(trainer.schedule.add_noise(x0, noise, t), t, *conditions(trainer.codec, batch, 4, True))
        error = (out - trainer.schedule.v_target(x0, noise, t)).square()
        holes = hole_weights(trainer.codec, batch.valid, 2.0, x0.shape) - 1.0  # 1 on holes, 0 elsewhere
    assert weighted == pytest.approx(plain + 2.0 * float((error * holes).mean()), rel=1e-5)
