"""RLlib on worldfm_ros envs: each env runner holds its robots in one ``BatchedWorldFMEnv``.

RLlib's env runners build their vector env through gymnasium's ``make_vec``; with
``gym_env_vectorize_mode="vector_entry_point"`` they call the registered creator with RLlib's
``num_envs_per_env_runner`` as ``num_envs``, and :func:`make_rllib_env` answers with one batched env
of that many robots (one world, one frame pipeline per runner) instead of N copies of the single
env. The images reach RLlib as float32 in [0, 1]: its CNN encoder takes float input.

    from worldfm_ros.scale.rllib import ppo_config
    algo = ppo_config({"config": config, "scene": "", "max_episode_steps": 200}).build_algo()
    algo.train()
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from worldfm_ros.errors import WorldFMError

#: The name :func:`register` gives the creator in RLlib's registry.
ENV_NAME = "worldfm-batched"
#: ``ray[rllib]`` as requirements/python.txt pins it (it pins gymnasium to one release).
RLLIB_REQUIREMENT = "ray[rllib]==2.60.0"
#: Conv layers for small cameras, ``[channels, [kh, kw], stride]`` per layer: RLlib has defaults
#: only for square 10, 42, 64, 84 and 96 pixel images.
SMALL_CONV_FILTERS = [[16, [4, 4], 2], [32, [4, 4], 2], [64, [3, 3], 2]]


def make_rllib_env(env_config: dict[str, Any]) -> VectorEnv:
    """RLlib's env creator: a ``BatchedWorldFMEnv`` of ``env_config["num_envs"]`` robots (RLlib adds
    it) built from the other keys (``BatchedWorldFMEnv``'s arguments: config, scene, dt,
    max_episode_steps, ...), observations ``"image"`` as (N, H, W, 3) float32 in [0, 1]."""
    from worldfm_ros.envs.batched import BatchedWorldFMEnv

    kwargs = {k: v for k, v in dict(env_config).items() if k != "num_envs"}
    if kwargs.setdefault("observation", "image") != "image":
        raise ValueError(f"env_config.observation: expected 'image', got {kwargs['observation']!r}")
    env = BatchedWorldFMEnv(int(env_config.get("num_envs", 1)), **kwargs)
    return _float_images(env)


def _float_images(env: VectorEnv) -> VectorEnv:
    from gymnasium.wrappers.vector import TransformObservation

    single = spaces.Box(0.0, 1.0, env.single_observation_space.shape, np.float32)  # (H, W, 3)
    return TransformObservation(env, lambda obs: obs.astype(np.float32) / np.float32(255.0),
                                observation_space=batch_space(single, env.num_envs), single_observation_space=single)


def register(name: str = ENV_NAME) -> str:
    """Register :func:`make_rllib_env` with RLlib (``ray.tune.register_env``) and return ``name``."""
    from ray.tune.registry import register_env

    register_env(name, make_rllib_env)
    return name


def ppo_config(env_config: dict[str, Any], num_env_runners: int = 1, num_envs_per_env_runner: int = 4,
               rollout_fragment_length: int | str = "auto", train_batch_size: int = 4000, minibatch_size: int = 128,
               num_epochs: int = 10, conv_filters: list | None = None):
    """An RLlib ``PPOConfig`` (new API stack) on the batched env: ``num_env_runners`` env runners,
    each a Ray actor stepping ``num_envs_per_env_runner`` robots as one ``BatchedWorldFMEnv`` of
    ``env_config`` (see :func:`make_rllib_env`); a CNN of ``conv_filters`` (default
    :data:`SMALL_CONV_FILTERS`) on the image. WorldFMError with the pip line when RLlib is missing."""
    try:
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    except ImportError as exc:
        raise WorldFMError(f"RLlib is not installed: pip install '{RLLIB_REQUIREMENT}'") from exc
    return (PPOConfig()
            .environment(register(), env_config=dict(env_config))
            .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner,
                         gym_env_vectorize_mode="vector_entry_point", rollout_fragment_length=rollout_fragment_length)
            .training(train_batch_size_per_learner=train_batch_size, minibatch_size=minibatch_size, num_epochs=num_epochs)
            .rl_module(model_config=DefaultModelConfig(conv_filters=conv_filters or SMALL_CONV_FILTERS)))
