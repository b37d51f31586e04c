"""Raw depth from a separate depth camera is registered into the colour camera before use."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.build.build_rgbd import build_rgbd, read_sequence
from worldfm_ros.scene.io import write_image
from worldfm_ros.build.procedural import body_pose, random_room
from worldfm_ros.build.registration import DepthCamera, register_depth

DEPTH_CAMERA = PinholeCamera.from_K(np.array([[70.0, 0, 40], [0, 70.0, 30], [0, 0, 1]]), 80, 60)
COLOR_CAMERA = PinholeCamera.from_K(np.array([[60.0, 0, 40], [0, 60.0, 30], [0, 0, 1]]), 80, 60)
COLOR_T_DEPTH = np.eye(4)
COLOR_T_DEPTH[0, 3] = -0.05  # the depth camera 5 cm to the colour camera's right


def rig_frames(n: int = 4):
    """n views of a procedural room from a Kinect-like rig: the colour camera's image and pose,
    the depth camera's depth and pose (c2w (4, 4), OpenCV axes, metres)."""
    room = random_room(seed=3)
    frames = []
    for k in range(n):
        world_T_color = body_pose(room.size[0] / 2, room.size[1] / 2, 2 * np.pi * k / n, height=1.1, pitch=0.2)
        world_T_depth = world_T_color @ COLOR_T_DEPTH
        rgb, _ = room.raycast(COLOR_CAMERA, world_T_color)
        _, depth = room.raycast(DEPTH_CAMERA, world_T_depth)
        frames.append((rgb, depth, world_T_color, world_T_depth))
    return room, frames


def test_registration_with_the_same_camera_returns_the_depth_unchanged() -> None:
    _, frames = rig_frames(1)
    depth = frames[0][1]
    out = register_depth(depth, DepthCamera(DEPTH_CAMERA.K, np.eye(4)), DEPTH_CAMERA.K, (80, 60))
    np.testing.assert_allclose(out, depth, rtol=1e-6)


def test_registered_depth_matches_the_colour_cameras_own_depth() -> None:
    room, frames = rig_frames(1)
    _, depth, world_T_color, _ = frames[0]
    _, truth = room.raycast(COLOR_CAMERA, world_T_color)
    out = register_depth(depth, DepthCamera(DEPTH_CAMERA.K, COLOR_T_DEPTH), COLOR_CAMERA.K, (80, 60))
    seen = out > 0
    assert seen.mean() > 0.7  # the depth camera sees (60/70)² ≈ 0.73 of the colour image
    close = np.abs(out[seen] - truth[seen]) < 0.02 * truth[seen]
    assert close.mean() > 0.97


def test_a_magnifying_colour_camera_gets_no_pinholes() -> None:
    _, frames = rig_frames(1)
    depth = frames[0][1]
    zoom = np.array([[140.0, 0, 40], [0, 140.0, 30], [0, 0, 1]])  # twice the depth camera's focal length
    out = register_depth(depth, DepthCamera(DEPTH_CAMERA.K, np.eye(4)), zoom, (80, 60))
    assert (out > 0).all()


def test_the_nearest_surface_wins_where_two_depth_pixels_land_on_one_colour_pixel() -> None:
    depth = np.zeros((60, 80), np.float32)
    depth[30, 40] = 2.0
    depth[30, 41] = 1.0
    wide = np.array([[20.0, 0, 40], [0, 20.0, 30], [0, 0, 1]])  # both pixels land on colour pixel (40, 30)
    out = register_depth(depth, DepthCamera(DEPTH_CAMERA.K, np.eye(4)), wide, (80, 60))
    assert out[30, 40] == pytest.approx(1.0)
    assert np.count_nonzero(out) == 1


def write_unregistered(root: Path, frames) -> None:
    root.mkdir()
    np.savetxt(root / "camera-intrinsics.txt", DEPTH_CAMERA.K)
    np.savetxt(root / "color-intrinsics.txt", COLOR_CAMERA.K)
    np.savetxt(root / "color_T_depth.txt", COLOR_T_DEPTH)
    for i, (rgb, depth, _, world_T_depth) in enumerate(frames):
        write_image(root / f"frame-{i:06d}.color.png", rgb)
        cv2.imwrite(str(root / f"frame-{i:06d}.depth.png"), np.round(depth * 1000).astype(np.uint16))
        np.savetxt(root / f"frame-{i:06d}.pose.txt", world_T_depth)


def test_a_folder_with_colour_intrinsics_yields_colour_camera_poses_and_registered_depth(tmp_path: Path) -> None:
    room, frames = rig_frames(2)
    write_unregistered(tmp_path / "seq", frames)
    seq = read_sequence(tmp_path / "seq")
    np.testing.assert_allclose(seq.K, COLOR_CAMERA.K)
    np.testing.assert_allclose(seq.frames[1].c2w, frames[1][2], atol=1e-9)
    image, depth = seq.load(seq.frames[1])
    _, truth = room.raycast(COLOR_CAMERA, frames[1][2])
    seen = depth > 0
    assert image.shape == (60, 80, 3) and seen.mean() > 0.7
    assert np.median(np.abs(depth[seen] - truth[seen]) / truth[seen]) < 0.005  # mm PNGs, pixel snapping


def test_registration_colours_the_anchor_from_the_right_pixels(tmp_path: Path) -> None:
    _, frames = rig_frames(4)
    write_unregistered(tmp_path / "seq", frames)
    errors = {}
    for mode in ("auto", "registered"):
        anchor = build_rgbd(tmp_path / "seq", pixel_stride=1, depth_registration=mode, up="+z")
        # Each point's colour against the colour image at the point's projection (scene = room frame).
        rgb, _, world_T_color, _ = frames[0]
        T = np.linalg.inv(world_T_color)
        cam = anchor.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        K = COLOR_CAMERA.K
        front = cam[:, 2] > 0.1
        u = np.rint(K[0, 0] * cam[front, 0] / cam[front, 2] + K[0, 2]).astype(int)
        v = np.rint(K[1, 1] * cam[front, 1] / cam[front, 2] + K[1, 2]).astype(int)
        inside = (u >= 0) & (u < 80) & (v >= 0) & (v < 60)
        diff = anchor.colors[front][inside].astype(float) - rgb[v[inside], u[inside]].astype(float)
        errors[mode] = float(np.abs(diff).mean())
    assert errors["auto"] < 0.5 * errors["registered"]


def test_seven_scenes_is_recognised_as_raw_kinect_depth(shared_data: Path) -> None:
    seq = read_sequence(shared_data / "sevenscenes_redkitchen")
    assert seq.depth_camera is not None
    assert seq.K[0, 0] == pytest.approx(525.0)
    assert read_sequence(shared_data / "icl_livingroom").depth_camera is None


def test_scene_build_rgbd_takes_the_registration_and_the_fusion_cell_from_the_command_line(tmp_path: Path) -> None:
    from worldfm_ros.cli import main
    from worldfm_ros.scene.store import load_scene

    _, frames = rig_frames(2)
    write_unregistered(tmp_path / "seq", frames)
    counts = {}
    for mode in ("auto", "registered"):
        out = tmp_path / f"scene_{mode}"
        assert main(["scene-build", "rgbd", str(tmp_path / "seq"), "--depth-registration", mode,
                     "--fuse-voxel", "0", "--pixel-stride", "1", "--up", "+z", "-o", str(out)]) == 0
        counts[mode] = len(load_scene(out).points)
    # Unfused, every pixel off a depth edge is a point: the raw depth map is full, its registration
    # covers ~0.73 of the colour image.
    assert counts["registered"] > 0.9 * 2 * 80 * 60
    assert 0.65 * counts["registered"] < counts["auto"] < 0.8 * counts["registered"]
