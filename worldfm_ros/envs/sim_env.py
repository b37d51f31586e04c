"""``WorldFMEnv``: the simulator as an in-process gymnasium environment (no ROS, no DDS).

Each ``step`` applies the action as a body-frame velocity command for ``dt`` simulated
seconds (integrated at the config's sim_rate_hz, blocked by collisions) and renders the
camera at the new pose. Spaces: see :mod:`worldfm_ros.envs.spaces`. An episode terminates
when the simulator reports it done (collision, or base_link left the scene's extent) and
is truncated after ``max_episode_steps`` steps (``gym.make("WorldFM-v0", max_episode_steps=N)``
sets it through gymnasium's TimeLimit instead).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from worldfm_ros.backends.base import FrameBackend
from worldfm_ros.camera import check_pose
from worldfm_ros.config import load_config
from worldfm_ros.envs import spaces
from worldfm_ros.envs.reward import ForwardProgress, RewardFn, Transition
from worldfm_ros.runtime import apply_torch_threads
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.sim.config import SimConfig
from worldfm_ros.sim.simulator import Observation, Simulator, planar_pose
from worldfm_ros.world.base import World

SceneSource = str | Path | SceneAnchor | World


def sim_config(config: SimConfig | dict | str | Path | None) -> SimConfig:
    """A SimConfig from itself, a (nested) mapping of its fields, a YAML file, or None (defaults)."""
    return config if isinstance(config, SimConfig) else load_config(SimConfig, config)


def start_pose(pose: Any, z: float = 0.0) -> np.ndarray:
    """(4, 4) map→base_link from ``(x, y, yaw)`` metres/radians or a (4, 4) matrix."""
    array = np.asarray(pose, dtype=np.float64)
    if array.shape == (4, 4):
        return check_pose(array, "options['pose']")
    if array.shape != (3,) or not np.all(np.isfinite(array)):
        raise ValueError(f"options['pose']: expected (x, y, yaw) or a 4x4 matrix, got {pose!r}")
    return planar_pose(array[0], array[1], z, array[2])


class WorldFMEnv(gym.Env):
    """One robot with one camera in one scene.

    config: SimConfig, a mapping of its fields (e.g. ``{"camera": {"width": 64, "height": 48}}``),
        a YAML file, or None for the defaults (camera, mount, kinematics, collision, backend).
    scene: scene anchor (path or object); None = ``config.scene`` ('' = the bundled default room).
    backend: a frame backend; None = the one named by ``config.backend`` (default 'torch': the
        bundled frame model; ``{"backend": {"name": "anchor"}}`` for the fast classical fill).
    dt: simulated seconds per step. max_episode_steps: truncation length (None: no own limit).
    reward_fn: ``Transition -> float``; default :class:`ForwardProgress`.
    render_mode: None or 'rgb_array' (``render()`` returns the last camera image).
    device: torch device of the point-cloud renderer.
    normalized_actions: actions in [-1, 1] scaled by the kinematics limits (the default: what RL
        libraries expect, and robots with different limits share one action space); False: m/s, rad/s.
    observation: 'dict' (image, depth (H, W, 1) metres, odom), 'dict_uint8' (the same, depth as
        uint8: stable-baselines3's MultiInputPolicy), 'rgbd' ((H, W, 4) uint8) or 'image' ((H, W, 3)
        uint8); the last two suit CNN policies; see :mod:`worldfm_ros.envs.spaces`.
    start_poses: where episodes start: 'random' (default: a collision-free pose drawn from the
        scene's free space with the env's generator, so ``reset(seed=s)`` picks the start), a list
        of (x m, y m, yaw rad) in the map frame (one drawn per reset), or None (the config's
        initial pose every time).
    min_start_coverage: a random start is redrawn until the camera sees at least this fraction of
        its view on the world ([0, 1], the ``coverage`` of ``info``; default 0.5); WorldFMError when
        none of a bounded number of collision-free draws does (see ``Simulator.random_free_pose``).
    threads: torch CPU threads of the process (None = ``config.torch_threads``, default 1; 0 = one
        per core, torch's default); the last env constructed in a process sets it.

    reset options: ``pose`` (x, y, yaw) or (4, 4) of base_link in the map frame (overrides
    start_poses); ``scene``: a scene to load before the episode starts.
    info: map_T_base (4, 4), stamp_ns, collision, min_obstacle_distance (m), coverage (render
    fraction in [0, 1]), observed (fraction of the view showing captured rather than synthesised
    surfaces, [0, 1]; below coverage only in a completed world), reference_index (keyframe used).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: SimConfig | dict | str | Path | None = None, scene: SceneSource | None = None,
                 backend: FrameBackend | None = None, dt: float = 0.1, max_episode_steps: int | None = spaces.DEFAULT_MAX_EPISODE_STEPS,
                 reward_fn: RewardFn | None = None, render_mode: str | None = None, device: str = "cpu",
                 normalized_actions: bool = True, observation: str = "dict",
                 start_poses: str | list | None = "random", threads: int | None = None,
                 min_start_coverage: float = spaces.DEFAULT_MIN_START_COVERAGE) -> None:
        spaces.check_episode_arguments(dt, max_episode_steps, render_mode, self.metadata["render_modes"],
                                       observation)
        self.start_poses = spaces.check_start_poses(start_poses)
        self.min_start_coverage = spaces.check_min_start_coverage(min_start_coverage)
        self.config = sim_config(config)
        if threads is not None:
            self.config = dataclasses.replace(self.config, torch_threads=threads)
        apply_torch_threads(self.config.torch_threads, "threads")
        if backend is None:
            from worldfm_ros.backends.registry import create_backend

            backend = create_backend(self.config.backend.name, config=self.config.backend)
        self.sim = Simulator(self.config, backend, device=device)
        self.sim.load_scene(scene if scene is not None else (self.config.scene or None))
        self.dt = float(dt)
        self.max_episode_steps = max_episode_steps
        self.reward_fn = reward_fn or ForwardProgress()
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.dt}
        self.normalized_actions = normalized_actions
        self.action_space = spaces.action_space(self.config.kinematics, normalized_actions)
        self.observation_space = spaces.observation_space(self.sim.rig.camera, observation)
        self._steps = 0
        self._last: Observation | None = None

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        options = spaces.reset_options(options)
        if options.get("scene") is not None:
            self.sim.load_scene(options["scene"])
        z = self.config.initial_pose[2]
        if options.get("pose") is not None:
            pose = start_pose(options["pose"], z)
        elif self.start_poses == "random":
            pose = self.sim.random_free_pose(self.np_random, min_coverage=self.min_start_coverage)
        else:
            listed = spaces.listed_start(self.start_poses, self.np_random)
            pose = None if listed is None else start_pose(listed, z)
        # The backend's noise follows the env's generator, so reset(seed=s) fixes the whole episode.
        self._last = self.sim.reset(pose, seed=int(self.np_random.integers(0, 2**31 - 1)))
        self._steps = 0
        return self._observation(self._last), self._info(self._last)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._last is None:
            raise RuntimeError("step() called before reset()")
        action = np.asarray(action, dtype=np.float32)
        previous = self._last.odom_T_base
        obs = self.sim.step(spaces.action_to_twist(action, self.config.kinematics, self.normalized_actions), self.dt)
        self._last = obs
        self._steps += 1
        reward = self.reward_fn(Transition(previous, obs.odom_T_base, action, self.dt, obs.collision, obs.done,
                                           obs.min_obstacle_distance))
        return (self._observation(obs), float(reward), bool(obs.done),
                spaces.truncated(self._steps, self.max_episode_steps), self._info(obs))

    def render(self) -> np.ndarray | None:
        """The last camera image (H, W, 3) uint8 in 'rgb_array' mode, else None."""
        if self.render_mode != "rgb_array" or self._last is None or self._last.frame is None:
            return None
        return self._last.frame.rgb.copy()

    def _observation(self, obs: Observation) -> Any:
        return spaces.observation(obs.frame.rgb, obs.frame.depth,
                                  spaces.odom_vector(obs.odom_T_base, obs.linear, obs.angular), self.observation_space)

    @staticmethod
    def _info(obs: Observation) -> dict[str, Any]:
        return {"map_T_base": obs.map_T_base.copy(), "stamp_ns": obs.stamp_ns, "collision": obs.collision,
                "min_obstacle_distance": obs.min_obstacle_distance, "coverage": obs.frame.coverage,
                "observed": obs.frame.observed_fraction,
                "reference_index": obs.frame.reference_index}
