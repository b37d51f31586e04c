"""``BatchedWorldFMEnv``: N robots in one shared world as one ``gymnasium.vector.VectorEnv``.

Where ``make_vector_env`` builds N full ``WorldFMEnv`` copies (N worlds in memory, N times the
fixed cost of a step, one robot after the other), here the robots of a world share one world, one
frame pipeline (its keyframe caches), one collision tree and one backend; their kinematics and
collisions are stepped as arrays (``sim.robots.RobotBatch``) and all their cameras go through
the frame path as one batch of views (one world render call, one keyframe choice, one backend
call). Each robot draws its starts and its episode's noise from its own generator, seeded per
robot, so robot i follows, bit for bit, a ``WorldFMEnv`` given the same seed and actions (a test
checks it). Robots may be spread over several worlds (``scenes``), each loaded once.

Autoreset follows gymnasium 1.x: by default next-step (as ``SyncVectorEnv``: the step after a
robot's episode ends resets it, with reward 0 and the reset's observation and info), or
same-step (``autoreset_mode=AutoresetMode.SAME_STEP``: reset at once, the last observation and
info in ``info['final_obs']`` and ``info['final_info']``), which the stable-baselines3 adapter
uses. Spaces, rewards, info keys and episode rules are those of ``WorldFMEnv``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, create_empty_array

from worldfm_ros.backends.base import FrameBackend
from worldfm_ros.envs import spaces
from worldfm_ros.envs.reward import ForwardProgress, RewardFn, Transition
from worldfm_ros.envs.sim_env import SceneSource, WorldFMEnv, sim_config, start_pose
from worldfm_ros.runtime import apply_torch_threads
from worldfm_ros.sim.config import SimConfig
from worldfm_ros.sim.robots import RobotBatch
from worldfm_ros.sim.simulator import Observation, Simulator
from worldfm_ros.world.store import open_world

ConfigSource = SimConfig | dict | str | None


def _scene_key(scene: Any) -> Any:
    """Robots whose scenes have equal keys share one world: a path by its text, an object by identity."""
    return ("path", str(scene or "")) if scene is None or isinstance(scene, str) or hasattr(scene, "__fspath__") \
        else ("object", id(scene))


class BatchedWorldFMEnv(VectorEnv):
    """``num_envs`` robots, each a ``WorldFMEnv`` in behaviour, sharing their worlds.

    config: one SimConfig (or mapping / YAML path / None) for every robot, or a list with one per
        robot (different robots: kinematics, mount, collision; their spaces must agree).
    scene: the world of every robot (path, SceneAnchor or World; None = ``config.scene``, '' the
        bundled room); scenes: instead, one per robot: robots with the same path or object share
        one world.
    backend: one frame backend for all (None: one per distinct ``config.backend``, shared).
    autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default) or ``SAME_STEP``.
    dt, max_episode_steps, reward_fn, render_mode, device, normalized_actions, observation,
    start_poses, min_start_coverage, threads: as in ``WorldFMEnv``, for every robot.

    ValueError for num_envs < 1, a config or scene list of the wrong length, or robots whose
    observation or action spaces differ.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, config: ConfigSource | Sequence[ConfigSource] = None,
                 scene: SceneSource | None = None, scenes: Sequence[SceneSource] | None = None,
                 backend: FrameBackend | None = None, dt: float = 0.1,
                 max_episode_steps: int | None = spaces.DEFAULT_MAX_EPISODE_STEPS, reward_fn: RewardFn | None = None,
                 render_mode: str | None = None, device: str = "cpu", normalized_actions: bool = True,
                 observation: str = "dict", start_poses: str | list | None = "random", threads: int | None = None,
                 min_start_coverage: float = spaces.DEFAULT_MIN_START_COVERAGE,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs: expected an integer >= 1, got {num_envs!r}")
        n = self.num_envs = int(num_envs)
        spaces.check_episode_arguments(dt, max_episode_steps, render_mode, self.metadata["render_modes"], observation)
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        if self.autoreset_mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode: expected next_step or same_step, got disabled")
        self.metadata = {**self.metadata, "render_fps": 1.0 / dt, "autoreset_mode": self.autoreset_mode}
        self.start_poses = spaces.check_start_poses(start_poses)
        self.min_start_coverage = spaces.check_min_start_coverage(min_start_coverage)
        configs = self._per_robot("config", config)
        if scenes is not None and scene is not None:
            raise ValueError("give scene (one for all robots) or scenes (one per robot), not both")
        configs = [sim_config(c) for c in configs]
        if threads is not None:
            import dataclasses

            configs = [dataclasses.replace(c, torch_threads=threads) for c in configs]
        apply_torch_threads(configs[-1].torch_threads, "threads")
        sources = self._per_robot("scenes", scenes) if scenes is not None else \
            [scene if scene is not None else (c.scene or None) for c in configs]
        self.dt, self.max_episode_steps = float(dt), max_episode_steps
        self.reward_fn = reward_fn or ForwardProgress()
        self.render_mode, self.normalized_actions = render_mode, normalized_actions

        backends: dict[str, FrameBackend] = {}
        worlds: dict[Any, Any] = {}
        groups: dict[tuple, list[int]] = {}
        for i, (c, s) in enumerate(zip(configs, sources)):
            groups.setdefault((_scene_key(s), repr(c)), []).append(i)
        self._batches: list[RobotBatch] = []
        self._members: list[np.ndarray] = []  # robot ids of each batch
        self._group = np.zeros(n, np.int64)
        self._slot = np.zeros(n, np.int64)
        for g, ((scene_key, _), robots) in enumerate(groups.items()):
            c = configs[robots[0]]
            if scene_key not in worlds:
                worlds[scene_key] = open_world(sources[robots[0]], device=device)
            b = backend
            if b is None:
                key = repr(c.backend)
                if key not in backends:
                    from worldfm_ros.backends.registry import create_backend

                    backends[key] = create_backend(c.backend.name, config=c.backend)
                b = backends[key]
            sim = Simulator(c, b, device=device)
            sim.load_scene(worlds[scene_key])
            self._batches.append(RobotBatch(sim, len(robots)))
            self._members.append(np.array(robots))
            self._group[robots], self._slot[robots] = g, np.arange(len(robots))
        self._backends = list(backends.values())
        self._configs = configs

        first = self._batches[0].sim
        self.single_action_space = spaces.action_space(first.config.kinematics, normalized_actions)
        self.single_observation_space = spaces.observation_space(first.rig.camera, observation)
        for b, robots in zip(self._batches, self._members):
            action = spaces.action_space(b.config.kinematics, normalized_actions)
            obs = spaces.observation_space(b.sim.rig.camera, observation)
            if action != self.single_action_space or obs != self.single_observation_space:
                raise ValueError(f"mismatched spaces: robot {robots[0]} (scene {b.sim.scene_path}) has observation "
                                 f"{obs} and action {action}, robot 0 has {self.single_observation_space} and "
                                 f"{self.single_action_space}; robots of one batch need the same camera size, "
                                 "observation mode and action space (normalized_actions for different limits)")
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self._obs = create_empty_array(self.single_observation_space, n)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._autoreset = np.zeros(n, bool)
        self._last: list[Observation | None] = [None] * n
        self._started = False

    @property
    def worlds(self) -> list:
        """The distinct worlds the robots are in (each in memory once)."""
        return list({id(b.sim.world): b.sim.world for b in self._batches}.values())

    def _per_robot(self, name: str, value: Any) -> list:
        """``value`` for every robot: itself, or a list with one per robot (ValueError otherwise)."""
        if isinstance(value, (list, tuple)):
            if len(value) != self.num_envs:
                raise ValueError(f"{name}: expected one per robot ({self.num_envs}), got {len(value)}")
            return list(value)
        return [value] * self.num_envs

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every robot, or those of ``options['reset_mask']`` ((N,) bool). seed: None, an int
        (robot i gets seed + i, as SyncVectorEnv) or one seed (or None) per robot."""
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, bool)))
        if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
            raise ValueError(f"options['reset_mask']: expected ({self.num_envs},) bool, got {mask.dtype} {mask.shape}")
        if options:
            raise ValueError(f"reset options: unknown key(s) {sorted(options)}; known: ['reset_mask']")
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed: expected an int, None or one seed per robot ({self.num_envs}), "
                                 f"got {len(seeds)} seeds")
        if not self._started and not mask.all():
            raise ValueError("options['reset_mask']: the first reset must reset every robot")
        robots = np.flatnonzero(mask)
        for i in robots:
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
            self._start(i)
        self._started = True
        self._autoreset[robots] = False
        observations = self._observe(robots)
        infos: dict[str, Any] = {}
        self._obs_rows(robots, observations)
        for i, obs in zip(robots, observations):
            infos = self._add_info(infos, WorldFMEnv._info(obs), i)
        return copy.deepcopy(self._obs), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("step() called before reset()")
        actions = np.asarray(actions, dtype=np.float32)
        shape = (self.num_envs, *self.single_action_space.shape)
        if actions.shape != shape:
            raise ValueError(f"actions: expected shape {shape} (one action per robot), got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError(f"actions contain NaN or inf in row(s) {np.flatnonzero(~np.isfinite(actions).all(1)).tolist()}")
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        resets = np.flatnonzero(self._autoreset)
        stepped = np.flatnonzero(~self._autoreset)
        for i in resets:
            self._start(i)
        previous = {int(i): self._batches[self._group[i]].odom_T_base[self._slot[i]].copy() for i in stepped}
        for b, robots in zip(self._batches, self._members):
            mine = robots[~self._autoreset[robots]]
            if len(mine):
                linear, angular = self._twists(b, actions[mine])
                b.step(self._slot[mine], linear, angular, self.dt)
        observations = self._observe(np.arange(self.num_envs))
        infos: dict[str, Any] = {}
        for i, obs in enumerate(observations):
            info = WorldFMEnv._info(obs)
            if not self._autoreset[i]:
                rewards[i] = float(self.reward_fn(Transition(previous[i], obs.odom_T_base, actions[i], self.dt,
                                                             obs.collision, obs.done, obs.min_obstacle_distance)))
                terminated[i] = obs.done
                truncated[i] = spaces.truncated(int(self._batches[self._group[i]].steps[self._slot[i]]),
                                                self.max_episode_steps)
            infos = self._add_info(infos, info, i)
        self._obs_rows(np.arange(self.num_envs), observations)
        done = terminated | truncated
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            robots = np.flatnonzero(done)
            for i in robots:
                last = self._last[i]
                infos = self._add_info(infos, {"final_obs": self._single_obs(last), "final_info": WorldFMEnv._info(last)}, i)
                self._start(i)
            observations = self._observe(robots)
            self._obs_rows(robots, observations)
            for i, obs in zip(robots, observations):
                infos = self._add_info(infos, WorldFMEnv._info(obs), i)
            self._autoreset[:] = False
        else:
            self._autoreset = done
        return copy.deepcopy(self._obs), rewards, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """Every robot's last camera image (H, W, 3) uint8 in 'rgb_array' mode, else None."""
        if self.render_mode != "rgb_array" or self._last[0] is None:
            return None
        return tuple(obs.frame.rgb.copy() for obs in self._last)

    def close_extras(self, **kwargs: Any) -> None:
        # A construction refused half-way has no backends yet; gymnasium still closes it.
        for backend in getattr(self, "_backends", ()):
            backend.close()

    # ------------------------------------------------------------------ robots
    def _start(self, i: int) -> None:
        """``WorldFMEnv.reset`` of robot i with its generator: its start pose and episode seed."""
        b, slot, rng = self._batches[self._group[i]], self._slot[i], self._rngs[i]
        if self.start_poses == "random":
            pose = b.sim.random_free_pose(rng, min_coverage=self.min_start_coverage)
        else:
            listed = spaces.listed_start(self.start_poses, rng)
            pose = None if listed is None else start_pose(listed, b.config.initial_pose[2])
        b.reset(slot, pose, seed=int(rng.integers(0, 2**31 - 1)))

    def _observe(self, robots: np.ndarray) -> list[Observation]:
        """Render the primary camera of ``robots`` (one frame-path batch per world) and observe them."""
        out: dict[int, Observation] = {}
        for g, (b, members) in enumerate(zip(self._batches, self._members)):
            mine = robots[self._group[robots] == g]
            if len(mine) == 0:
                continue
            slots = self._slot[mine]
            map_T_base = b.map_T_base[slots]
            frames = b.sim.pipeline.render_views(b.views(slots, map_T_base))
            for i, obs in zip(mine, b.observations(slots, frames, map_T_base)):
                out[int(i)] = obs
        for i, obs in out.items():
            self._last[i] = obs
        return [out[int(i)] for i in robots]

    def _twists(self, b: RobotBatch, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body twists (K, 3), (K, 3) of actions (K, A): ``spaces.action_to_twist`` of each row."""
        a = actions.astype(np.float64)
        if self.normalized_actions:
            a = np.clip(a, -1.0, 1.0) * spaces.action_limits(b.config.kinematics)
        twist = np.zeros((len(a), 6))
        twist[:, list(spaces.ACTION_AXES[b.config.kinematics.model])] = a
        return twist[:, :3], twist[:, 3:]

    def _single_obs(self, obs: Observation) -> Any:
        """An observation of ``single_observation_space`` from a simulator observation."""
        return spaces.observation(obs.frame.rgb, obs.frame.depth,
                                  spaces.odom_vector(obs.odom_T_base, obs.linear, obs.angular),
                                  self.single_observation_space)

    def _obs_rows(self, robots: np.ndarray, observations: list[Observation]) -> None:
        """Write the observations of ``robots`` (K,) into their rows, converted as one stack
        (``spaces.observation`` is elementwise: each row as ``_single_obs`` makes it)."""
        rows = spaces.observation(np.stack([o.frame.rgb for o in observations]),
                                  np.stack([o.frame.depth for o in observations]),
                                  np.stack([spaces.odom_vector(o.odom_T_base, o.linear, o.angular) for o in observations]),
                                  self.single_observation_space)
        if isinstance(rows, dict):
            for key, value in rows.items():
                self._obs[key][robots] = value
        else:
            self._obs[robots] = rows
