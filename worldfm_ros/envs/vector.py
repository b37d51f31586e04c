"""Several in-process envs side by side, on different scenes and robots (gymnasium.vector)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gymnasium.vector import SyncVectorEnv

from worldfm_ros.envs.sim_env import SceneSource, WorldFMEnv, sim_config
from worldfm_ros.sim.config import SimConfig

ConfigSource = SimConfig | dict | str | Path | None


def env_factories(scenes: Sequence[SceneSource], configs: ConfigSource | Sequence[ConfigSource] = None,
                  **env_kwargs: Any) -> list[Callable[[], WorldFMEnv]]:
    """One ``WorldFMEnv`` constructor per scene.

    scenes: a scene anchor (path or object) per env. configs: one config for all envs, or a list
    with one per scene (different robots: kinematics, mount, collision). The sub-envs must share
    their spaces: the same camera size, and for different speed limits ``normalized_actions=True``.
    env_kwargs: passed to every ``WorldFMEnv``.
    """
    if isinstance(configs, (list, tuple)):
        if len(configs) != len(scenes):
            raise ValueError(f"configs: expected one per scene ({len(scenes)}), got {len(configs)}")
        per_env = [sim_config(c) for c in configs]
    else:
        per_env = [sim_config(configs)] * len(scenes)
    return [lambda s=scene, c=config: WorldFMEnv(c, scene=s, **env_kwargs) for scene, config in zip(scenes, per_env)]


def make_vector_env(scenes: Sequence[SceneSource], configs: ConfigSource | Sequence[ConfigSource] = None,
                    **env_kwargs: Any) -> SyncVectorEnv:
    """A SyncVectorEnv of ``env_factories(scenes, configs, **env_kwargs)``; sub-envs reset
    automatically on the step after their episode ends (gymnasium's next-step autoreset)."""
    return SyncVectorEnv(env_factories(scenes, configs, **env_kwargs))
