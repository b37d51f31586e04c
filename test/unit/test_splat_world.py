"""Gaussian-splat worlds: importing the file formats users bring, mapping their axes to the map,
refusing bad files with one line, and driving through the result like any other world."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from worldfm_ros.errors import SceneError
from worldfm_ros.render.gaussians import SH_C0, make_gaussians, transform_gaussians
from worldfm_ros.build.build_splats import build_splats, splats_from_points
from worldfm_ros.scene.splat_io import read_splats, write_dot_splat, write_splats
from worldfm_ros.world.base import World, points_in_map
from worldfm_ros.world.splats import SplatWorld, save_splat_world
from worldfm_ros.world.store import load_world

plyfile = pytest.importorskip("plyfile")
gsply = pytest.importorskip("gsply")

ROOM = np.array([6.0, 4.0, 2.5])  # x, y, z extent of the test room, metres, z up
SPACING = 0.08


#: furniture on the floor: (min corner, max corner), metres
BOXES = [((0.5, 0.5, 0.0), (1.5, 1.5, 0.8)), ((4.0, 0.4, 0.0), (5.2, 1.2, 0.8)), ((2.0, 2.9, 0.0), (3.0, 3.6, 0.8))]


def box_faces(lo, hi, spacing: float, colour_base: int, bottom: bool = True) -> tuple[list, list]:
    """Points on the faces of the box [lo, hi] (its bottom only if ``bottom``), face k coloured from a
    palette at colour_base + k."""
    palette = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200], [200, 200, 60], [130, 130, 130], [240, 240, 240],
                        [150, 90, 40]])
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    points, colors = [], []
    for axis in range(3):
        a, b = [i for i in range(3) if i != axis]
        A, B = np.meshgrid(np.arange(lo[a] + spacing / 2, hi[a], spacing), np.arange(lo[b] + spacing / 2, hi[b], spacing))
        for side in (0, 1):
            if axis == 2 and side == 0 and not bottom:
                continue
            p = np.zeros((A.size, 3))
            p[:, a], p[:, b], p[:, axis] = A.ravel(), B.ravel(), (lo, hi)[side][axis]
            points.append(p)
            colors.append(np.tile(palette[min(colour_base + 2 * axis + side, len(palette) - 1)], (len(p), 1)))
    return points, colors


def room_points(spacing: float = SPACING) -> tuple[np.ndarray, np.ndarray]:
    """Points on the six faces of the room [0, ROOM] (z up, each face its own colour) and on BOXES."""
    points, colors = box_faces((0, 0, 0), ROOM, spacing, 0)
    for lo, hi in BOXES:
        p, c = box_faces(lo, hi, spacing, 6, bottom=False)
        points += p
        colors += c
    return np.concatenate(points).astype(np.float32), np.concatenate(colors).astype(np.uint8)


@pytest.fixture(scope="module")
def room_gaussians():
    """The room as Gaussian discs, z up."""
    return splats_from_points(*room_points(), SPACING)


# OpenCV-style file axes (y down): map z up = file -y
FILE_T_ZUP = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def opencv_ply(room_gaussians, tmp_path_factory) -> Path:
    """The room written as an INRIA 3DGS PLY in OpenCV axes."""
    return write_splats(tmp_path_factory.mktemp("ply") / "room.ply", transform_gaussians(room_gaussians, FILE_T_ZUP))


def write_inria_ply(path: Path, n: int = 4, degree: int = 1, drop: str | None = None, rest: int | None = None,
                    means: np.ndarray | None = None) -> dict:
    """An INRIA-layout PLY written field by field with plyfile (normals included, as 3DGS writes)."""
    rng = np.random.default_rng(0)
    k = 3 * ((degree + 1) ** 2 - 1) if rest is None else rest
    fields = {"x": rng.normal(size=n), "y": rng.normal(size=n), "z": rng.normal(size=n),
              "nx": np.zeros(n), "ny": np.zeros(n), "nz": np.zeros(n)}
    fields.update({f"f_dc_{i}": rng.normal(size=n) for i in range(3)})
    fields.update({f"f_rest_{i}": rng.normal(size=n) for i in range(k)})
    fields["opacity"] = rng.normal(size=n)
    fields.update({f"scale_{i}": rng.uniform(-5, -2, n) for i in range(3)})
    fields.update({f"rot_{i}": rng.normal(size=n) + (2.0 if i == 0 else 0.0) for i in range(4)})
    if means is not None:
        fields["x"], fields["y"], fields["z"] = means.T
    if drop:
        fields.pop(drop)
    data = np.zeros(n, dtype=[(name, "<f4") for name in fields])
    for name, values in fields.items():
        data[name] = values
    plyfile.PlyData([plyfile.PlyElement.describe(data, "vertex")]).write(str(path))
    return fields


def test_an_inria_ply_is_read_activated_with_its_sh_in_channel_order(tmp_path):
    f = write_inria_ply(tmp_path / "s.ply", degree=1)
    g = read_splats(tmp_path / "s.ply")
    np.testing.assert_allclose(g.means[:, 0], f["x"], rtol=1e-6)
    np.testing.assert_allclose(g.scales[:, 1], np.exp(f["scale_1"]), rtol=1e-5)
    np.testing.assert_allclose(g.opacities, 1 / (1 + np.exp(-f["opacity"])), rtol=1e-5)
    q = np.stack([f[f"rot_{i}"] for i in range(4)], 1)
    np.testing.assert_allclose(g.quats, q / np.linalg.norm(q, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert g.sh_degree == 1
    # f_rest is stored channel by channel: the 3 red coefficients first, then green, then blue
    np.testing.assert_allclose(g.sh[:, 1:, 0], np.stack([f[f"f_rest_{i}"] for i in range(3)], 1), rtol=1e-6)
    np.testing.assert_allclose(g.sh[:, 1:, 2], np.stack([f[f"f_rest_{i}"] for i in range(6, 9)], 1), rtol=1e-6)


def test_spz_compressed_ply_and_dot_splat_files_hold_the_same_splats(room_gaussians, tmp_path):
    g = room_gaussians.subset(np.arange(0, len(room_gaussians), 7))
    write_splats(tmp_path / "a.ply", g)
    gsply.write_spz(tmp_path / "a.spz", gsply.plyread(tmp_path / "a.ply"))
    gsply.plywrite(tmp_path / "a.compressed.ply", gsply.plyread(tmp_path / "a.ply"), compressed=True)
    write_dot_splat(tmp_path / "a.splat", g)
    for name, tol in (("a.ply", 1e-6), ("a.spz", 2e-3), ("a.compressed.ply", 1e-2), ("a.splat", 1e-6)):
        h = read_splats(tmp_path / name)
        assert len(h) == len(g), name
        distance, match = cKDTree(g.means).query(h.means)  # compression may reorder
        assert distance.max() < tol * ROOM.max(), name
        assert np.abs(h.base_colors().astype(int) - g.base_colors()[match]).max() <= 3, name


BAD_FILES = {
    "garbage.ply": (lambda p: p.write_bytes(b"\x00\x01 not a ply at all"), r"garbage\.ply: not a PLY file"),
    "no_opacity.ply": (lambda p: write_inria_ply(p, drop="opacity"), r"no_opacity\.ply: vertex property 'opacity' missing"),
    "sh5.ply": (lambda p: write_inria_ply(p, rest=5), r"sh5\.ply: 5 f_rest_\* properties match no SH degree"),
    "nan.ply": (lambda p: write_inria_ply(p, means=np.full((4, 3), np.nan)), r"nan\.ply: means: contains NaN or inf"),
    "odd.splat": (lambda p: p.write_bytes(b"\x00" * 33), r"odd\.splat: 33 bytes is no whole number of 32-byte"),
    "flat.splat": (lambda p: p.write_bytes(np.zeros(6, np.float32).tobytes() + bytes([255] * 4) + bytes([200] * 4)),
                   r"flat\.splat: scales: expected standard deviations > 0"),
    "noturn.splat": (lambda p: p.write_bytes(np.ones(6, np.float32).tobytes() + bytes([255] * 4) + bytes([128] * 4)),
                     r"noturn\.splat: quats: 1 quaternions are zero"),
    "scene.obj": (lambda p: p.write_text("v 0 0 0\n"), r"scene\.obj: unknown splat file type"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_splat_file_is_one_line_naming_the_file_and_field(tmp_path, name):
    make, message = BAD_FILES[name]
    make(tmp_path / name)
    with pytest.raises(SceneError, match=message) as info:
        read_splats(tmp_path / name)
    assert "\n" not in str(info.value)


def test_a_truncated_ply_is_refused(opencv_ply, tmp_path):
    data = opencv_ply.read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[: len(data) // 2])
    with pytest.raises(SceneError, match=r"cut\.ply: not a readable Gaussian-splat file"):
        read_splats(tmp_path / "cut.ply")


def test_a_file_over_the_splat_limit_is_refused_from_its_header(opencv_ply):
    with pytest.raises(SceneError, match=r"room\.ply: holds \d+ Gaussians, more than the limit of 100"):
        read_splats(opencv_ply, max_splats=100)


def test_an_opencv_file_lands_with_its_floor_on_the_map_plane_and_keyframes_inside(opencv_ply):
    world = build_splats(opencv_ply, num_keyframes=4, keyframe_size=(64, 48))
    z = points_in_map(world, world.surface_points()[0])[:, 2]
    assert np.percentile(z, 1) == pytest.approx(0.0, abs=0.02)  # the floor
    assert z.max() == pytest.approx(ROOM[2], abs=0.05)  # the ceiling, 2.5 m up
    assert len(world.keyframes) == 4
    for kf in world.keyframes:
        assert (world.map_T_scene @ kf.c2w)[2, 3] == pytest.approx(1.2, abs=1e-6)
        assert np.mean(kf.depth > 0) > 0.99  # a closed room: every keyframe pixel sees a wall


def test_the_wrong_up_axis_is_warned_about(opencv_ply):
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("worldfm_ros.build.build_splats")
    logger.addHandler(handler)
    try:
        build_splats(opencv_ply, up="-y", num_keyframes=1, keyframe_size=(32, 24))  # right: OpenCV's up is -y
        assert not any("upside down" in r.getMessage() for r in records)
        build_splats(opencv_ply, up="+y", num_keyframes=1, keyframe_size=(32, 24))
    finally:
        logger.removeHandler(handler)
    assert any("upside down" in r.getMessage() for r in records)


def test_a_rub_file_needs_its_own_frame(room_gaussians, tmp_path):
    rub_T_zup = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])  # y up, z back
    path = write_splats(tmp_path / "rub.ply", transform_gaussians(room_gaussians, rub_T_zup))
    world = build_splats(path, frame="rub", num_keyframes=1, keyframe_size=(32, 24))
    z = points_in_map(world, world.surface_points()[0])[:, 2]
    assert np.percentile(z, 1) == pytest.approx(0.0, abs=0.02) and z.max() == pytest.approx(ROOM[2], abs=0.05)


def test_a_splat_scene_round_trips_and_scene_info_reports_it(opencv_ply, tmp_path, capsys):
    from worldfm_ros.cli import main

    world = build_splats(opencv_ply, num_keyframes=2, keyframe_size=(64, 48))
    save_splat_world(world, tmp_path / "scene")
    loaded = load_world(tmp_path / "scene")
    assert isinstance(loaded, SplatWorld) and isinstance(loaded, World)
    np.testing.assert_allclose(loaded.gaussians.means, world.gaussians.means, atol=1e-6)
    np.testing.assert_allclose(loaded.map_T_scene, world.map_T_scene)
    assert main(["scene-info", str(tmp_path / "scene")]) == 0
    out = capsys.readouterr().out
    assert f"{len(world.gaussians):,} Gaussians, SH degree 0" in out and "MiB in memory" in out


def test_a_splat_scene_whose_splat_count_disagrees_is_refused(opencv_ply, tmp_path):
    world = build_splats(opencv_ply, num_keyframes=0)
    save_splat_world(world, tmp_path / "scene")
    yaml_path = tmp_path / "scene" / "scene.yaml"
    yaml_path.write_text(yaml_path.read_text().replace(f"count: {len(world.gaussians)}", "count: 7"))
    with pytest.raises(SceneError, match=r"scene\.yaml: splats\.count|holds \d+ Gaussians, more than the limit of 7"):
        load_world(tmp_path / "scene")


def test_scene_build_splats_closes_a_point_cloud_scene(tmp_path, capsys):
    """The bundled point-cloud room as discs: a free pose sees (almost) no holes."""
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.cli import main
    from worldfm_ros.resources import default_scene_path
    from worldfm_ros.build.procedural import body_pose

    assert main(["scene-build", "splats", str(default_scene_path()), "-o", str(tmp_path / "splats")]) == 0
    points, splats = load_world(default_scene_path()), load_world(tmp_path / "splats")
    camera = PinholeCamera.from_fov(640, 480, 90.0)  # close up, where the points fall apart
    c2w = body_pose(1.5, 1.2, 2.0, 1.0)
    splat_view, point_view = splats.render([camera], [c2w])[0], points.render([camera], [c2w])[0]
    assert splat_view.coverage > 0.85 and point_view.coverage < 0.5


def test_the_env_drives_through_a_splat_world_and_stops_at_its_walls(opencv_ply, tmp_path):
    from worldfm_ros.envs import WorldFMEnv

    world = build_splats(opencv_ply, num_keyframes=2, keyframe_size=(64, 48))
    save_splat_world(world, tmp_path / "scene")
    wall_x = (world.map_T_scene @ [ROOM[0], 0, 0, 1])[0]  # the +x wall in the map (its origin: the room's middle)
    env = WorldFMEnv({"backend": {"name": "anchor"}, "camera": {"width": 64, "height": 48, "hfov_deg": 90.0}},
                     scene=str(tmp_path / "scene"), observation="dict", normalized_actions=False,
                     start_poses=[(wall_x - 1.0, 0.0, 0.0)], max_episode_steps=50)
    obs, info = env.reset(seed=0)
    assert info["coverage"] > 0.99
    assert obs["depth"][24, 32].item() == pytest.approx(1.0 - 0.1, abs=0.03)  # the camera is 0.1 m ahead of base
    for _ in range(20):
        obs, _, terminated, _, info = env.step(np.array([0.5, 0.0], np.float32))
        if terminated:
            break
    assert info["collision"] and info["map_T_base"][0, 3] < wall_x - 0.2
    env.close()
