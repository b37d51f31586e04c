"""Kinematic robot models integrated from velocity commands (REP-103 body axes).

A model integrates a body-frame twist (linear m/s, angular rad/s, in the base_link
frame: x forward, y left, z up) into a pose in the odom frame. Limits clamp the
commanded velocity and its rate of change; a command older than ``cmd_timeout_s``
is treated as zero (the robot stops when commands stop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from worldfm_ros.errors import ConfigError
from worldfm_ros.geometry import exp_se3

MODELS = ("diff_drive", "holonomic", "free")


@dataclass
class KinematicsConfig:
    """model: 'diff_drive' (unicycle: vx, wz), 'holonomic' (vx, vy, wz) or 'free' (6-DoF).
    max_linear: m/s per axis; max_angular: rad/s per axis; max_linear_accel: m/s²;
    max_angular_accel: rad/s²; cmd_timeout_s: seconds after which a command is dropped."""

    model: str = "diff_drive"
    max_linear: float = 1.0
    max_angular: float = 1.5
    max_linear_accel: float = 2.0
    max_angular_accel: float = 4.0
    cmd_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"kinematics.model: expected one of {MODELS}, got {self.model!r}")
        for name in ("max_linear", "max_angular", "max_linear_accel", "max_angular_accel", "cmd_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"kinematics.{name}: expected a positive number, got {value!r}")


@dataclass
class Twist:
    """Body-frame velocity: linear (3,) m/s and angular (3,) rad/s, base_link axes."""

    linear: np.ndarray = field(default_factory=lambda: np.zeros(3))
    angular: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def is_finite(self) -> bool:
        return bool(np.all(np.isfinite(self.linear)) and np.all(np.isfinite(self.angular)))


class KinematicModel:
    """Integrates commands into the odom→base_link pose.

    pose: (4, 4) odom→base_link transform, metres; velocity: the applied (limited) twist.
    """

    def __init__(self, config: KinematicsConfig, initial_pose: np.ndarray | None = None) -> None:
        self.config = config
        self.pose = np.eye(4) if initial_pose is None else np.array(initial_pose, dtype=np.float64)
        self.velocity = Twist()
        self._command = Twist()
        self._command_time: float | None = None

    def reset(self, pose: np.ndarray | None = None) -> None:
        """Put the robot at ``pose`` (4, 4) odom→base_link (identity if None), at rest."""
        self.pose = np.eye(4) if pose is None else np.array(pose, dtype=np.float64)
        self.velocity = Twist()
        self._command = Twist()
        self._command_time = None

    def set_command(self, twist: Twist, now_s: float) -> None:
        """Store a new command received at time ``now_s`` (seconds). Raises ValueError on NaN/inf."""
        if not twist.is_finite():
            raise ValueError("cmd_vel contains NaN or inf; command ignored")
        self._command = self._project(twist)
        self._command_time = now_s

    def _project(self, twist: Twist) -> Twist:
        """Drop the components the model cannot execute."""
        lin, ang = np.array(twist.linear, float), np.array(twist.angular, float)
        if self.config.model == "diff_drive":
            lin[1:] = 0.0
            ang[:2] = 0.0
        elif self.config.model == "holonomic":
            lin[2] = 0.0
            ang[:2] = 0.0
        lin = np.clip(lin, -self.config.max_linear, self.config.max_linear)
        ang = np.clip(ang, -self.config.max_angular, self.config.max_angular)
        return Twist(lin, ang)

    def step(self, dt: float, now_s: float) -> None:
        """Advance by ``dt`` seconds ending at time ``now_s``: apply limits, timeout, integrate.

        A command that expires inside the step drives only the part of the step before
        its expiry, so the distance travelled does not depend on the tick phase.
        """
        if dt <= 0:
            return
        active = 0.0
        if self._command_time is not None:
            expiry = self._command_time + self.config.cmd_timeout_s
            active = min(max(expiry - (now_s - dt), 0.0), dt)
        if active > 0.0:
            self._integrate(self._command, active)
        if dt - active > 0.0:
            self._integrate(Twist(), dt - active)

    def _integrate(self, target: Twist, dt: float) -> None:
        self.velocity = Twist(
            _approach(self.velocity.linear, target.linear, self.config.max_linear_accel * dt),
            _approach(self.velocity.angular, target.angular, self.config.max_angular_accel * dt),
        )
        self.pose = self.pose @ exp_se3(self.velocity.linear * dt, self.velocity.angular * dt)


def _approach(current: np.ndarray, target: np.ndarray, max_delta: float) -> np.ndarray:
    return current + np.clip(target - current, -max_delta, max_delta)
