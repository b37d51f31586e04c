"""Scene files: lossless round-trips and one-line errors naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from worldfm_ros.errors import SceneError
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.scene.io import write_ply
from worldfm_ros.scene.store import load_scene, save_scene


def make_anchor(seed: int = 0) -> SceneAnchor:
    rng = np.random.default_rng(seed)
    K = np.array([[50.123456789, 0.0, 31.7], [0.0, 49.9, 23.25], [0.0, 0.0, 1.0]])
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_euler("xyz", [0.1, -0.7, 2.9]).as_matrix()
    c2w[:3, 3] = [1 / 3, -2e-7, 12345.678]
    s2m = np.eye(4)
    s2m[:3, :3] = Rotation.from_euler("zyx", [1.0, 0.2, -0.3]).as_matrix()
    s2m[:3, 3] = [0.1, 0.2, -0.0]
    kf_depth = rng.random((48, 64)).astype(np.float32) * 5
    kf_depth[0, :5] = 0.0
    keyframes = [
        Keyframe(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), K, c2w, kf_depth, "first"),
        Keyframe(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), K / [[2], [2], [1]], np.eye(4), None, "second"),
    ]
    points = (rng.normal(size=(500, 3)) * [1e-3, 10, 1e4]).astype(np.float32)
    colors = rng.integers(0, 256, (500, 3), dtype=np.uint8)
    return SceneAnchor(points, colors, s2m, keyframes, "round trip")


def assert_bit_exact(a: SceneAnchor, b: SceneAnchor) -> None:
    assert a.name == b.name
    for x, y in ((a.points, b.points), (a.colors, b.colors), (a.map_T_scene, b.map_T_scene)):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    assert len(a.keyframes) == len(b.keyframes)
    for ka, kb in zip(a.keyframes, b.keyframes):
        assert ka.name == kb.name
        for x, y in ((ka.image, kb.image), (ka.K, kb.K), (ka.c2w, kb.c2w)):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        assert (ka.depth is None) == (kb.depth is None)
        if ka.depth is not None:
            assert ka.depth.dtype == kb.depth.dtype and ka.depth.tobytes() == kb.depth.tobytes()


def test_directory_round_trip_is_bit_exact(tmp_path: Path) -> None:
    anchor = make_anchor()
    save_scene(anchor, tmp_path / "scene")
    assert_bit_exact(anchor, load_scene(tmp_path / "scene"))


def test_npz_round_trip_is_bit_exact(tmp_path: Path) -> None:
    anchor = make_anchor()
    save_scene(anchor, tmp_path / "scene.npz")
    assert_bit_exact(anchor, load_scene(tmp_path / "scene.npz"))


def test_directory_layout_is_yaml_ply_png_npy(tmp_path: Path) -> None:
    from plyfile import PlyData

    save_scene(make_anchor(), tmp_path / "s")
    doc = yaml.safe_load((tmp_path / "s" / "scene.yaml").read_text())
    assert doc["format"] == "worldfm_scene" and doc["version"] == 1
    assert [k["image"] for k in doc["keyframes"]] == ["keyframes/0000.png", "keyframes/0001.png"]
    assert doc["keyframes"][0]["depth"] == "keyframes/0000_depth.npy" and doc["keyframes"][1]["depth"] is None
    ply = PlyData.read(str(tmp_path / "s" / "points.ply"))
    assert not ply.text and ply.byte_order == "<"
    assert [p.name for p in ply["vertex"].properties] == ["x", "y", "z", "red", "green", "blue"]


def test_saving_over_a_scene_drops_its_old_keyframes(tmp_path: Path) -> None:
    anchor = make_anchor()
    save_scene(anchor, tmp_path / "s")
    anchor.keyframes = anchor.keyframes[:1]
    save_scene(anchor, tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s" / "keyframes").iterdir()) == ["0000.png", "0000_depth.npy"]
    assert len(load_scene(tmp_path / "s").keyframes) == 1


def test_scene_yaml_path_loads_too(tmp_path: Path) -> None:
    save_scene(make_anchor(), tmp_path / "s")
    assert load_scene(tmp_path / "s" / "scene.yaml").num_points == 500


@pytest.fixture
def scene_dir(tmp_path: Path) -> Path:
    save_scene(make_anchor(), tmp_path / "s")
    return tmp_path / "s"


def edit_yaml(scene_dir: Path, edit) -> None:
    path = scene_dir / "scene.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def load_error(path: Path) -> str:
    with pytest.raises(SceneError) as info:
        load_scene(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_scene_yaml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "scene.yaml: scene file not found" in load_error(tmp_path / "empty")


def test_missing_keyframe_image_names_the_file(scene_dir: Path) -> None:
    (scene_dir / "keyframes" / "0001.png").unlink()
    assert "0001.png: image not found" in load_error(scene_dir)


def test_corrupt_yaml_names_the_file_and_line(scene_dir: Path) -> None:
    (scene_dir / "scene.yaml").write_text("format: worldfm_scene\nversion: [1\n")
    msg = load_error(scene_dir)
    assert "scene.yaml: invalid YAML at line" in msg


def test_corrupt_ply_names_the_file(scene_dir: Path) -> None:
    data = (scene_dir / "points.ply").read_bytes()
    (scene_dir / "points.ply").write_bytes(data[:300])
    assert "points.ply: not a readable PLY file" in load_error(scene_dir)


def test_unreadable_ply_garbage_names_the_file(scene_dir: Path) -> None:
    (scene_dir / "points.ply").write_bytes(b"\x00\x01garbage")
    assert "points.ply: not a readable PLY file" in load_error(scene_dir)


def test_wrong_format_version_is_rejected(scene_dir: Path) -> None:
    edit_yaml(scene_dir, lambda d: d.update(version=2))
    msg = load_error(scene_dir)
    assert "scene.yaml: format version is not supported (this reader knows version 1)" in msg
    assert "2" not in msg.split("scene.yaml")[-1], "the version read from the file is not repeated"


def test_keyframe_count_mismatch_is_rejected(scene_dir: Path) -> None:
    edit_yaml(scene_dir, lambda d: d.update(num_keyframes=3))
    assert "keyframes lists 2 entries but num_keyframes = 3" in load_error(scene_dir)


def test_point_count_mismatch_is_rejected(scene_dir: Path) -> None:
    edit_yaml(scene_dir, lambda d: d["points"].update(count=7))
    assert "points.ply: holds 500 vertices but" in load_error(scene_dir)


def test_keyframe_size_mismatch_names_the_image_and_field(scene_dir: Path) -> None:
    edit_yaml(scene_dir, lambda d: d["keyframes"][1].update(size=[64, 48]))
    msg = load_error(scene_dir)
    assert "0001.png: image is 32x24" in msg and "keyframes[1].size" in msg


def test_nan_depth_names_the_depth_file(scene_dir: Path) -> None:
    d = np.load(scene_dir / "keyframes" / "0000_depth.npy")
    d[3, 4] = np.nan
    np.save(scene_dir / "keyframes" / "0000_depth.npy", d)
    assert "0000_depth.npy: depth contains 1 NaN/inf pixels" in load_error(scene_dir)


def test_nan_point_names_the_ply(scene_dir: Path) -> None:
    anchor = make_anchor()
    points = anchor.points.copy()
    points[10, 1] = np.nan
    write_ply(scene_dir / "points.ply", points, anchor.colors)
    assert "points.ply: point positions contain NaN or inf" in load_error(scene_dir)


def test_non_orthonormal_rotation_names_the_field(scene_dir: Path) -> None:
    def skew(d):
        d["keyframes"][0]["c2w"][0][0] *= 1.01

    edit_yaml(scene_dir, skew)
    msg = load_error(scene_dir)
    assert "keyframes[0].c2w: rotation is not orthonormal" in msg and "scene.yaml" in msg


def test_non_orthonormal_scene_to_map_names_the_field(scene_dir: Path) -> None:
    edit_yaml(scene_dir, lambda d: d["scene_to_map"][1].__setitem__(1, 2.0))
    assert "scene.yaml: scene_to_map: rotation is not orthonormal" in load_error(scene_dir)


def test_K_for_another_image_size_is_rejected(scene_dir: Path) -> None:
    edit_yaml(scene_dir, lambda d: d["keyframes"][1].update(K=[[320.0, 0, 256.0], [0, 320.0, 256.0], [0, 0, 1]]))
    msg = load_error(scene_dir)
    assert "keyframes[1].K: K principal point (256, 256) lies outside the 32x24 image" in msg


def test_empty_cloud_is_rejected(scene_dir: Path) -> None:
    write_ply(scene_dir / "points.ply", np.zeros((0, 3)), np.zeros((0, 3)))
    edit_yaml(scene_dir, lambda d: d["points"].update(count=0))
    assert "points.ply: the point cloud is empty" in load_error(scene_dir)


def test_missing_yaml_field_is_named(scene_dir: Path) -> None:
    edit_yaml(scene_dir, lambda d: d.pop("scene_to_map"))
    assert "scene.yaml: missing field 'scene_to_map'" in load_error(scene_dir)


def test_corrupt_npz_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    assert "bad.npz: not a readable .npz scene" in load_error(tmp_path / "bad.npz")


def test_npz_missing_keyframe_array_is_named(tmp_path: Path) -> None:
    save_scene(make_anchor(), tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "kf0001_image"}
    np.savez(tmp_path / "s.npz", **arrays)
    assert "s.npz: array 'kf0001_image' is missing" in load_error(tmp_path / "s.npz")


def test_npz_wrong_version_is_rejected(tmp_path: Path) -> None:
    save_scene(make_anchor(), tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["version"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "s.npz", **arrays)
    msg = load_error(tmp_path / "s.npz")
    assert "format version is not supported" in msg and "99" not in msg


def test_npz_nan_points_are_rejected(tmp_path: Path) -> None:
    save_scene(make_anchor(), tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["points"][0, 0] = np.inf
    np.savez(tmp_path / "s.npz", **arrays)
    assert "s.npz: points: point positions contain NaN or inf" in load_error(tmp_path / "s.npz")


def test_npz_keyframe_count_mismatch_is_rejected(tmp_path: Path) -> None:
    save_scene(make_anchor(), tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["num_keyframes"] = 1
    meta["keyframes"] = meta["keyframes"][:1]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "s.npz", **arrays)
    assert "s.npz: unexpected array 'kf0001_K' (meta says num_keyframes = 1)" in load_error(tmp_path / "s.npz")


def test_keyframe_depth_outside_the_scene_folder_is_refused_without_naming_it(scene_dir: Path) -> None:
    edit_yaml(scene_dir, lambda d: d["keyframes"][0].update(depth="../../secret_depth.npy"))
    msg = load_error(scene_dir)
    assert "keyframes[0].depth: expected a path inside the scene folder" in msg and "secret" not in msg


def test_link_leading_out_of_the_scene_folder_is_refused(scene_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.ply"
    (scene_dir / "points.ply").rename(outside)
    (scene_dir / "points.ply").symlink_to(outside)
    assert "points.file: expected a path inside the scene folder" in load_error(scene_dir)


def test_depth_npy_declaring_more_data_than_it_holds_is_refused_before_reading(scene_dir: Path) -> None:
    with open(scene_dir / "keyframes" / "0000_depth.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    msg = load_error(scene_dir)
    assert "0000_depth.npy: keyframe depth: the header declares more data than the file holds" in msg


def test_keyframe_image_larger_than_8k_is_refused_from_its_header(scene_dir: Path) -> None:
    from PIL import Image

    Image.new("RGB", (9000, 10)).save(scene_dir / "keyframes" / "0001.png")
    assert "0001.png: image: expected at most 8192 px a side" in load_error(scene_dir)


def test_point_count_above_the_limit_is_refused_before_reading_the_ply(scene_dir: Path) -> None:
    edit_yaml(scene_dir, lambda d: d["points"].update(count=10**9))
    assert "scene.yaml: points.count: expected 0..20000000" in load_error(scene_dir)



def test_npz_with_more_points_than_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "many.npz"
    n = 20_000_001
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("points.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, 3)})
            for _ in range(n * 12 // 2**24 + 1):
                f.write(bytes(2**24))
    assert "many.npz: array 'points': expected at most 20000000 points" in load_error(path)


def test_npz_keyframe_larger_than_8k_is_refused_from_its_npy_header_before_inflating(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "big.npz"
    side = 16_000  # 768 MB as an RGB array, a few MB deflated
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("kf0000_image.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (side, side, 3)})
            row = bytes(side * 3 * 1000)
            for _ in range(side // 1000):
                f.write(row)
    assert path.stat().st_size < 8 * 1024**2
    assert (f"big.npz: array 'kf0000_image': expected at most 8192 px a side and 33177600 pixels in all "
            f"(7680x4320), got 16000x16000") in load_error(path)


@pytest.fixture
def small_keyframe_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    from worldfm_ros.scene import store

    limit = 64 * 48 + 32 * 24 - 1  # one pixel fewer than make_anchor's two keyframes hold
    monkeypatch.setattr(store, "MAX_KEYFRAME_PIXELS", limit)
    return limit


def test_npz_keyframes_over_the_total_pixel_limit_are_refused_before_inflating(tmp_path: Path,
                                                                                small_keyframe_limit: int) -> None:
    save_scene(make_anchor(), tmp_path / "s.npz")
    assert (f"s.npz: keyframes: expected at most {small_keyframe_limit} pixels in all, the archive holds 3840"
            in load_error(tmp_path / "s.npz"))


def test_directory_keyframes_over_the_total_pixel_limit_are_refused_from_the_image_headers(
        tmp_path: Path, small_keyframe_limit: int) -> None:
    save_scene(make_anchor(), tmp_path / "scene")
    assert (f"scene.yaml: keyframes: expected at most {small_keyframe_limit} pixels in all, keyframes[1] goes "
            "past it" in load_error(tmp_path / "scene"))

