"""Cleaning and fusing real RGB-D frames: flying pixels, confidence, robust colours (constructed inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.build.build_rgbd import build_rgbd
from worldfm_ros.build.rgbd_fusion import flying_pixel_mask, observation_confidence
from test_scene_build_rgbd import write_seven_scenes  # noqa: E402

CAMERA = PinholeCamera.from_fov(64, 48, 70.0)


def depth_step() -> np.ndarray:
    """A wall at 1 m on the left, one at 3 m on the right, and the column between them at 2 m:
    the mixed depth a real sensor reports for pixels straddling the edge."""
    depth = np.full((CAMERA.height, CAMERA.width), 1.0, np.float32)
    depth[:, 33:] = 3.0
    depth[:, 32] = 2.0
    return depth


def grey(level: int) -> np.ndarray:
    return np.full((CAMERA.height, CAMERA.width, 3), level, np.uint8)


def camera_depths(anchor) -> np.ndarray:
    """z of every anchor point in the (identity-posed) camera frame, metres."""
    return anchor.points[:, 2].astype(np.float64)


def test_flying_pixels_on_a_depth_step_leave_no_points_between_the_two_walls(tmp_path: Path) -> None:
    frames = [(grey(120), depth_step(), np.eye(4))]
    write_seven_scenes(tmp_path / "seq", frames)
    kept = camera_depths(build_rgbd(tmp_path / "seq", pixel_stride=1, up="none"))
    raw = camera_depths(build_rgbd(tmp_path / "seq", pixel_stride=1, up="none", max_jump=0.0, fuse_voxel=0.0))
    assert np.any((raw > 1.1) & (raw < 2.9))  # without the filter the column floats between the walls
    assert not np.any((kept > 1.1) & (kept < 2.9))
    assert np.mean(kept < 1.1) > 0.4 and np.mean(kept > 2.9) > 0.4  # both walls are still there


def test_flying_pixel_mask_marks_only_pixels_next_to_the_jump() -> None:
    mask = flying_pixel_mask(depth_step())
    assert mask[:, 31:34].all()
    assert not mask[:, :31].any() and not mask[:, 34:].any()


def test_confidence_falls_with_range_and_near_depth_edges() -> None:
    depth = depth_step()
    conf = observation_confidence(depth, CAMERA.K)
    assert conf[24, 18] > 0.95  # 1 m, nearly head-on, far from the edge
    assert conf[24, 60] < 0.2  # 3 m: (1/3)^2
    assert conf[24, 30] < 0.5 * conf[24, 10]  # two pixels from the edge


def test_robust_fusion_keeps_the_majority_colour_when_one_view_is_offset(tmp_path: Path) -> None:
    depth = np.full((CAMERA.height, CAMERA.width), 1.5, np.float32)
    # Four views of one wall from one pose; the last one 60 levels brighter (an exposure jump).
    frames = [(grey(100), depth, np.eye(4))] * 3 + [(grey(160), depth, np.eye(4))]
    write_seven_scenes(tmp_path / "seq", frames)
    fused = build_rgbd(tmp_path / "seq", pixel_stride=1, up="none").colors.astype(np.float64)
    plain = build_rgbd(tmp_path / "seq", pixel_stride=1, up="none", fuse_voxel=0.0).colors.astype(np.float64)
    assert plain.mean() == pytest.approx(115.0, abs=1.0)  # unfused, a quarter of the points are the offset view
    assert np.abs(np.median(fused, axis=0) - 100.0).max() <= 3.0
