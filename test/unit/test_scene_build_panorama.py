"""The panorama builder follows the official release's world frame and angle conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldfm_ros.build.backproject import backproject_depth
from worldfm_ros.build.build_panorama import (
    build_panorama, panorama_directions, reference_pose, render_crop,
)
from worldfm_ros.scene.io import write_image
from worldfm_ros.scene.store import load_scene, save_scene

W, H = 128, 64
# a box room around the panorama centre, OpenCV-style world (+y down): floor 1.5 m below
LO = np.array([-3.0, -1.0, -2.5])
HI = np.array([4.0, 1.5, 3.0])


def box_distance(dirs: np.ndarray) -> np.ndarray:
    """Ray distance from the origin to the box along unit directions (..., 3)."""
    safe = np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)
    return np.min(np.where(safe > 0, HI, LO) / safe, axis=-1)


def ramp_panorama() -> np.ndarray:
    """Red grows with the column, green with the row: a pixel's colour tells where it came from."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([2 * x, 4 * y, np.full_like(x, 100)], -1).astype(np.uint8)


@pytest.fixture
def pano_files(tmp_path: Path) -> tuple[Path, Path]:
    write_image(tmp_path / "pano.png", ramp_panorama())
    np.save(tmp_path / "dist.npy", box_distance(panorama_directions(W, H)).astype(np.float32))
    return tmp_path / "pano.png", tmp_path / "dist.npy"


def test_centre_column_is_plus_x_and_quarter_column_is_plus_z() -> None:
    d = panorama_directions(W, H)
    np.testing.assert_allclose(d[H // 2, W // 2], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(d[H // 2, W // 4], [0, 0, 1], atol=1e-12)  # 90° left
    np.testing.assert_allclose(d[0, 0], [0, -1, 0], atol=1e-12)  # top row: up = -y


def test_reference_pose_yaw_turns_right_and_pitch_looks_up() -> None:
    np.testing.assert_allclose(reference_pose(0, 0)[:3, :3], [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(reference_pose(90, 0)[:3, 2], [0, 0, -1], atol=1e-12)  # right = -Z
    np.testing.assert_allclose(reference_pose(0, 30)[:3, 2], [np.cos(np.pi / 6), -0.5, 0], atol=1e-12)
    np.testing.assert_allclose(reference_pose(0, 90)[:3, 2], [0, -1, 0], atol=1e-12)  # pole fallback stays rigid
    for yaw, pitch in [(45, -30), (-135, 45), (0, -90)]:
        R = reference_pose(yaw, pitch)[:3, :3]
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)


@pytest.mark.parametrize("yaw, column", [(0, W // 2), (-90, W // 4), (90, 3 * W // 4)])
def test_crop_centre_samples_the_panorama_along_its_axis(yaw: float, column: int) -> None:
    pano = ramp_panorama()
    K = np.array([[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]])
    image, _ = render_crop(pano, None, K, reference_pose(yaw, 0), 33, 33)
    assert image[16, 16].tolist() == pano[H // 2, column].tolist()


def test_crop_depth_is_z_depth_on_the_box() -> None:
    dist = box_distance(panorama_directions(W, H)).astype(np.float32)
    K = np.array([[20.0, 0, 15.5], [0, 20.0, 15.5], [0, 0, 1]])
    c2w = reference_pose(45, -30)
    _, z = render_crop(ramp_panorama(), dist, K, c2w, 32, 32)
    points, _ = backproject_depth(z, K, c2w)
    on_box = np.max(np.maximum(points / HI, points / LO), axis=1)  # 1 on the box's faces
    assert np.median(np.abs(on_box - 1)) < 0.01
    assert np.percentile(np.abs(on_box - 1), 90) < 0.06  # nearest-sample steps near edges


def test_panorama_scene_has_crops_and_the_floor_at_z0(pano_files: tuple[Path, Path]) -> None:
    anchor = build_panorama(*pano_files, crop_size=32, yaws=(0, 90, 180, -90), pitches=(0, -30))
    assert len(anchor.keyframes) == 8 and anchor.keyframes[0].name == "yaw+0_pitch+0"
    assert anchor.keyframes[0].image.shape == (32, 32, 3) and anchor.keyframes[0].depth.shape == (32, 32)
    T = anchor.map_T_scene
    np.testing.assert_allclose(T[:3, :3], [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [0, 0, 1.5], atol=0.01)  # panorama centre 1.5 m above the floor
    m = anchor.points @ T[:3, :3].T + T[:3, 3]
    assert np.min(m[:, 2]) > -0.02 and np.max(m[:, 2]) == pytest.approx(2.5, abs=0.02)


def test_panorama_scene_round_trips(pano_files: tuple[Path, Path], tmp_path: Path) -> None:
    anchor = build_panorama(*pano_files, stride=2, crop_size=16, yaws=(0, 180), pitches=(0,))
    save_scene(anchor, tmp_path / "pano_scene")
    back = load_scene(tmp_path / "pano_scene")
    assert back.points.tobytes() == anchor.points.tobytes()
    assert [k.depth.tobytes() for k in back.keyframes] == [k.depth.tobytes() for k in anchor.keyframes]


def test_non_2_to_1_panorama_is_rejected(tmp_path: Path) -> None:
    from worldfm_ros.errors import SceneError

    write_image(tmp_path / "p.png", np.zeros((40, 100, 3), np.uint8))
    np.save(tmp_path / "d.npy", np.ones((40, 100), np.float32))
    with pytest.raises(SceneError, match=r"p\.png: an equirectangular panorama is 2:1, got 100x40"):
        build_panorama(tmp_path / "p.png", tmp_path / "d.npy")


def test_release_profile_builds_the_released_cloud_and_42_reference_views(pano_files: tuple[Path, Path]) -> None:
    from worldfm_ros.build.build_panorama import RELEASE_VIEWS

    anchor = build_panorama(*pano_files, profile="release")
    assert len(anchor.points) == 4096 * 2048  # resampled to the 4k tier, one point per pixel, no budget
    assert len(anchor.keyframes) == 42 and [k.name for k in anchor.keyframes[:2]] == ["yaw+0_pitch+0", "yaw+45_pitch+0"]
    assert anchor.keyframes[8].name == "yaw+0_pitch+45" and anchor.keyframes[41].name == "yaw+0_pitch-90"
    assert RELEASE_VIEWS[24] == (0.0, 30.0)
    kf = anchor.keyframes[0]
    assert kf.image.shape == (512, 512, 3) and kf.depth is None
    np.testing.assert_allclose(kf.K, [[320 * 512 / 504, 0, 256], [0, 320 * 512 / 504, 256], [0, 0, 1]])
