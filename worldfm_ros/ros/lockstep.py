"""The lockstep services (``lockstep: true``, for RL): ``~/reset`` and ``~/step``.

Time advances only on ``~/step``. Each call renders the observation, publishes it as the real-time
node would (/clock, odom, odom → base_link, every camera's messages, imu/data) and copies it into
the response. A request the simulator refuses raises; the node's service wrapper answers it as a
failure with the reason (see ``SimNode._served``).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from nav_msgs.msg import Odometry
from rclpy.publisher import Publisher
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu

from worldfm_ros.ros import conversions as conv
from worldfm_ros.ros.frame_loop import FramePublisher
from worldfm_ros.ros.tf_io import TfPublisher
from worldfm_ros.sim.simulator import Observation, Simulator
from worldfm_ros.srv import Reset, Step


class LockstepServices:
    """Handlers of ``~/reset`` and ``~/step`` over ``sim`` (guarded by ``lock``)."""

    def __init__(self, sim: Simulator, lock: threading.Lock, frames: FramePublisher, pub_clock: Publisher,
                 pub_odom: Publisher, tf: TfPublisher, publish_imu: Callable[[list], list[Imu]]) -> None:
        self.sim, self.lock, self.frames = sim, lock, frames
        self.pub_clock, self.pub_odom, self.tf, self.publish_imu = pub_clock, pub_odom, tf, publish_imu

    def reset(self, request: Reset.Request, response: Reset.Response) -> Reset.Response:
        """Start an episode at ``request.pose`` (map frame; with ``use_pose``) or a random free pose,
        seeded by ``request.seed`` (≥ 0)."""
        pose = conv.pose_to_matrix(request.pose) if request.use_pose else None
        with self.lock:
            obs = self.sim.reset(pose, seed=request.seed if request.seed >= 0 else None)
        self._fill_observation(response, obs)
        response.success, response.message = True, "ok"
        return response

    def step(self, request: Step.Request, response: Step.Response) -> Step.Response:
        """Apply ``request.action`` (body twist, m/s and rad/s) for ``request.dt`` simulated seconds."""
        twist = conv.twist_to_body(request.action)
        with self.lock:
            obs = self.sim.step(twist, request.dt)
        self._fill_observation(response, obs)
        response.done, response.collision = bool(obs.done), bool(obs.collision)
        response.min_obstacle_distance = float(obs.min_obstacle_distance)
        response.success, response.message = True, "ok"
        return response

    def _fill_observation(self, response: Reset.Response | Step.Response, obs: Observation) -> None:
        """Publish the observation like a real-time frame and copy it into a Reset/Step response."""
        f, stamp = self.sim.config.frames, obs.stamp_ns
        self.pub_clock.publish(Clock(clock=conv.time_msg(stamp)))
        odom: Odometry = conv.odometry_msg(obs.odom_T_base, obs.linear, obs.angular, stamp, f.odom, f.base)
        self.pub_odom.publish(odom)
        self.tf.send([(obs.odom_T_base, stamp, f.odom, f.base)])
        response.odometry = odom
        response.camera_info = self.frames.outputs[0].info_msg(stamp)
        if hasattr(response, "imu"):
            response.imu = self.publish_imu(obs.imu)
        t_trigger = time.perf_counter()
        for i, cam in enumerate(self.sim.sensors.cameras):
            frame = obs.frames.get(cam.name)
            if frame is not None:
                messages = self.frames.publish(frame, t_trigger, i)
                if i == 0:
                    response.image, response.depth = messages
