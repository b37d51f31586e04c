"""Gymnasium environments of the simulator.

``WorldFM-v0``: :class:`~worldfm_ros.envs.sim_env.WorldFMEnv`, in-process (no ROS).
``WorldFMRos-v0``: :class:`~worldfm_ros.envs.ros_env.WorldFMRosEnv`, a running node in lockstep
mode driven through its ~/reset and ~/step services (needs rclpy).

    import gymnasium as gym
    env = gym.make("worldfm_ros.envs:WorldFM-v0", config={"camera": {"width": 64, "height": 48}})
"""

from __future__ import annotations

import gymnasium

ENV_IDS = {
    "WorldFM-v0": "worldfm_ros.envs.sim_env:WorldFMEnv",
    "WorldFMRos-v0": "worldfm_ros.envs.ros_env:WorldFMRosEnv",
}

for _id, _entry_point in ENV_IDS.items():
    if _id not in gymnasium.registry:
        # Episode length is the env's own max_episode_steps argument, not a TimeLimit wrapper.
        gymnasium.register(id=_id, entry_point=_entry_point)
