"""``WorldFMRosEnv``: a running simulator node (lockstep mode) as a gymnasium environment.

The env calls the node's ``~/reset`` and ``~/step`` services (worldfm_ros/srv/Reset,
Step) from a node of its own, in its own rclpy context, so it can live next to other
rclpy code in one process. Spaces and rewards are those of the in-process
:class:`~worldfm_ros.envs.sim_env.WorldFMEnv`; the spaces are read from the node's
parameters (camera, kinematics) when the env is built. Start the node with
``ros2 launch worldfm_ros sim.launch.py`` and the parameter ``lockstep: true``.
rclpy and the generated service types are imported when the env is built, never by the
library core.
"""

from __future__ import annotations

import uuid
from typing import Any

import gymnasium as gym
import numpy as np

from worldfm_ros.envs import spaces
from worldfm_ros.envs.reward import ForwardProgress, RewardFn, Transition
from worldfm_ros.envs.sim_env import start_pose
from worldfm_ros.errors import WorldFMError
from worldfm_ros.sim.kinematics import KinematicsConfig
from worldfm_ros.sensors.rig import CameraConfig
from worldfm_ros.sim.simulator import planar_pose

# Node parameters the spaces and the map frame are built from.
PARAMETERS = ("lockstep", "camera.width", "camera.height", "camera.hfov_deg", "camera.camera_info_url",
              "kinematics.model", "kinematics.max_linear", "kinematics.max_angular", "initial_pose")


class WorldFMRosEnv(gym.Env):
    """Drives the node ``/<namespace>/<node_name>`` through its lockstep services.

    dt: simulated seconds per step (sent with every Step request). max_episode_steps: truncation
    (None: no own limit). reward_fn: ``Transition -> float`` (default :class:`ForwardProgress`).
    timeout_s: seconds to wait for the services to appear and for each reply.
    normalized_actions, observation: as in WorldFMEnv. start_poses: None (the node's initial
    pose) or a list of (x m, y m, yaw rad) in the map frame, one drawn per reset with the env's
    generator (a random free-space spawn needs the scene, which lives in the node).

    reset options: ``pose`` (x, y, yaw) or (4, 4) of base_link in the map frame; ``scene``: a
    scene path for the node's ~/load_scene service. info: map_T_base (4, 4), stamp_ns, and after
    a step collision and min_obstacle_distance (m).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, namespace: str = "", node_name: str = "worldfm_sim", dt: float = 0.1,
                 max_episode_steps: int | None = spaces.DEFAULT_MAX_EPISODE_STEPS, reward_fn: RewardFn | None = None, render_mode: str | None = None,
                 normalized_actions: bool = True, timeout_s: float = 30.0, observation: str = "dict",
                 start_poses: list | None = None) -> None:
        spaces.check_episode_arguments(dt, max_episode_steps, render_mode, self.metadata["render_modes"],
                                       observation)
        self.start_poses = spaces.check_start_poses(start_poses)
        if self.start_poses == "random":
            raise ValueError("start_poses: 'random' needs the scene in-process; give WorldFMRosEnv a list of "
                             "(x, y, yaw)")
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rcl_interfaces.srv import GetParameters

        from worldfm_ros.srv import LoadScene, Reset, Step

        self._rclpy, self._Reset, self._Step, self._LoadScene = rclpy, Reset, Step, LoadScene
        self.dt, self.max_episode_steps = float(dt), max_episode_steps
        self.reward_fn = reward_fn or ForwardProgress()
        self.render_mode, self.normalized_actions, self.timeout_s = render_mode, normalized_actions, timeout_s
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.dt}
        ns = namespace.strip("/")
        self.service_prefix = f"/{ns}/{node_name}" if ns else f"/{node_name}"

        self._context = rclpy.context.Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node(f"worldfm_rl_env_{uuid.uuid4().hex[:8]}", context=self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._closed = False
        try:
            self._reset_client = self._client(Reset, "reset")
            self._step_client = self._client(Step, "step")
            params = self._parameters(self._client(GetParameters, "get_parameters"))
        except BaseException:
            self.close()
            raise
        if not params["lockstep"]:
            self.close()
            raise WorldFMError(f"{self.service_prefix}: the node is not in lockstep mode (parameter lockstep: false)")
        camera = CameraConfig(params["camera.width"], params["camera.height"], params["camera.hfov_deg"],
                              params["camera.camera_info_url"]).build()
        self.kinematics = KinematicsConfig(params["kinematics.model"], params["kinematics.max_linear"],
                                           params["kinematics.max_angular"])
        self.map_T_odom = planar_pose(*params["initial_pose"])
        self.action_space = spaces.action_space(self.kinematics, normalized_actions)
        self.observation_space = spaces.observation_space(camera, observation)
        self._load_scene_client = None
        self._steps = 0
        self._odom_T_base: np.ndarray | None = None
        self._image: np.ndarray | None = None

    # ----------------------------------------------------------------- rclpy plumbing
    def _client(self, srv_type: type, name: str):
        client = self._node.create_client(srv_type, f"{self.service_prefix}/{name}")
        if not client.wait_for_service(timeout_sec=self.timeout_s):
            raise WorldFMError(f"service {self.service_prefix}/{name} not available after {self.timeout_s} s "
                               "(is the node running, in lockstep mode, in this ROS domain?)")
        return client

    def _call(self, client, request):
        future = client.call_async(request)
        self._executor.spin_until_future_complete(future, timeout_sec=self.timeout_s)
        if not future.done():
            client.remove_pending_request(future)
            raise WorldFMError(f"service {client.srv_name}: no reply within {self.timeout_s} s")
        response = future.result()
        if hasattr(response, "success") and not response.success:
            raise WorldFMError(f"service {client.srv_name}: {response.message}")
        return response

    def _parameters(self, client) -> dict[str, Any]:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        values = self._call(client, GetParameters.Request(names=list(PARAMETERS))).values
        return {name: parameter_value_to_python(v) for name, v in zip(PARAMETERS, values)}

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        from worldfm_ros.ros import conversions as conv

        super().reset(seed=seed)
        options = spaces.reset_options(options)
        if options.get("scene") is not None:
            if self._load_scene_client is None:
                self._load_scene_client = self._client(self._LoadScene, "load_scene")
            self._call(self._load_scene_client, self._LoadScene.Request(path=str(options["scene"])))
        request = self._Reset.Request(seed=int(self.np_random.integers(0, 2**31 - 1)))
        pose = options.get("pose")
        if pose is None:
            pose = spaces.listed_start(self.start_poses, self.np_random)
        if pose is not None:
            request.use_pose = True
            request.pose = conv.pose_msg(start_pose(pose, self.map_T_odom[2, 3]))
        response = self._call(self._reset_client, request)
        self._steps = 0
        obs, info = self._observe(response)
        return obs, info

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        from worldfm_ros.ros import conversions as conv

        if self._odom_T_base is None:
            raise RuntimeError("step() called before reset()")
        action = np.asarray(action, dtype=np.float32)
        twist = spaces.action_to_twist(action, self.kinematics, self.normalized_actions)
        request = self._Step.Request(dt=self.dt)
        conv.set_twist(request.action, twist.linear, twist.angular)
        previous = self._odom_T_base
        response = self._call(self._step_client, request)
        obs, info = self._observe(response)
        self._steps += 1
        info["collision"] = bool(response.collision)
        info["min_obstacle_distance"] = float(response.min_obstacle_distance)
        reward = self.reward_fn(Transition(previous, self._odom_T_base, action, self.dt, bool(response.collision),
                                           bool(response.done), float(response.min_obstacle_distance)))
        return (obs, float(reward), bool(response.done), spaces.truncated(self._steps, self.max_episode_steps),
                info)

    def _observe(self, response) -> tuple[Any, dict[str, Any]]:
        from worldfm_ros.ros import conversions as conv

        if response.image.height == 0:
            raise WorldFMError(f"{self.service_prefix}: the reply holds no image (no scene loaded?)")
        odom = response.odometry
        self._odom_T_base = conv.pose_to_matrix(odom.pose.pose)
        twist = conv.twist_to_body(odom.twist.twist)
        self._image = conv.image_to_numpy(response.image)
        obs = spaces.observation(self._image, conv.image_to_numpy(response.depth),
                                 spaces.odom_vector(self._odom_T_base, twist.linear, twist.angular), self.observation_space)
        info = {"map_T_base": self.map_T_odom @ self._odom_T_base,
                "stamp_ns": conv.time_ns(response.image.header.stamp)}
        return obs, info

    def render(self) -> np.ndarray | None:
        """The last camera image (H, W, 3) uint8 in 'rgb_array' mode, else None."""
        return None if self.render_mode != "rgb_array" or self._image is None else self._image.copy()

    def close(self) -> None:
        """Destroy the env's node and shut its rclpy context down (safe to call twice)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._executor.shutdown()
        self._node.destroy_node()
        self._rclpy.shutdown(context=self._context)
