"""Ground alignment: floor to map z = 0 with +z up, walls never taken for floors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from worldfm_ros.errors import SceneError
from worldfm_ros.build.ground import align_ground, parse_axis

# optical axes (x right, y down, z forward) of a level camera looking along world +x, z up
LEVEL_CAMERA = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def room(rng: np.random.Generator, n_floor: int, n_wall: int) -> tuple[np.ndarray, np.ndarray]:
    """Points of a z-up room: a floor at z = 0, a table top at z = 0.7, two walls. Returns (points, floor mask)."""
    floor = np.c_[rng.uniform(-3, 3, n_floor), rng.uniform(-3, 3, n_floor), rng.normal(0, 0.002, n_floor)]
    table = np.c_[rng.uniform(0.5, 1.5, n_wall // 4), rng.uniform(-0.5, 0.5, n_wall // 4), np.full(n_wall // 4, 0.7)]
    wall_a = np.c_[np.full(n_wall, 3.0), rng.uniform(-3, 3, n_wall), rng.uniform(0, 2.5, n_wall)]
    wall_b = np.c_[rng.uniform(-3, 3, n_wall), np.full(n_wall, 3.0), rng.uniform(0, 2.5, n_wall)]
    points = np.r_[floor, table, wall_a, wall_b]
    return points, np.arange(len(points)) < n_floor


def camera(R_world: np.ndarray, t_world: np.ndarray, pitch_down_deg: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    tilt = Rotation.from_euler("y", pitch_down_deg, degrees=True).as_matrix()
    T[:3, :3] = R_world @ tilt @ LEVEL_CAMERA
    T[:3, 3] = t_world
    return T


def to_map(T: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ T[:3, :3].T + T[:3, 3]


def test_tilted_floor_lands_on_z0_with_z_up() -> None:
    rng = np.random.default_rng(0)
    world, floor = room(rng, 6000, 6000)
    R = Rotation.from_euler("xyz", [35, -20, 50], degrees=True).as_matrix()  # scene = tilted world
    t = np.array([1.0, -2.0, 0.5])
    scene = world @ R.T + t
    cam = camera(R, R @ [0.0, 0.0, 1.5] + t, pitch_down_deg=20)
    g = align_ground(scene, [cam])
    m = to_map(g.map_T_scene, scene)
    assert g.method == "plane"
    assert np.max(np.abs(m[floor, 2])) < 0.02
    assert np.min(m[~floor, 2]) > -0.02 and np.max(m[:, 2]) == pytest.approx(2.5, abs=0.03)
    np.testing.assert_allclose(to_map(g.map_T_scene, cam[:3, 3][None])[0], [0, 0, 1.5], atol=0.01)


def test_map_x_follows_the_first_camera_heading() -> None:
    rng = np.random.default_rng(1)
    world, _ = room(rng, 4000, 2000)
    yaw = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    cam = camera(yaw, [0.0, 0.0, 1.2], pitch_down_deg=25)
    g = align_ground(world, [cam])
    forward_map = g.map_T_scene[:3, :3] @ cam[:3, 2]
    assert forward_map[1] == pytest.approx(0.0, abs=1e-3) and forward_map[0] > 0.8


def test_a_big_wall_is_not_taken_for_the_floor() -> None:
    rng = np.random.default_rng(2)
    world, floor = room(rng, 1500, 8000)  # walls hold far more points than the floor
    g = align_ground(world, [camera(np.eye(3), [0.0, 0.0, 1.4])])
    np.testing.assert_allclose(g.up, [0, 0, 1], atol=0.01)
    assert np.max(np.abs(to_map(g.map_T_scene, world)[floor, 2])) < 0.02


def test_known_gravity_keeps_the_rotation_and_measures_the_floor() -> None:
    rng = np.random.default_rng(3)
    world, floor = room(rng, 4000, 2000)
    scene = world @ np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], float).T  # an OpenCV-style world, +y down
    cam = np.eye(4)
    cam[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # looking along +x, y down
    cam[:3, 3] = [0.0, -1.5, 0.0]
    g = align_ground(scene, [cam], gravity_up=parse_axis("-y"))
    np.testing.assert_array_equal(g.up, [0, -1, 0])
    np.testing.assert_allclose(g.map_T_scene[:3, :3], [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    assert np.max(np.abs(to_map(g.map_T_scene, scene)[floor, 2])) < 0.01


def test_without_a_floor_the_lowest_points_set_z0() -> None:
    rng = np.random.default_rng(4)
    blob = rng.normal(size=(3000, 3)) * [1.0, 1.0, 0.5] + [3.0, 0.0, 1.0]
    g = align_ground(blob, [camera(np.eye(3), [0.0, 0.0, 1.0])])
    assert g.method == "percentile"
    assert np.mean(to_map(g.map_T_scene, blob)[:, 2] < 0) == pytest.approx(0.01, abs=0.005)


def test_no_cameras_and_no_gravity_is_an_error() -> None:
    with pytest.raises(SceneError, match="give the up axis explicitly"):
        align_ground(np.zeros((10, 3)))


def test_bad_axis_name_is_an_error() -> None:
    with pytest.raises(SceneError, match=r"up axis: expected one of \+x -x \+y -y \+z -z, got '\+w'"):
        parse_axis("+w")
