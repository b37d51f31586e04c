"""``RayVectorEnv``: a vector env whose robots live in Ray actors, over the cores of a cluster.

The robots are split into ``num_actors`` consecutive shards; each actor holds a
``BatchedWorldFMEnv`` of its shard (its own worlds in its own process, on whichever node Ray
places it), and a step sends every actor its rows of the actions at once and gathers their
results in order. Robot i gets the seed a ``BatchedWorldFMEnv`` of all N robots would give it
(seed + i), and each robot's episode depends only on its own seed and actions, so the
observations are those of one ``BatchedWorldFMEnv`` of all robots, however they are sharded.
For stable-baselines3 wrap it in ``envs.sb3.Sb3VecEnv`` (with ``autoreset_mode`` same-step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from worldfm_ros.scale.ray_runtime import import_ray


class _Shard:
    """The actor: a BatchedWorldFMEnv of some robots."""

    def __init__(self, num_envs: int, kwargs: dict[str, Any]) -> None:
        from worldfm_ros.envs.batched import BatchedWorldFMEnv

        self.env = BatchedWorldFMEnv(num_envs, **kwargs)

    def spaces(self):
        return self.env.single_observation_space, self.env.single_action_space

    def reset(self, seed, options):
        return self.env.reset(seed=seed, options=options)

    def step(self, actions):
        return self.env.step(actions)

    def close(self) -> None:
        self.env.close()


def merge_infos(parts: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """One gymnasium vector info from the infos of consecutive shards of ``sizes`` robots each."""
    total, out = sum(sizes), {}
    keys = [k for part in parts for k in part if not k.startswith("_")]
    for key in dict.fromkeys(keys):
        values, masks = [], []
        for part, n in zip(parts, sizes):
            mask = part.get(f"_{key}", np.zeros(n, bool))
            value = part.get(key)
            masks.append(mask)
            values.append(value)
        if any(isinstance(v, dict) for v in values):
            out[key] = merge_infos([v if isinstance(v, dict) else {} for v in values], sizes)
        else:
            sample = next(v for v in values if v is not None)
            filler = [np.zeros((n, *sample.shape[1:]), sample.dtype) if v is None else v for v, n in zip(values, sizes)]
            out[key] = np.concatenate(filler)
        out[f"_{key}"] = np.concatenate(masks) if masks else np.zeros(total, bool)
    return out


class RayVectorEnv(VectorEnv):
    """``num_envs`` robots in ``num_actors`` Ray actors (consecutive shards, as even as they go).

    env_kwargs: ``BatchedWorldFMEnv`` arguments for every shard (config, scene, dt, observation,
    autoreset_mode, ...; per-robot lists such as ``scenes`` are split with the robots). Ray must
    be initialised (``scale.ray_runtime.connect``) or is started here with its defaults.
    actor_options: ``ray.remote`` options of each actor (default one CPU).
    """

    def __init__(self, num_envs: int, num_actors: int = 2, actor_options: dict[str, Any] | None = None,
                 **env_kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs: expected an integer >= 1, got {num_envs!r}")
        if not 1 <= num_actors <= num_envs:
            raise ValueError(f"num_actors: expected 1..num_envs ({num_envs}), got {num_actors}")
        ray = self._ray = import_ray()
        self.num_envs = int(num_envs)
        bounds = np.linspace(0, num_envs, num_actors + 1).round().astype(int)
        self._sizes = [int(b - a) for a, b in zip(bounds[:-1], bounds[1:])]
        self._starts = [int(a) for a in bounds[:-1]]
        actor = ray.remote(**(actor_options or {"num_cpus": 1}))(_Shard)
        self._actors = []
        for start, size in zip(self._starts, self._sizes):
            kwargs = {k: (list(v)[start:start + size] if k in ("scenes", "config") and isinstance(v, (list, tuple))
                          else v) for k, v in env_kwargs.items()}
            self._actors.append(actor.remote(size, kwargs))
        spaces = ray.get([a.spaces.remote() for a in self._actors])
        self.single_observation_space, self.single_action_space = spaces[0]
        if any(s != spaces[0] for s in spaces[1:]):
            raise ValueError("mismatched spaces: the robots of different actors have different observation or "
                             "action spaces")
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        mode = AutoresetMode(env_kwargs.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        self.metadata = {"autoreset_mode": mode, "render_modes": []}

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed: expected an int, None or one seed per robot ({self.num_envs}), "
                                 f"got {len(seeds)} seeds")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        calls = []
        for actor, start, size in zip(self._actors, self._starts, self._sizes):
            part = dict(options)
            if mask is not None:
                part["reset_mask"] = np.asarray(mask)[start:start + size]
            calls.append(actor.reset.remote(seeds[start:start + size], part))
        results = self._ray.get(calls)
        return self._concat([r[0] for r in results]), merge_infos([r[1] for r in results], self._sizes)

    def step(self, actions: Any):
        actions = np.asarray(actions, dtype=np.float32)
        shape = (self.num_envs, *self.single_action_space.shape)
        if actions.shape != shape:
            raise ValueError(f"actions: expected shape {shape} (one action per robot), got {actions.shape}")
        results = self._ray.get([a.step.remote(actions[s:s + n]) for a, s, n in
                                 zip(self._actors, self._starts, self._sizes)])
        obs = self._concat([r[0] for r in results])
        rewards, terminated, truncated = (np.concatenate([r[k] for r in results]) for k in (1, 2, 3))
        return obs, rewards, terminated, truncated, merge_infos([r[4] for r in results], self._sizes)

    def _concat(self, parts: list) -> Any:
        if isinstance(parts[0], dict):
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return np.concatenate(parts)

    def close_extras(self, **kwargs: Any) -> None:
        self._ray.get([a.close.remote() for a in self._actors])
        for a in self._actors:
            self._ray.kill(a)
