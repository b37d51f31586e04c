"""Gymnasium environments of the simulator.

``WorldFM-v0``: :class:`WorldFMEnv`, in-process (no ROS).
``WorldFMRos-v0``: :class:`WorldFMRosEnv`, a running node in lockstep mode driven through its
~/reset and ~/step services (needs rclpy when built).
Vector envs: :func:`make_vector_env` (gymnasium) and :func:`make_sb3_vector_env` (stable-baselines3);
:class:`BatchedWorldFMEnv`: N robots in one shared world as one gymnasium VectorEnv (``batched=True``).

    import gymnasium as gym
    import worldfm_ros.envs  # registers the ids
    env = gym.make("WorldFM-v0", config={"camera": {"width": 64, "height": 48}, "backend": {"name": "anchor"}},
                   max_episode_steps=200)
"""

from __future__ import annotations

import gymnasium

from worldfm_ros.envs.spaces import DEFAULT_MAX_EPISODE_STEPS
from worldfm_ros.envs.reward import ForwardProgress, RewardFn, Transition
from worldfm_ros.envs.batched import BatchedWorldFMEnv
from worldfm_ros.envs.ros_env import WorldFMRosEnv
from worldfm_ros.envs.sim_env import WorldFMEnv
from worldfm_ros.envs.vector import env_factories, make_sb3_vector_env, make_vector_env

__all__ = ["ENV_IDS", "BatchedWorldFMEnv", "DEFAULT_MAX_EPISODE_STEPS", "ForwardProgress", "RewardFn", "Transition", "WorldFMEnv",
           "WorldFMRosEnv", "env_factories", "make_sb3_vector_env", "make_vector_env"]

ENV_IDS = {
    "WorldFM-v0": "worldfm_ros.envs.sim_env:WorldFMEnv",
    "WorldFMRos-v0": "worldfm_ros.envs.ros_env:WorldFMRosEnv",
}

for _id, _entry_point in ENV_IDS.items():
    if _id not in gymnasium.registry:
        # gym.make's TimeLimit ends episodes (max_episode_steps= overrides it); the env's own limit is off.
        gymnasium.register(id=_id, entry_point=_entry_point, max_episode_steps=DEFAULT_MAX_EPISODE_STEPS,
                           kwargs={"max_episode_steps": None})
