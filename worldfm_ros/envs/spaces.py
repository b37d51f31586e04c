"""The observation and action spaces shared by the in-process and the ROS-driven envs.

Action: the body-frame velocity command of the kinematic model (REP-103 base_link
axes), bounded by the kinematics limits (or normalised to [-1, 1] and scaled by them):
  diff_drive: [vx m/s, wz rad/s]; holonomic: [vx, vy m/s, wz rad/s];
  free: [vx, vy, vz m/s, wx, wy, wz rad/s].
Observation (a Dict):
  image: (H, W, 3) uint8 RGB camera frame;
  depth: (H, W) float32 z-depth in metres along the optical axis, 0 = no data;
  odom: (6,) float32 [x m, y m, yaw rad, vx m/s, vy m/s, wz rad/s]: base_link pose in the
        odom frame (planar part) and its body-frame velocity.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.sim.kinematics import KinematicsConfig, Twist

# Components of the body twist [vx, vy, vz, wx, wy, wz] each model is commanded with.
ACTION_AXES: dict[str, tuple[int, ...]] = {
    "diff_drive": (0, 5),
    "holonomic": (0, 1, 5),
    "free": (0, 1, 2, 3, 4, 5),
}


def action_limits(kinematics: KinematicsConfig) -> np.ndarray:
    """Per-component bound of the command of ``kinematics.model``: max_linear (m/s) or max_angular (rad/s)."""
    axes = ACTION_AXES[kinematics.model]
    return np.array([kinematics.max_linear if i < 3 else kinematics.max_angular for i in axes], np.float32)


def action_space(kinematics: KinematicsConfig, normalized: bool = False) -> spaces.Box:
    """Box of the velocity command of ``kinematics.model``: within its limits, or [-1, 1] per
    component when ``normalized`` (then scaled by the limits)."""
    high = np.ones_like(action_limits(kinematics)) if normalized else action_limits(kinematics)
    return spaces.Box(-high, high, dtype=np.float32)


def observation_space(camera: PinholeCamera) -> spaces.Dict:
    """Dict space of image, depth and odom for frames of ``camera``."""
    h, w = camera.height, camera.width
    return spaces.Dict({
        "image": spaces.Box(0, 255, (h, w, 3), dtype=np.uint8),
        "depth": spaces.Box(0.0, np.inf, (h, w), dtype=np.float32),
        "odom": spaces.Box(-np.inf, np.inf, (6,), dtype=np.float32),
    })


def action_to_twist(action: np.ndarray, kinematics: KinematicsConfig, normalized: bool = False) -> Twist:
    """Body twist commanded by ``action`` (shape of the model's action space); ValueError otherwise."""
    model = kinematics.model
    axes = ACTION_AXES[model]
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (len(axes),):
        raise ValueError(f"action: expected {len(axes)} values for the {model!r} model, got shape {np.shape(action)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action contains NaN or inf: {a.tolist()}")
    if normalized:
        a = np.clip(a, -1.0, 1.0) * action_limits(kinematics)
    twist = np.zeros(6)
    twist[list(axes)] = a
    return Twist(twist[:3], twist[3:])


def yaw_of(T: np.ndarray) -> float:
    """Heading (rad, about +z) of a (4, 4) pose."""
    return math.atan2(T[1, 0], T[0, 0])


def odom_vector(odom_T_base: np.ndarray, linear: np.ndarray, angular: np.ndarray) -> np.ndarray:
    """(6,) float32 [x, y, yaw, vx, vy, wz] from a (4, 4) pose and body velocities (3,) each."""
    return np.array([odom_T_base[0, 3], odom_T_base[1, 3], yaw_of(odom_T_base),
                     linear[0], linear[1], angular[2]], dtype=np.float32)


def observation(rgb: np.ndarray, depth: np.ndarray, odom: np.ndarray) -> dict[str, np.ndarray]:
    """The observation dict; depth NaN (ROS 'no data') becomes 0."""
    depth = np.nan_to_num(np.asarray(depth, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return {"image": np.asarray(rgb, dtype=np.uint8), "depth": np.maximum(depth, 0.0), "odom": odom}


RESET_OPTIONS = ("pose", "scene")


def reset_options(options: dict | None) -> dict:
    """``reset(options=...)`` checked: only 'pose' and 'scene' are known; ValueError otherwise."""
    options = options or {}
    unknown = sorted(set(options) - set(RESET_OPTIONS))
    if unknown:
        raise ValueError(f"reset options: unknown key(s) {unknown}; known: {list(RESET_OPTIONS)}")
    return options


def check_episode_arguments(dt: float, max_episode_steps: int, render_mode: str | None,
                            render_modes: list[str]) -> None:
    """The constructor arguments both envs share; ValueError naming the bad one."""
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt: expected a positive number of seconds, got {dt}")
    if max_episode_steps < 1:
        raise ValueError(f"max_episode_steps: expected >= 1, got {max_episode_steps}")
    if render_mode not in (None, *render_modes):
        raise ValueError(f"render_mode: expected None or one of {render_modes}, got {render_mode!r}")
