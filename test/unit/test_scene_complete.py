"""Closing a world: room fitting on constructed rooms (test/rooms.py), texture synthesis, the layout in
renders, scan, collision and the observed mask, and ``worldfm scene-complete`` as a user runs it (the
node's observed mask: test/ros/test_scene_complete_node.py)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rooms import BOX_3_WALLS, room_points
from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import SceneError
from worldfm_ros.geometry import map_T_camera
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.build.complete import CompletionConfig, NotARoom, complete_world
from worldfm_ros.scene.store import save_scene
from worldfm_ros.build.texture import complete_texture, synthesize
from worldfm_ros.sim.scan import ScanConfig, depth_to_scan
from worldfm_ros.world.base import render_one
from worldfm_ros.world.completed import CompletedWorld
from worldfm_ros.world.pointcloud import PointCloudWorld
from worldfm_ros.world.store import load_world

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
SCAN = ScanConfig(angle_min=-0.3, angle_max=0.3, angle_increment=math.radians(1.0))
CAMERA = PinholeCamera.from_K(np.array([[80.0, 0, 63.5], [0, 80.0, 47.5], [0, 0, 1]]), 128, 96)


def worldfm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldfm_ros.cli", *args], cwd=ROOT, env=ENV, text=True,
                          capture_output=True, timeout=300)


def world_of(points, colors):
    return PointCloudWorld(SceneAnchor(points, colors, name="constructed"))


@pytest.fixture(scope="module")
def box_world():
    base = world_of(*room_points([(0, 0, 4, 3)], BOX_3_WALLS))
    return CompletedWorld(base, complete_world(base))


def test_a_box_room_missing_a_wall_is_closed_where_its_floor_ends(box_world):
    layout = box_world.layout
    lo, hi = layout.footprint.min(axis=0), layout.footprint.max(axis=0)
    assert np.allclose(lo, [0, 0], atol=0.05) and np.allclose(hi, [4, 3], atol=0.05)
    assert sum(s.kind == "wall" for s in layout.surfaces) == 4
    assert "walls" in layout.report["assumed"]


def test_an_l_shaped_room_keeps_its_missing_corner_outside():
    floor = [(0, 0, 4, 2), (0, 2, 2, 4)]
    walls = [((0, 0), (4, 0)), ((4, 0), (4, 2)), ((4, 2), (2, 2)), ((2, 2), (2, 4)), ((2, 4), (0, 4)), ((0, 4), (0, 0))]
    layout = complete_world(world_of(*room_points(floor, walls)))
    assert layout.surfaces[0].area == pytest.approx(12.0, rel=0.03)
    assert layout.contains(np.array([[1.0, 3.0], [3.0, 1.0]])).all()
    assert not layout.contains(np.array([[3.0, 3.0]]))[0]
    assert sum(s.kind == "wall" for s in layout.surfaces) == 6


def test_the_floor_continues_under_a_table_as_synthetic_floor():
    table = (1.5, 1.0, 2.5, 1.8, 0.7)
    layout = complete_world(world_of(*room_points([(0, 0, 4, 3)], BOX_3_WALLS + [((0, 3), (4, 3))], table)))
    floor = layout.surfaces[0]
    cols = ((np.array([1.7, 2.3]) - 0.0) / floor.cell).astype(int)
    rows = ((np.array([1.2, 1.6]) - 0.0) / floor.cell).astype(int)
    under = (slice(rows[0], rows[1]), slice(cols[0], cols[1]))
    assert floor.inside[under].all() and not floor.observed[under].any()
    colour = floor.texture[under].reshape(-1, 3).mean(axis=0)
    assert np.abs(colour - [150, 110, 80]).max() < 25  # floor, not the table's dark top


def test_texture_synthesis_carries_a_stripe_pattern_on_with_its_period():
    period = 8
    x = np.arange(160)
    stripes = np.where((x % period) < period // 2, 220, 40).astype(np.uint8)
    texture = np.repeat(np.repeat(stripes[None, :, None], 96, axis=0), 3, axis=2)
    known = np.zeros((96, 160), bool)
    known[:, :64] = True
    out = synthesize(np.where(known[..., None], texture, 0).astype(np.uint8), known, patch=16, overlap=4)
    profile = out[:, 64:, 0].astype(float).mean(axis=0)
    spectrum = np.abs(np.fft.rfft(profile - profile.mean()))
    assert len(profile) / np.argmax(spectrum) == pytest.approx(period, rel=0.05)
    assert np.array_equal(out[known], texture[known])


def sunlit_stripes(period: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A striped floor (96, 160, 3) whose left 64 columns were seen, a sun band across rows 24-56 of them."""
    x = np.arange(160)
    stripes = np.where((x % period) < period // 2, 160.0, 90.0)
    light = np.ones((96, 1))
    light[24:56] = 1.5
    texture = np.repeat((light * stripes[None, :])[..., None], 3, axis=2).astype(np.uint8)
    known = np.zeros((96, 160), bool)
    known[:, :64] = True
    return np.where(known[..., None], texture, 0).astype(np.uint8), known


def test_completing_a_texture_carries_the_stripes_on_but_not_the_sun_on_them():
    texture, known = sunlit_stripes()
    out = complete_texture(texture, known, patch=16, overlap=4)
    invented = out[:, 64:, 0].astype(float)
    spectrum = np.abs(np.fft.rfft(invented.mean(axis=0) - invented.mean()))
    assert invented.shape[1] / np.argmax(spectrum) == pytest.approx(8, rel=0.05)
    rows = invented[:, 32:].mean(axis=1)  # away from the seam: no band 1.5x brighter anywhere
    assert rows.max() / rows.min() < 1.1
    assert np.array_equal(out[known], texture[known])


def test_a_scan_facing_the_wall_nobody_saw_returns_it(box_world):
    map_T_cam = map_T_camera((2.0, 1.5, 0.5), math.pi / 2)  # facing +y, the missing wall at y = 3
    assert render_one(box_world.base, CAMERA, map_T_cam).coverage < 0.2
    result = render_one(box_world, CAMERA, map_T_cam)
    base_T_optical = np.linalg.inv(_map_T_body((2.0, 1.5, 0.0), math.pi / 2)) @ map_T_cam
    ranges = depth_to_scan(result.depth, CAMERA, base_T_optical, SCAN)
    assert np.isfinite(ranges).all()
    wall_y = max(p[1] for s in box_world.layout.surfaces if s.kind == "wall" for p in [s.origin])
    assert wall_y == pytest.approx(3.0, abs=0.05)
    along = ranges * np.cos(SCAN.angles)
    assert np.allclose(along, wall_y - 1.5, atol=0.05)


def _map_T_body(xyz, yaw):
    T = np.eye(4)
    T[:3, :3] = [[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]]
    T[:3, 3] = xyz
    return T


def test_the_observed_mask_marks_the_synthesised_wall(box_world):
    facing_missing = render_one(box_world, CAMERA, map_T_camera((2.0, 1.5, 1.2), math.pi / 2))
    facing_seen = render_one(box_world, CAMERA, map_T_camera((2.0, 1.5, 1.2), -math.pi / 2))
    assert facing_missing.valid.all() and facing_seen.valid.all()
    assert facing_missing.observed.mean() < 0.1
    assert facing_seen.observed.mean() > 0.9


def test_a_translucent_splat_is_seen_over_the_completed_wall_behind_it(box_world):
    from worldfm_ros.render.gaussians import make_gaussians
    from worldfm_ros.render.sh import C0
    from worldfm_ros.world.splats import SplatWorld

    # one red splat, 60 % opaque at its centre, 0.5 m before the wall nobody saw (y = 3)
    red = make_gaussians([[2.0, 2.5, 1.2]], [[1.0, 0, 0, 0]], [[0.05, 0.05, 0.05]], [0.6],
                         [[0.5 / C0, -0.5 / C0, -0.5 / C0]], "test")
    splat = SplatWorld(red, np.eye(4), [], "one splat")
    pose = map_T_camera((2.0, 1.5, 1.2), math.pi / 2)
    wall = render_one(box_world, CAMERA, pose).rgb.astype(np.float64)
    seen = render_one(CompletedWorld(splat, box_world.layout), CAMERA, pose).rgb.astype(np.float64)
    centre = (47, 63)  # the pixel the splat's centre projects to (K's principal point, rounded down)
    np.testing.assert_allclose(seen[centre], 0.6 * np.array([255.0, 0, 0]) + 0.4 * wall[centre], atol=3.0)
    assert np.array_equal(seen[0, 0], wall[0, 0])  # where the splat does not reach: the wall alone


def test_revisiting_a_pose_gives_the_identical_frame(box_world):
    pose = map_T_camera((1.0, 1.0, 0.8), 2.0, 0.3)
    a, b = render_one(box_world, CAMERA, pose), render_one(box_world, CAMERA, pose)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)


def test_scene_complete_writes_a_copy_the_simulator_collides_with(tmp_path):
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator, planar_pose

    src = save_scene(SceneAnchor(*room_points([(0, 0, 4, 3)], BOX_3_WALLS), name="box"), tmp_path / "box")
    out = tmp_path / "box_closed"
    run = worldfm("scene-complete", str(src), "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert "synthesised" in run.stdout and not (src / "layout").exists()
    assert isinstance(load_world(out), CompletedWorld)
    sim = Simulator(SimConfig())
    near_missing_wall = planar_pose(2.0, 2.9, 0.0, 0.0)
    sim.load_scene(src)
    assert not sim.collision.collides(near_missing_wall)
    sim.load_scene(out)
    assert sim.collision.collides(near_missing_wall)


def test_scene_complete_leaves_a_scene_that_is_not_a_room_unwritten(tmp_path):
    rng = np.random.default_rng(0)
    ball = rng.normal(size=(5000, 3))
    ball = (0.3 * ball / np.linalg.norm(ball, axis=1, keepdims=True) + [0, 0, 0.5]).astype(np.float32)
    src = save_scene(SceneAnchor(ball, np.full((5000, 3), 128, np.uint8), name="ball"), tmp_path / "ball")
    run = worldfm("scene-complete", str(src), "-o", str(tmp_path / "out"))
    assert run.returncode == 2
    assert "not a room" in run.stdout and not (tmp_path / "out").exists()
    with pytest.raises(NotARoom):
        complete_world(load_world(src), CompletionConfig())


def test_a_corrupt_layout_is_refused_naming_its_file(tmp_path, box_world):
    from worldfm_ros.world.layout import save_layout

    src = save_scene(SceneAnchor(*room_points([(0, 0, 4, 3)], BOX_3_WALLS), name="box"), tmp_path / "box")
    yaml_path = save_layout(box_world.layout, src / "layout")
    (src / "scene.yaml").write_text((src / "scene.yaml").read_text() + "layout: layout/layout.yaml\n")
    yaml_path.write_text(yaml_path.read_text().replace("cell:", "cell: -1 #"))
    with pytest.raises(SceneError, match="layout.yaml.*cell"):
        load_world(src)


def test_random_start_poses_stay_inside_an_l_shaped_room(tmp_path):
    from worldfm_ros.build.complete import complete_scene
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator

    floor = [(0, 0, 4, 2), (0, 2, 2, 4)]
    walls = [((0, 0), (4, 0)), ((4, 0), (4, 2)), ((4, 2), (2, 2)), ((2, 2), (2, 4)), ((2, 4), (0, 4)), ((0, 4), (0, 0))]
    src = save_scene(SceneAnchor(*room_points(floor, walls), name="ell"), tmp_path / "ell")
    complete_scene(src, tmp_path / "closed")
    sim = Simulator(SimConfig())
    sim.load_scene(tmp_path / "closed")
    rng = np.random.default_rng(0)
    xy = np.array([sim.random_free_pose(rng)[:2, 3] for _ in range(200)])
    assert not np.any((xy[:, 0] > 2.0) & (xy[:, 1] > 2.0))
