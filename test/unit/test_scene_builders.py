"""Image, PLY and WorldFM meta.json builders, and the scene-build / scene-info commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.cli import main
from worldfm_ros.errors import SceneError
from worldfm_ros.build.build_image import build_image
from worldfm_ros.build.build_ply import build_ply
from worldfm_ros.build.build_worldfm import build_worldfm, input_view_intrinsics, read_worldfm_meta
from worldfm_ros.scene.io import write_image, write_ply
from worldfm_ros.build.procedural import body_pose, make_room_scene, random_room
from worldfm_ros.scene.store import load_scene, save_scene

CAMERA = PinholeCamera.from_fov(64, 48, 75.0)
ROOM = random_room(seed=3)


def room_view(camera: PinholeCamera = CAMERA, pitch: float = 0.35) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c2w = body_pose(ROOM.size[0] / 2, ROOM.size[1] / 2, 0.4, height=1.3, pitch=pitch)
    rgb, depth = ROOM.raycast(camera, c2w)
    return rgb, depth, c2w


def map_z(anchor, p: np.ndarray) -> np.ndarray:
    T = anchor.map_T_scene
    return (p @ T[:3, :3].T + T[:3, 3])[:, 2]


@pytest.fixture
def image_files(tmp_path: Path) -> tuple[Path, Path]:
    rgb, depth, _ = room_view()
    write_image(tmp_path / "view.png", rgb)
    cv2.imwrite(str(tmp_path / "view_depth.png"), np.round(depth * 1000).astype(np.uint16))
    return tmp_path / "view.png", tmp_path / "view_depth.png"


def test_image_scene_has_one_identity_keyframe_and_its_floor_at_z0(image_files: tuple[Path, Path]) -> None:
    anchor = build_image(*image_files, K=CAMERA.K)
    assert len(anchor.keyframes) == 1 and anchor.num_points == 64 * 48
    kf = anchor.keyframes[0]
    np.testing.assert_array_equal(kf.c2w, np.eye(4))
    assert map_z(anchor, np.zeros((1, 3)))[0] == pytest.approx(1.3, abs=0.02)  # camera height
    assert np.min(map_z(anchor, anchor.points)) > -0.02


def test_image_scene_from_field_of_view_matches_K(image_files: tuple[Path, Path]) -> None:
    anchor = build_image(*image_files, hfov_deg=75.0)
    np.testing.assert_allclose(anchor.keyframes[0].K, CAMERA.K)


def test_image_scene_round_trips(image_files: tuple[Path, Path], tmp_path: Path) -> None:
    anchor = build_image(*image_files, K=CAMERA.K, max_points=1000)
    assert 950 <= anchor.num_points <= 1000
    save_scene(anchor, tmp_path / "img.npz")
    back = load_scene(tmp_path / "img.npz")
    assert back.points.tobytes() == anchor.points.tobytes() and back.colors.tobytes() == anchor.colors.tobytes()
    assert back.keyframes[0].depth.tobytes() == anchor.keyframes[0].depth.tobytes()


def test_image_K_for_another_size_is_rejected(image_files: tuple[Path, Path]) -> None:
    with pytest.raises(SceneError, match=r"view\.png: K: K principal point \(256, 256\) lies outside the 64x48 image"):
        build_image(*image_files, K=np.array([[320.0, 0, 256], [0, 320.0, 256], [0, 0, 1]]))


def test_image_depth_of_another_size_is_rejected(image_files: tuple[Path, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "small.npy", np.ones((24, 32), np.float32))
    with pytest.raises(SceneError, match=r"small\.npy: depth is 32x24, image view\.png is 64x48"):
        build_image(image_files[0], tmp_path / "small.npy", K=CAMERA.K)


def test_image_nan_depth_is_rejected(image_files: tuple[Path, Path], tmp_path: Path) -> None:
    d = np.ones((48, 64), np.float32)
    d[0, 0] = np.nan
    np.save(tmp_path / "nan.npy", d)
    with pytest.raises(SceneError, match=r"nan\.npy: depth contains 1 NaN/inf pixels"):
        build_image(image_files[0], tmp_path / "nan.npy", K=CAMERA.K)


def test_image_without_valid_depth_is_an_empty_cloud_error(image_files: tuple[Path, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "zero.npy", np.zeros((48, 64), np.float32))
    with pytest.raises(SceneError, match=r"zero\.npy: the point cloud is empty"):
        build_image(image_files[0], tmp_path / "zero.npy", K=CAMERA.K)


@pytest.fixture
def room_ply(tmp_path: Path) -> Path:
    """A z-up room cloud whose floor sits at z = 0.5."""
    anchor = make_room_scene(ROOM, CAMERA, num_views=6, num_keyframes=1, stride=2)
    write_ply(tmp_path / "room.ply", anchor.points + np.float32([0, 0, 0.5]), anchor.colors)
    return tmp_path / "room.ply"


def test_ply_without_keyframes_is_taken_as_z_up(room_ply: Path) -> None:
    anchor = build_ply(room_ply)
    np.testing.assert_allclose(anchor.map_T_scene[:3, :3], np.eye(3), atol=1e-12)
    assert anchor.map_T_scene[2, 3] == pytest.approx(-0.5, abs=0.01)


def test_ply_with_keyframe_list_round_trips(room_ply: Path, tmp_path: Path) -> None:
    rgb, depth, c2w = room_view()
    write_image(tmp_path / "kf.png", rgb)
    np.save(tmp_path / "kf_depth.npy", depth)
    c2w_scene = c2w.copy()
    c2w_scene[2, 3] += 0.5
    (tmp_path / "kfs.yaml").write_text(yaml.safe_dump({"keyframes": [
        {"image": "kf.png", "K": CAMERA.K.tolist(), "c2w": c2w_scene.tolist(), "depth": "kf_depth.npy", "name": "front"},
        {"image": "kf.png", "hfov_deg": 75.0, "c2w": c2w_scene.tolist()},
    ]}))
    anchor = build_ply(room_ply, tmp_path / "kfs.yaml", max_points=5000)
    assert [k.name for k in anchor.keyframes] == ["front", "kf"]
    np.testing.assert_allclose(anchor.keyframes[1].K, CAMERA.K)
    assert (anchor.map_T_scene @ c2w_scene)[2, 3] == pytest.approx(1.3, abs=0.02)
    save_scene(anchor, tmp_path / "ply_scene")
    back = load_scene(tmp_path / "ply_scene")
    assert back.points.tobytes() == anchor.points.tobytes()
    assert back.keyframes[0].c2w.tobytes() == anchor.keyframes[0].c2w.tobytes()


def test_ply_keyframe_with_bad_rotation_names_the_entry(room_ply: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "kf.png", room_view()[0])
    bad = np.eye(4)
    bad[0, 1] = 0.3
    (tmp_path / "kfs.json").write_text(json.dumps([{"image": "kf.png", "hfov_deg": 60, "c2w": bad.tolist()}]))
    with pytest.raises(SceneError, match=r"kfs\.json: keyframes\[0\]\.c2w: rotation is not orthonormal"):
        build_ply(room_ply, tmp_path / "kfs.json")


def test_corrupt_ply_input_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n\x00")
    with pytest.raises(SceneError, match=r"bad\.ply: not a readable PLY file"):
        build_ply(tmp_path / "bad.ply")


def test_empty_ply_input_is_an_empty_cloud_error(tmp_path: Path) -> None:
    write_ply(tmp_path / "empty.ply", np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(SceneError, match=r"empty\.ply: the point cloud is empty"):
        build_ply(tmp_path / "empty.ply")


@pytest.fixture
def meta_files(tmp_path: Path) -> tuple[Path, Path]:
    """meta.json + image + depth; the image is a level view of a room, as the release's input view."""
    camera = PinholeCamera.from_K(input_view_intrinsics(64, 48), 64, 48)
    rgb, depth, _ = room_view(camera, pitch=0.0)
    write_image(tmp_path / "input.png", rgb)
    np.save(tmp_path / "input_depth.npy", depth)
    c2w = [np.eye(4).tolist(), np.eye(4).tolist()]
    meta = {"name": "demo", "image": "input.png", "K": [[320, 0, 256], [0, 320, 256], [0, 0, 1]], "c2w": c2w}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    return tmp_path / "meta.json", tmp_path / "input_depth.npy"


def test_worldfm_image_is_back_projected_looking_along_plus_x(meta_files: tuple[Path, Path]) -> None:
    anchor = build_worldfm(*meta_files)
    assert anchor.name == "demo" and len(anchor.keyframes) == 1
    np.testing.assert_allclose(anchor.keyframes[0].c2w[:3, 2], [1, 0, 0], atol=1e-12)
    assert np.all(anchor.points[:, 0] > 0)  # everything lies in front, along +X
    np.testing.assert_allclose(anchor.map_T_scene[:3, :3], [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    assert anchor.map_T_scene[2, 3] == pytest.approx(1.3, abs=0.02)  # camera height above the floor


def test_worldfm_meta_poses_are_read(meta_files: tuple[Path, Path]) -> None:
    meta = read_worldfm_meta(meta_files[0])
    assert meta.c2w.shape == (2, 4, 4) and meta.image.name == "input.png"
    np.testing.assert_array_equal(meta.K, [[320, 0, 256], [0, 320, 256], [0, 0, 1]])


def test_worldfm_scene_round_trips(meta_files: tuple[Path, Path], tmp_path: Path) -> None:
    anchor = build_worldfm(*meta_files)
    save_scene(anchor, tmp_path / "wfm")
    back = load_scene(tmp_path / "wfm")
    assert back.points.tobytes() == anchor.points.tobytes() and back.name == "demo"


def test_worldfm_meta_missing_field_is_named(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text(json.dumps({"name": "x", "image": "a.png", "K": np.eye(3).tolist()}))
    with pytest.raises(SceneError, match=r"meta\.json: missing field 'c2w'"):
        read_worldfm_meta(tmp_path / "meta.json")


def test_worldfm_meta_bad_pose_is_named(meta_files: tuple[Path, Path]) -> None:
    meta = json.loads(meta_files[0].read_text())
    meta["c2w"][1][2][2] = 3.0
    meta_files[0].write_text(json.dumps(meta))
    with pytest.raises(SceneError, match=r"meta\.json: c2w\[1\]: rotation is not orthonormal"):
        read_worldfm_meta(meta_files[0])


def test_cli_builds_saves_and_reports(image_files: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli_scene"
    fx, fy, cx, cy = CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy
    code = main(["scene-build", "image", str(image_files[0]), str(image_files[1]),
                 "--K", str(fx), str(fy), str(cx), str(cy), "-o", str(out), "--max-points", "2000"])
    printed = capsys.readouterr().out
    assert code == 0 and "1 keyframes" in printed and "bounds, map frame" in printed
    assert 1900 <= int(re.search(r"([\d,]+) points", printed).group(1).replace(",", "")) <= 2000
    assert (out / "scene.yaml").is_file()
    assert main(["scene-info", str(out), "--keyframes"]) == 0
    info = capsys.readouterr().out
    assert "1 keyframes" in info and "view" in info and "map_T_scene" in info


def test_cli_reports_bad_input_in_one_line(image_files: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    code = main(["scene-build", "image", str(image_files[0]), str(tmp_path / "missing.npy"), "--hfov", "60",
                 "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "missing.npy: depth map not found" in err
