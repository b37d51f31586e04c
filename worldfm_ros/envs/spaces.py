"""The observation and action spaces shared by the in-process and the ROS-driven envs.

Action: the body-frame velocity command of the kinematic model (REP-103 base_link
axes), bounded by the kinematics limits (or normalised to [-1, 1] and scaled by them):
  diff_drive: [vx m/s, wz rad/s]; holonomic: [vx, vy m/s, wz rad/s];
  free: [vx, vy, vz m/s, wx, wy, wz rad/s].
Observation, by ``observation`` mode:
  'dict' (default): a Dict of
    image: (H, W, 3) uint8 RGB camera frame;
    depth: (H, W, 1) float32 z-depth in metres along the optical axis, 0 = no data, clipped to
           DEPTH_RANGE_M (10 m: farther reads as 10); a one-channel image, as gymnasium and
           stable-baselines3 expect of image-like observations;
    odom: (6,) float32 [x m, y m, yaw rad, vx m/s, vy m/s, wz rad/s]: base_link pose in the
          odom frame (planar part) and its body-frame velocity, bounded by +-ODOM_RANGE (1000);
  'dict_uint8': the same Dict with depth as (H, W, 1) uint8, scaled from [0, DEPTH_RANGE_M] to
          [0, 255] (3.9 cm a step): stable-baselines3's MultiInputPolicy runs a CNN only on uint8
          images in [0, 255] (it flattens a float one), so this is the mode for it;
  'rgbd': (H, W, 4) uint8: the image plus depth scaled from [0, DEPTH_RANGE_M] to [0, 255]
          (a CNN policy's input: stable-baselines3's CnnPolicy takes it as it is);
  'image': (H, W, 3) uint8, the image alone.
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


OBSERVATION_MODES = ("dict", "dict_uint8", "rgbd", "image")
DEPTH_RANGE_M = 10.0
ODOM_RANGE = 1000.0


def check_observation_mode(mode: str) -> str:
    if mode not in OBSERVATION_MODES:
        raise ValueError(f"observation: expected one of {list(OBSERVATION_MODES)}, got {mode!r}")
    return mode


def observation_space(camera: PinholeCamera, mode: str = "dict") -> spaces.Space:
    """The observation space of ``mode`` (see module docstring) for frames of ``camera``."""
    h, w = camera.height, camera.width
    if check_observation_mode(mode) in ("image", "rgbd"):
        return spaces.Box(0, 255, (h, w, 3 if mode == "image" else 4), dtype=np.uint8)
    # Loose, robot-independent bounds: robots with different limits share the space in a vector env.
    odom_high = np.array([ODOM_RANGE, ODOM_RANGE, math.pi, ODOM_RANGE, ODOM_RANGE, ODOM_RANGE], np.float32)
    depth = (spaces.Box(0, 255, (h, w, 1), dtype=np.uint8) if mode == "dict_uint8"
             else spaces.Box(0.0, DEPTH_RANGE_M, (h, w, 1), dtype=np.float32))
    return spaces.Dict({
        "image": spaces.Box(0, 255, (h, w, 3), dtype=np.uint8),
        "depth": depth,
        "odom": spaces.Box(-odom_high, odom_high, dtype=np.float32),
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


def observation(rgb: np.ndarray, depth: np.ndarray, odom: np.ndarray, space: spaces.Space) -> dict | np.ndarray:
    """The observation in ``space`` (one of :func:`observation_space`): rgb (H, W, 3) uint8, depth
    (H, W) metres (NaN = ROS 'no data', becomes 0; the dict's depth is (H, W, 1)), odom (6,) from
    :func:`odom_vector`."""
    image = np.asarray(rgb, dtype=np.uint8)
    if isinstance(space, spaces.Box) and space.shape[-1] == 3:
        return image
    depth = np.nan_to_num(np.asarray(depth, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    depth = np.clip(depth, 0.0, DEPTH_RANGE_M)[..., None]  # (H, W, 1)
    if isinstance(space, spaces.Box) or space["depth"].dtype == np.uint8:
        depth = np.round(depth * (255.0 / DEPTH_RANGE_M)).astype(np.uint8)
    if isinstance(space, spaces.Box):
        return np.concatenate([image, depth], axis=-1)
    odom_space = space["odom"]
    return {"image": image, "depth": depth, "odom": np.clip(odom, odom_space.low, odom_space.high)}


RESET_OPTIONS = ("pose", "scene")
DEFAULT_MAX_EPISODE_STEPS = 500
# Random starts in a partial scan (the bundled ICL room saw only part of the room) may face where
# nothing was recorded; half the view on the world keeps such starts out.
DEFAULT_MIN_START_COVERAGE = 0.5


def truncated(steps: int, max_episode_steps: int | None) -> bool:
    """The env's own time limit (None: none; gym.make's TimeLimit then ends episodes)."""
    return max_episode_steps is not None and steps >= max_episode_steps


def check_start_poses(start_poses) -> str | list[tuple[float, float, float]] | None:
    """``start_poses``: None (the configured initial pose), 'random', or a non-empty list of
    (x m, y m, yaw rad) in the map frame; ValueError otherwise."""
    if start_poses is None or (isinstance(start_poses, str) and start_poses == "random"):
        return start_poses
    try:
        poses = [tuple(float(v) for v in p) for p in start_poses]
    except (TypeError, ValueError):
        poses = []
    if not poses or any(len(p) != 3 or not all(math.isfinite(v) for v in p) for p in poses):
        raise ValueError(f"start_poses: expected None, 'random' or a list of (x, y, yaw), got {start_poses!r}")
    return poses


def check_min_start_coverage(value: float) -> float:
    """``min_start_coverage``: the fraction of the first camera's view a random start must see on
    the world, in [0, 1]; ValueError otherwise."""
    value = float(value)
    if not 0.0 <= value <= 1.0:  # False for NaN too
        raise ValueError(f"min_start_coverage: expected a fraction in [0, 1], got {value}")
    return value


def listed_start(start_poses, rng: np.random.Generator) -> tuple[float, float, float] | None:
    """One (x, y, yaw) of a checked ``start_poses`` list drawn with ``rng``; None when not a list."""
    if not isinstance(start_poses, list):
        return None
    return start_poses[int(rng.integers(len(start_poses)))]


def reset_options(options: dict | None) -> dict:
    """``reset(options=...)`` checked: only 'pose' and 'scene' are known; ValueError otherwise."""
    options = options or {}
    unknown = sorted(set(options) - set(RESET_OPTIONS))
    if unknown:
        raise ValueError(f"reset options: unknown key(s) {unknown}; known: {list(RESET_OPTIONS)}")
    return options


def check_episode_arguments(dt: float, max_episode_steps: int | None, render_mode: str | None,
                            render_modes: list[str], observation_mode: str = "dict") -> None:
    """The constructor arguments both envs share; ValueError naming the bad one."""
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt: expected a positive number of seconds, got {dt}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ValueError(f"max_episode_steps: expected >= 1 or None, got {max_episode_steps}")
    check_observation_mode(observation_mode)
    if render_mode not in (None, *render_modes):
        raise ValueError(f"render_mode: expected None or one of {render_modes}, got {render_mode!r}")
