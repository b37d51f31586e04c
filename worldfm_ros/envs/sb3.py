"""A gymnasium ``VectorEnv`` (above all ``BatchedWorldFMEnv``) as a stable-baselines3 ``VecEnv``.

SB3 resets a finished sub-env in the same step and expects the last observation in
``info['terminal_observation']`` and ``info['TimeLimit.truncated']`` for a time limit; the wrapped
env must therefore autoreset in gymnasium's same-step mode, whose ``final_obs`` / ``final_info``
carry exactly that. Needs stable-baselines3 (imported when the adapter is built).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

try:
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv
except ImportError:  # the adapter says so when built
    VecEnv = object


def _unbatch(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Robot i's info from a gymnasium vector info (arrays with '_key' masks)."""
    out = {}
    for key, value in infos.items():
        if key.startswith("_") or not infos.get(f"_{key}", np.zeros(i + 1, bool))[i]:
            continue
        out[key] = _unbatch(value, i) if isinstance(value, dict) else value[i]
    return out


class Sb3VecEnv(VecEnv):
    """``venv`` (a gymnasium VectorEnv in same-step autoreset mode) for SB3's algorithms.

    Each step's infos are one dict per sub-env: the wrapped env's keys, plus at an episode's end
    ``terminal_observation`` and ``TimeLimit.truncated`` (truncated and not terminated).
    """

    def __init__(self, venv: VectorEnv) -> None:
        if VecEnv is object:
            raise ImportError("Sb3VecEnv needs stable-baselines3 (pip install stable-baselines3)")
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"Sb3VecEnv: the vector env must autoreset in same-step mode (SB3 resets at once), "
                             f"got {mode}; build it with autoreset_mode='same_step'")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self):
        seeds = [s for s in self._seeds] if any(s is not None for s in self._seeds) else None
        obs, _ = self.venv.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        out = []
        for i in range(self.num_envs):
            info = _unbatch(infos, i)
            final = info.pop("final_info", None)
            last = info.pop("final_obs", None)
            if terminated[i] or truncated[i]:
                info = {**(final or info), "terminal_observation": last,
                        "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
            out.append(info)
        return obs, rewards.astype(np.float32), terminated | truncated, out

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        method = getattr(self.venv, method_name)
        return [method(*method_args, **method_kwargs)] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def get_images(self):
        images = self.venv.render()
        return list(images) if images is not None else [None] * self.num_envs
