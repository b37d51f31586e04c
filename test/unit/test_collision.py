"""The collision checker treats anchor points in the robot's height band as obstacles."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.errors import ConfigError
from worldfm_ros.sim.collision import CollisionChecker, CollisionConfig


def at(x: float, y: float, z: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


WALL = np.array([[2.0, y, z] for y in np.linspace(-1, 1, 21) for z in (0.0, 0.5, 1.0, 2.5)])


def test_distance_is_horizontal_to_the_nearest_point_in_the_band():
    checker = CollisionChecker(WALL, CollisionConfig(radius=0.3, z_min=0.05, z_max=1.5))
    assert checker.min_distance(at(0.5, 0.0)) == pytest.approx(1.5)
    assert not checker.collides(at(1.5, 0.0)) and checker.collides(at(1.8, 0.0))


def test_floor_and_overhead_points_are_not_obstacles():
    floor_and_ceiling = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 2.5]])
    checker = CollisionChecker(floor_and_ceiling, CollisionConfig())
    assert checker.min_distance(at(1.0, 0.0)) == float("inf")


def test_band_is_relative_to_the_base_height():
    shelf = np.array([[1.0, 0.0, 3.5]])  # 0.5 m above a robot driving on a floor at z = 3
    assert CollisionChecker(shelf, CollisionConfig(), base_z=3.0).collides(at(1.0, 0.1, 3.0))
    assert not CollisionChecker(shelf, CollisionConfig(), base_z=0.0).collides(at(1.0, 0.1, 0.0))


def test_bad_footprint_is_a_config_error():
    with pytest.raises(ConfigError, match="collision"):
        CollisionConfig(radius=0.0)
