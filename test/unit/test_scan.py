"""LaserScan ranges from a depth image: analytic walls, the height band, range limits, the FOV."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.build.procedural import random_room
from worldfm_ros.camera import LINK_T_OPTICAL
from worldfm_ros.sensors.rig import MountConfig
from worldfm_ros.sim.scan import ScanConfig, depth_to_scan

CAMERA = PinholeCamera.from_fov(320, 240, 90.0)
INC = math.radians(1.0)


def base_T_optical(height: float = 0.5, yaw: float = 0.0) -> np.ndarray:
    return MountConfig(xyz=[0.0, 0.0, height], rpy=[0.0, 0.0, yaw]).matrix() @ LINK_T_OPTICAL


def wall_config(**overrides) -> ScanConfig:
    fields = dict(angle_min=math.radians(-40), angle_max=math.radians(40), angle_increment=INC,
                  range_min=0.1, range_max=10.0, z_min=0.05, z_max=1.5)
    return ScanConfig(**{**fields, **overrides})


def assert_flat_wall(ranges: np.ndarray, angles: np.ndarray, distance: float) -> None:
    """A beam collects azimuths within half an increment, and keeps the nearest: d/cos of the
    angle in its bin closest to the wall normal."""
    nearest = np.maximum(np.abs(angles) - INC / 2, 0.0)
    assert np.all(ranges <= distance / np.cos(angles) + 1e-4)
    assert np.all(ranges >= distance / np.cos(nearest) - 1e-4)


def test_a_facing_wall_at_2m_reads_2_over_cos_theta():
    depth = np.full((CAMERA.height, CAMERA.width), 2.0, np.float32)  # the plane z_optical = 2
    config = wall_config()
    ranges = depth_to_scan(depth, CAMERA, base_T_optical(), config)
    assert ranges.shape == (81,) and ranges.dtype == np.float32
    assert ranges[40] == pytest.approx(2.0, abs=1e-5)  # the beam straight ahead
    assert_flat_wall(ranges, config.angles, 2.0)
    assert ranges[0] == pytest.approx(2 / math.cos(math.radians(40)), rel=0.01)


def test_a_ray_cast_room_wall_2m_ahead_reads_2m():
    room = random_room(seed=3, size=(6.0, 5.0, 2.8), num_obstacles=0)
    base = np.eye(4)
    base[:3, 3] = (4.0, 2.5, 0.0)  # the +x wall (x = 6) is 2 m ahead, side walls 2.5 m away
    mount = base_T_optical(height=0.8)
    _, depth = room.raycast(CAMERA, base @ mount)
    config = wall_config()
    ranges = depth_to_scan(depth, CAMERA, mount, config)
    assert ranges[40] == pytest.approx(2.0, abs=1e-4)
    assert_flat_wall(ranges, config.angles, 2.0)


def test_a_turned_camera_turns_the_scan():
    depth = np.full((CAMERA.height, CAMERA.width), 2.0, np.float32)
    config = wall_config(angle_min=math.radians(-10), angle_max=math.radians(70))
    ranges = depth_to_scan(depth, CAMERA, base_T_optical(yaw=math.radians(30)), config)
    assert config.angles[np.argmin(ranges)] == pytest.approx(math.radians(30))
    assert ranges.min() == pytest.approx(2.0, abs=1e-5)


def test_beams_outside_the_field_of_view_read_inf():
    depth = np.full((CAMERA.height, CAMERA.width), 2.0, np.float32)
    config = wall_config(angle_min=-math.pi, angle_max=math.pi)
    ranges = depth_to_scan(depth, CAMERA, base_T_optical(), config)
    outside = np.abs(config.angles) > math.radians(45.5)
    assert np.all(np.isinf(ranges[outside]))
    assert np.all(np.isfinite(ranges[np.abs(config.angles) < math.radians(44)]))


def test_points_outside_the_height_band_are_ignored():
    depth = np.full((CAMERA.height, CAMERA.width), 2.0, np.float32)
    # Camera at 0.5 m, vertical half-FOV about 37 degrees: the wall is seen from about -1 to 2 m.
    assert np.all(np.isinf(depth_to_scan(depth, CAMERA, base_T_optical(), wall_config(z_min=2.5, z_max=3.0))))
    assert np.isfinite(depth_to_scan(depth, CAMERA, base_T_optical(), wall_config(z_min=1.9, z_max=3.0))[40])


def test_missing_depth_and_out_of_range_returns_read_inf():
    depth = np.full((CAMERA.height, CAMERA.width), 2.0, np.float32)
    depth[:, : CAMERA.width // 2] = 0.0  # left half of the image (positive angles) has no data
    depth[:, CAMERA.width // 2 + 1:] = np.nan
    config = wall_config()
    ranges = depth_to_scan(depth, CAMERA, base_T_optical(), config)
    assert np.all(np.isinf(ranges[np.abs(config.angles) > INC]))
    far = depth_to_scan(np.full_like(depth, 2.0), CAMERA, base_T_optical(), wall_config(range_max=1.5))
    assert np.all(np.isinf(far))


def test_depth_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="depth: expected shape"):
        depth_to_scan(np.ones((10, 10), np.float32), CAMERA, base_T_optical(), wall_config())


@pytest.mark.parametrize("fields", [dict(angle_increment=0.0), dict(angle_min=1.0, angle_max=0.5),
                                    dict(range_min=5.0, range_max=1.0), dict(z_min=1.0, z_max=1.0)])
def test_inconsistent_scan_config_is_rejected(fields):
    with pytest.raises(ConfigError, match="scan"):
        wall_config(**fields)
