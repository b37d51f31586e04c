"""Specification of the evaluation metrics: PSNR, SSIM, ground-truth warping, and the scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.eval.evaluate import score
from worldfm_ros.eval.metrics import psnr, ssim, warp_difference, warp_to_view
from worldfm_ros.build.procedural import body_pose, random_room
from worldfm_ros.train.data import build_samples
from worldfm_ros.train.synthetic import synthetic_clip


def test_psnr_of_a_uniform_error_of_10_levels():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 10, np.uint8)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 100))


def test_psnr_mask_counts_only_masked_pixels():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[:4] = 200
    mask = np.zeros((8, 8), bool)
    mask[4:] = True
    assert psnr(a, b, mask) == math.inf
    assert psnr(a, b, ~mask) == pytest.approx(10 * math.log10(255 ** 2 / 200 ** 2))


def test_psnr_of_an_empty_mask_is_nan():
    a = np.zeros((4, 4, 3), np.uint8)
    assert math.isnan(psnr(a, a, np.zeros((4, 4), bool)))


def test_ssim_of_identical_images_is_one():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)


def test_ssim_of_constant_images_is_the_luminance_term():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = np.full((16, 16, 3), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100 ** 2 + 150 ** 2 + c1)
    assert ssim(a, b) == pytest.approx(expected, rel=1e-9)


def test_ssim_drops_with_noise():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, noisy) < 0.9


def test_warp_with_the_same_pose_reproduces_the_image():
    room = random_room(3)
    camera = PinholeCamera.from_fov(48, 48, 75.0)
    c2w = body_pose(*(room.size[:2] / 2), 0.4)
    rgb, depth = room.raycast(camera, c2w)
    warped, covis = warp_to_view(rgb, depth, c2w, depth, c2w, camera.K)
    assert covis.all()
    assert np.abs(warped - rgb).max() < 1e-3


def test_warp_between_ground_truth_views_agrees_on_covisible_pixels():
    room = random_room(4)
    camera = PinholeCamera.from_fov(64, 64, 75.0)
    centre = room.size[:2] / 2
    a, b = body_pose(*centre, 0.3), body_pose(centre[0] + 0.1, centre[1], 0.35)
    rgb_a, depth_a = room.raycast(camera, a)
    rgb_b, depth_b = room.raycast(camera, b)
    mae, n = warp_difference(rgb_a, rgb_b, depth_a, a, depth_b, b, camera.K)
    shuffled, _ = warp_difference(rgb_a[::-1], rgb_b, depth_a, a, depth_b, b, camera.K)
    assert n > 0.5 * 64 * 64
    assert mae < 0.5 * shuffled


def test_ground_truth_frames_score_perfectly_and_do_not_flicker():
    samples = build_samples(synthetic_clip(5, num_frames=8, image_size=64), 32, np.random.default_rng(0))
    result = score(samples.target, samples)
    assert result["psnr"] == pytest.approx(100.0)
    assert result["ssim"] == pytest.approx(1.0)
    assert result["flicker"] == pytest.approx(0.0)
    assert result["consistency"] == pytest.approx(result["gt_consistency"])


def test_hole_psnr_pools_hole_pixels_instead_of_averaging_views():
    # One view with a single, exactly filled hole pixel must not outweigh a large, wrong region.
    samples = build_samples(synthetic_clip(5, num_frames=8, image_size=64), 32, np.random.default_rng(0))
    samples = samples.subset([0, 1])
    samples.valid[:] = True
    samples.valid[0, 3, 3] = False
    samples.valid[1, :16] = False
    frames = samples.target.copy()
    frames[1, :16] = np.clip(frames[1, :16].astype(int) + 10, 0, 255).astype(np.uint8)
    err = frames[1, :16].astype(float) - samples.target[1, :16]
    expected = 10 * np.log10(255.0 ** 2 / ((err ** 2).sum() / (3 * (16 * 32 + 1))))
    assert score(frames, samples)["psnr_holes"] == pytest.approx(expected)


def test_hole_psnr_by_size_groups_views_by_their_hole_share():
    from worldfm_ros.eval.evaluate import hole_psnr_by_size

    samples = build_samples(synthetic_clip(5, num_frames=8, image_size=64), 32, np.random.default_rng(0))
    samples = samples.subset([0, 1])
    samples.valid[:] = True
    samples.valid[0, 3, 3] = False  # 0.1 % holes, filled exactly
    samples.valid[1, :16] = False  # 50 % holes, 10 levels off
    frames = samples.target.copy()
    frames[1, :16] = np.clip(frames[1, :16].astype(int) + 10, 0, 255).astype(np.uint8)
    out = hole_psnr_by_size(frames, samples)
    err = frames[1, :16].astype(float) - samples.target[1, :16]
    assert out["holes 0-2% (1 views)"] == 100.0
    assert out["holes 10-50% (1 views)"] == pytest.approx(10 * np.log10(255.0 ** 2 / (err ** 2).mean()))
    assert np.isnan(out["holes 50-100% (0 views)"])
    assert out["per-view mean"] == pytest.approx((100.0 + out["holes 10-50% (1 views)"]) / 2)
