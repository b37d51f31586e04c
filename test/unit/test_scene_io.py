"""Image, depth, intrinsics and PLY readers of the scene builders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from worldfm_ros.errors import SceneError
from worldfm_ros.scene.io import read_depth, read_image, read_intrinsics, read_ply, write_image, write_ply


def test_png_depth_is_millimetres_by_default(tmp_path: Path) -> None:
    raw = np.array([[1000, 2500], [0, 65535]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), raw)
    np.testing.assert_array_equal(read_depth(tmp_path / "d.png"), [[1.0, 2.5], [0.0, 0.0]])


def test_png_depth_scale_is_configurable(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "d.png"), np.array([[5000, 10000]], dtype=np.uint16))
    np.testing.assert_allclose(read_depth(tmp_path / "d.png", scale=1 / 5000), [[1.0, 2.0]])


def test_npy_depth_is_metres(tmp_path: Path) -> None:
    d = np.array([[0.5, 0.0], [3.25, 7.0]], dtype=np.float32)
    np.save(tmp_path / "d.npy", d)
    out = read_depth(tmp_path / "d.npy")
    assert out.dtype == np.float32 and out.tobytes() == d.tobytes()


def test_exr_depth_is_read(tmp_path: Path) -> None:
    OpenEXR = pytest.importorskip("OpenEXR", reason="the OpenEXR package is not installed")
    d = np.array([[0.5, 1.0, 0.0], [2.0, 3.0, 4.0]], dtype=np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"Z": d}) as f:
        f.write(str(tmp_path / "d.exr"))
    np.testing.assert_array_equal(read_depth(tmp_path / "d.exr"), d)


def test_nan_depth_is_an_error_naming_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]], dtype=np.float32))
    with pytest.raises(SceneError, match=r"nan\.npy: depth contains 1 NaN/inf pixels"):
        read_depth(tmp_path / "nan.npy")


def test_colour_depth_image_is_an_error(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(SceneError, match=r"c\.png: depth map must be single-channel"):
        read_depth(tmp_path / "c.png")


def test_missing_image_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SceneError, match=r"nope\.png: image not found"):
        read_image(tmp_path / "nope.png")


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(SceneError, match=r"bad\.png: not a readable image"):
        read_image(tmp_path / "bad.png")


def test_image_round_trip_is_rgb(tmp_path: Path) -> None:
    img = np.zeros((3, 4, 3), np.uint8)
    img[..., 0] = 200  # red
    write_image(tmp_path / "i.png", img)
    assert read_image(tmp_path / "i.png").tobytes() == img.tobytes()
    assert cv2.imread(str(tmp_path / "i.png"))[0, 0].tolist() == [0, 0, 200]  # BGR on disk


def test_intrinsics_from_open3d_json_are_column_major(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_text(json.dumps(
        {"width": 640, "height": 480, "intrinsic_matrix": [525.0, 0, 0, 0, 520.0, 0, 319.5, 239.5, 1]}))
    K, size = read_intrinsics(tmp_path / "k.json")
    np.testing.assert_array_equal(K, [[525, 0, 319.5], [0, 520, 239.5], [0, 0, 1]])
    assert size == (640, 480)


def test_intrinsics_from_text_matrix_or_four_numbers(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("585 0 320\n0 585 240\n0 0 1\n")
    (tmp_path / "b.txt").write_text("585 585 320 240\n")
    np.testing.assert_array_equal(read_intrinsics(tmp_path / "a.txt")[0], read_intrinsics(tmp_path / "b.txt")[0])


def test_ply_with_float_colours_and_ascii_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
        "property float r\nproperty float g\nproperty float b\nend_header\n0 1 2 1 0 0.5\n3 4 5 0 1 0\n")
    points, colors = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(points, [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(colors, [[255, 0, 128], [0, 255, 0]])


def test_ply_without_colours_is_grey(tmp_path: Path) -> None:
    (tmp_path / "a.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
        "end_header\n0 1 2\n")
    assert read_ply(tmp_path / "a.ply")[1].tolist() == [[128, 128, 128]]


def test_ply_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    p = rng.normal(size=(20, 3)).astype(np.float32)
    c = rng.integers(0, 256, (20, 3), dtype=np.uint8)
    write_ply(tmp_path / "a.ply", p, c)
    q, d = read_ply(tmp_path / "a.ply")
    assert q.tobytes() == p.tobytes() and d.tobytes() == c.tobytes()


def test_ply_without_xyz_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n0 1\n")
    with pytest.raises(SceneError, match=r"a\.ply: PLY vertex element lacks field\(s\) z"):
        read_ply(tmp_path / "a.ply")
