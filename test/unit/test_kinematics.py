"""Kinematic models integrate body twists into odom poses, with limits and a timeout."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldfm_ros.errors import ConfigError
from worldfm_ros.sim.kinematics import KinematicModel, KinematicsConfig, Twist


def drive(model: KinematicModel, twist: Twist, seconds: float, dt: float = 0.01, t0: float = 0.0) -> float:
    t = t0
    for _ in range(int(round(seconds / dt))):
        model.set_command(twist, t)
        t += dt
        model.step(dt, t)
    return t


def test_forward_half_metre_per_second_for_two_seconds_covers_one_metre():
    model = KinematicModel(KinematicsConfig(max_linear_accel=1e6))
    drive(model, Twist(np.array([0.5, 0, 0]), np.zeros(3)), 2.0)
    assert model.pose[0, 3] == pytest.approx(1.0, abs=0.02)
    assert abs(model.pose[1, 3]) < 1e-9


def test_constant_turn_follows_a_circular_arc():
    model = KinematicModel(KinematicsConfig(max_linear_accel=1e6, max_angular_accel=1e6))
    drive(model, Twist(np.array([0.5, 0, 0]), np.array([0, 0, 0.5])), math.pi / 0.5)  # half a circle, r = 1 m
    assert model.pose[:2, 3] == pytest.approx([0.0, 2.0], abs=0.02)
    assert math.atan2(model.pose[1, 0], model.pose[0, 0]) == pytest.approx(math.pi, abs=0.02) or \
        math.atan2(model.pose[1, 0], model.pose[0, 0]) == pytest.approx(-math.pi, abs=0.02)


def test_diff_drive_ignores_sideways_velocity():
    model = KinematicModel(KinematicsConfig(model="diff_drive", max_linear_accel=1e6))
    drive(model, Twist(np.array([0.0, 0.5, 0.3]), np.zeros(3)), 1.0)
    assert np.allclose(model.pose, np.eye(4))


def test_holonomic_moves_sideways():
    model = KinematicModel(KinematicsConfig(model="holonomic", max_linear_accel=1e6))
    drive(model, Twist(np.array([0.0, 0.5, 0.0]), np.zeros(3)), 1.0)
    assert model.pose[1, 3] == pytest.approx(0.5, abs=0.01)


def test_free_model_climbs():
    model = KinematicModel(KinematicsConfig(model="free", max_linear_accel=1e6))
    drive(model, Twist(np.array([0.0, 0.0, 0.4]), np.zeros(3)), 1.0)
    assert model.pose[2, 3] == pytest.approx(0.4, abs=0.01)


def test_velocity_is_clamped_to_the_limit():
    model = KinematicModel(KinematicsConfig(max_linear=0.3, max_linear_accel=1e6))
    drive(model, Twist(np.array([5.0, 0, 0]), np.zeros(3)), 1.0)
    assert model.pose[0, 3] == pytest.approx(0.3, abs=0.01)


def test_acceleration_limit_ramps_velocity():
    model = KinematicModel(KinematicsConfig(max_linear=2.0, max_linear_accel=1.0))
    drive(model, Twist(np.array([1.0, 0, 0]), np.zeros(3)), 0.5)
    assert model.velocity.linear[0] == pytest.approx(0.5, abs=0.011)


def test_robot_stops_when_commands_stop():
    model = KinematicModel(KinematicsConfig(max_linear_accel=1e6, cmd_timeout_s=0.2))
    t = drive(model, Twist(np.array([0.5, 0, 0]), np.zeros(3)), 1.0)
    x_at_last_command = model.pose[0, 3]
    for _ in range(100):
        t += 0.01
        model.step(0.01, t)
    assert model.velocity.linear[0] == 0.0
    assert model.pose[0, 3] == pytest.approx(x_at_last_command + 0.5 * 0.2, abs=0.011)


def test_command_expiring_inside_a_step_drives_only_until_its_expiry():
    model = KinematicModel(KinematicsConfig(max_linear_accel=1e6, cmd_timeout_s=2.0))
    model.set_command(Twist(np.array([0.5, 0, 0]), np.zeros(3)), 0.0)
    t = 0.0
    for dt in (0.3, 0.7, 0.45, 0.8):  # irregular ticks, the last one spans the expiry at t = 2 s
        t += dt
        model.step(dt, t)
    assert model.pose[0, 3] == pytest.approx(1.0, abs=1e-3)
    assert model.velocity.linear[0] == 0.0


def test_nan_command_is_rejected_and_keeps_the_previous_one():
    model = KinematicModel(KinematicsConfig(max_linear_accel=1e6))
    model.set_command(Twist(np.array([0.5, 0, 0]), np.zeros(3)), 0.0)
    with pytest.raises(ValueError, match="NaN"):
        model.set_command(Twist(np.array([math.nan, 0, 0]), np.zeros(3)), 0.0)
    model.step(0.1, 0.1)
    assert model.pose[0, 3] == pytest.approx(0.05)


def test_unknown_model_name_is_a_config_error():
    with pytest.raises(ConfigError, match="kinematics.model"):
        KinematicsConfig(model="tank")


def test_reset_puts_the_robot_at_rest_at_the_given_pose():
    model = KinematicModel(KinematicsConfig())
    drive(model, Twist(np.array([0.5, 0, 0]), np.zeros(3)), 0.5)
    pose = np.eye(4)
    pose[:3, 3] = (1, 2, 0)
    model.reset(pose)
    assert np.allclose(model.pose, pose) and not model.velocity.linear.any()
