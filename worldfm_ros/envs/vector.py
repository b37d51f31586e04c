"""Several in-process envs side by side, on different scenes and robots.

``make_vector_env``: a gymnasium ``SyncVectorEnv`` (CleanRL-style loops; ``gymnasium.make_vec``
builds the same from the registered id), or with ``batched=True`` one ``BatchedWorldFMEnv``
(robots of the same scene share one world and are stepped and rendered as one batch: the fast
choice for many robots). ``make_sb3_vector_env``: a stable-baselines3 ``DummyVecEnv`` of the
same envs, each in a ``Monitor`` (SB3 does not take gymnasium's vector envs), or with
``batched=True`` the batched env through ``envs.sb3.Sb3VecEnv`` in a ``VecMonitor``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gymnasium.vector import AutoresetMode, SyncVectorEnv

from worldfm_ros.backends.base import FrameBackend
from worldfm_ros.envs.sim_env import SceneSource, WorldFMEnv, sim_config
from worldfm_ros.runtime import apply_torch_threads
from worldfm_ros.sim.config import SimConfig

ConfigSource = SimConfig | dict | str | Path | None


def env_factories(scenes: Sequence[SceneSource], configs: ConfigSource | Sequence[ConfigSource] = None,
                  **env_kwargs: Any) -> list[Callable[[], WorldFMEnv]]:
    """One ``WorldFMEnv`` constructor per scene.

    scenes: a scene anchor (path or object) per env (repeat one for several copies of it). configs:
    one config for all envs, or a list with one per scene (different robots: kinematics, mount,
    collision). The sub-envs must share their spaces: the same camera size and observation mode,
    and for different speed limits normalised actions (the default). Envs whose configs name the
    same backend share one (one model in memory: a backend keeps no per-call state), unless
    ``env_kwargs`` gives a ``backend`` for all.
    env_kwargs: passed to every ``WorldFMEnv``.
    """
    if isinstance(configs, (list, tuple)):
        if len(configs) != len(scenes):
            raise ValueError(f"configs: expected one per scene ({len(scenes)}), got {len(configs)}")
        per_env = [sim_config(c) for c in configs]
    else:
        per_env = [sim_config(configs)] * len(scenes)
    if "backend" in env_kwargs:
        return [lambda s=scene, c=config: WorldFMEnv(c, scene=s, **env_kwargs) for scene, config in zip(scenes, per_env)]
    shared: dict[str, FrameBackend] = {}

    def backend_for(config: SimConfig) -> FrameBackend:
        key = repr(config.backend)
        if key not in shared:
            from worldfm_ros.backends.registry import create_backend

            threads = env_kwargs.get("threads")
            apply_torch_threads(config.torch_threads if threads is None else threads, "threads")
            shared[key] = create_backend(config.backend.name, config=config.backend)
        return shared[key]

    return [lambda s=scene, c=config: WorldFMEnv(c, scene=s, backend=backend_for(c), **env_kwargs)
            for scene, config in zip(scenes, per_env)]


def make_vector_env(scenes: Sequence[SceneSource], configs: ConfigSource | Sequence[ConfigSource] = None,
                    batched: bool = False, **env_kwargs: Any):
    """A SyncVectorEnv of ``env_factories(scenes, configs, **env_kwargs)``, or with ``batched`` a
    ``BatchedWorldFMEnv`` of one robot per scene (the same observations for the same seeds and
    actions); sub-envs reset automatically on the step after their episode ends (gymnasium's
    next-step autoreset)."""
    if batched:
        from worldfm_ros.envs.batched import BatchedWorldFMEnv

        return BatchedWorldFMEnv(len(scenes), configs, scenes=list(scenes), **env_kwargs)
    return SyncVectorEnv(env_factories(scenes, configs, **env_kwargs))


def make_sb3_vector_env(scenes: Sequence[SceneSource], configs: ConfigSource | Sequence[ConfigSource] = None,
                        batched: bool = False, **env_kwargs: Any):
    """A stable-baselines3 ``DummyVecEnv`` of ``env_factories(scenes, configs, **env_kwargs)``, each
    sub-env wrapped in SB3's ``Monitor`` (episode returns for its logger), or with ``batched`` a
    ``BatchedWorldFMEnv`` (same-step autoreset, as SB3 expects) in a ``VecMonitor``. Needs
    stable-baselines3."""
    try:
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor
    except ImportError as exc:
        raise ImportError("make_sb3_vector_env needs stable-baselines3 (pip install stable-baselines3)") from exc
    if batched:
        from worldfm_ros.envs.sb3 import Sb3VecEnv

        return VecMonitor(Sb3VecEnv(make_vector_env(scenes, configs, batched=True, autoreset_mode=AutoresetMode.SAME_STEP,
                                                    **env_kwargs)))
    return DummyVecEnv([lambda f=factory: Monitor(f()) for factory in env_factories(scenes, configs, **env_kwargs)])
