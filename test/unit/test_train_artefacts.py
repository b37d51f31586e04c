"""Training on anchors that look like real captures: artefacts on the references, clean fusion, a
validation split by frame index, and fine-tuning from a model file."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from worldfm_ros.errors import CheckpointError, ConfigError
from worldfm_ros.train.artefacts import CaptureArtefacts
from worldfm_ros.train.config import ModelSpec, Stage2Config
from worldfm_ros.train.data import build_samples, degrade_frames, fuse_frames
from worldfm_ros.train.loaders import rgbd_clips
from worldfm_ros.train.stage2 import Stage2Trainer
from worldfm_ros.train.synthetic import synthetic_clip

from test_scene_build_rgbd import CAMERA, write_seven_scenes  # noqa: E402

TINY = ModelSpec(size="tiny", pixel_factor=4, patch_size=1)


@pytest.fixture(scope="module")
def clip():
    return synthetic_clip(5, num_frames=8, image_size=64)


def test_pose_error_on_the_references_misregisters_the_anchor_but_leaves_the_targets_exact(clip):
    exact = build_samples(clip, 32, np.random.default_rng(0))
    noisy = build_samples(clip, 32, np.random.default_rng(0), artefacts=CaptureArtefacts(pose_noise_m=0.05))
    assert np.array_equal(exact.frame, noisy.frame), "the same reference draw"
    assert np.array_equal(exact.target, noisy.target)
    assert np.array_equal(exact.target_c2w, noisy.target_c2w)
    changed = np.mean(np.any(exact.render != noisy.render, axis=-1) & exact.valid & noisy.valid)
    assert changed > 0.05, f"only {changed:.1%} of the covered render pixels moved"


def test_exposure_drift_changes_a_reference_image_by_at_most_its_gain():
    image = np.full((8, 8, 3), 100, np.uint8)
    out, depth, c2w = CaptureArtefacts(exposure=0.2).apply(image, np.ones((8, 8), np.float32), np.eye(4),
                                                          np.random.default_rng(1))
    gain = out.astype(float).mean(axis=(0, 1)) / 100.0
    assert np.all(np.abs(gain - 1.0) <= 0.2 * 1.05 + 0.01) and np.any(np.abs(gain - 1.0) > 0.005)
    assert np.array_equal(depth, np.ones((8, 8))) and np.array_equal(c2w, np.eye(4))


def test_flying_pixels_put_edge_depths_between_the_two_surfaces():
    depth = np.ones((10, 10), np.float32)
    depth[:, 5:] = 3.0
    _, out, _ = CaptureArtefacts(flying_pixels=1.0).apply(np.zeros((10, 10, 3), np.uint8), depth, np.eye(4),
                                                          np.random.default_rng(2))
    edge = out[:, 4]
    assert np.all((edge > 1.0) & (edge < 3.0)), "the foreground column next to the step floats between 1 and 3 m"
    assert np.array_equal(out[:, :4], depth[:, :4]) and np.array_equal(out[:, 5:], depth[:, 5:])


def test_a_negative_artefact_amount_names_its_field():
    with pytest.raises(ConfigError, match="data.artefacts.depth_noise"):
        CaptureArtefacts(depth_noise=-0.1)


def test_a_clean_anchor_drops_the_flying_pixels_a_raw_anchor_keeps(clip):
    from scipy.spatial import cKDTree

    refs = [0, 3, 6]
    seen = degrade_frames(clip, refs, CaptureArtefacts(flying_pixels=1.0), np.random.default_rng(0))
    surface = cKDTree(fuse_frames(clip, refs)[0])

    def floating(points: np.ndarray) -> float:
        return float(np.mean(surface.query(points)[0] > 0.05))

    raw, clean = floating(fuse_frames(seen, refs)[0]), floating(fuse_frames(seen, refs, clean=True)[0])
    assert raw > 0.005, "the raw anchor has points floating off the surfaces"
    assert clean < 0.2 * raw


def test_real_clips_stop_below_the_validation_frames(tmp_path):
    frames = [(np.full((CAMERA.height, CAMERA.width, 3), 10 * i, np.uint8),
               np.full((CAMERA.height, CAMERA.width), 2.0, np.float32), np.eye(4)) for i in range(12)]
    write_seven_scenes(tmp_path / "seq", frames)
    clips = list(rgbd_clips(tmp_path / "seq", frames_per_clip=4, max_frame=9))
    assert len(clips) == 2, "frames 0-7 make two clips; frame 8 is not a whole clip and 9-11 are held out"
    assert [int(c.images[-1, 0, 0, 0]) for c in clips] == [30, 70]


def test_fine_tuning_starts_from_the_init_models_weights(clip, tmp_path):
    samples = build_samples(clip, 16, np.random.default_rng(0))
    base = Stage2Config(model=TINY, out_dir=str(tmp_path / "a"), steps=2, batch_size=2)
    source = Stage2Trainer(base, samples)
    path = source.export(tmp_path / "init.safetensors")
    tuned = Stage2Trainer(dataclasses.replace(base, init=str(path), seed=7), samples)
    for a, b in zip(source.ema.state_dict().values(), tuned.model.state_dict().values()):
        assert torch.equal(a, b)


def test_an_init_model_of_another_shape_is_refused_with_its_path(clip, tmp_path):
    samples = build_samples(clip, 16, np.random.default_rng(0))
    base = Stage2Config(model=TINY, out_dir=str(tmp_path / "a"), steps=2, batch_size=2)
    path = Stage2Trainer(base, samples).export(tmp_path / "init.safetensors")
    wider = dataclasses.replace(base, init=str(path), model=dataclasses.replace(TINY, hidden_size=96))
    with pytest.raises(CheckpointError, match="init.safetensors"):
        Stage2Trainer(wider, samples)
