"""The node's problems and its camera status on /diagnostics.

Every problem a callback meets is kept for /diagnostics (the last 20, shown for 10 s) and logged as
a warning. A problem that can come with every frame, tick or message names a ``throttle_key``
and is logged at most once per THROTTLE_S for that key (rclpy's ``throttle_duration_sec``), so
that "waiting for pose on /tf" does not flood the log at the frame rate. The status is published
on the steady clock, so it keeps coming when ROS time stands still and can say why.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import rclpy.logging
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from worldfm_ros.ros import conversions as conv
from worldfm_ros.ros.frame_loop import FrameCounters, frame_cost_ms
from worldfm_ros.sim.simulator import Simulator

# ROS time standing still for this long (steady clock) with use_sim_time set means no /clock.
NO_CLOCK_AFTER_S = 2.0
#: a throttled problem is logged at most once per this many seconds (steady clock)
THROTTLE_S = 5.0


class Diagnostics:
    """Problems of ``node`` (``report``) and its camera status on /diagnostics (``publish``)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._errors: deque[tuple[float, str]] = deque(maxlen=20)
        self._errors_lock = threading.Lock()
        self._last_logged = 0.0
        # rclpy throttles per logger object and call site: one logger per key throttles each kind alone.
        self._throttled: dict[str, rclpy.impl.rcutils_logger.RcutilsLogger] = {}
        self._ros_time_seen = (node.get_clock().now().nanoseconds, time.monotonic())

    def report(self, message: str, throttle_key: str | None = None) -> None:
        """Keep a problem for /diagnostics and log it. With ``throttle_key``, the log says it at
        most once per THROTTLE_S for that key; without, unless it repeats the last one within 5 s."""
        now = time.monotonic()
        with self._errors_lock:
            last = self._errors[-1] if self._errors else None
            self._errors.append((now, message))
            if throttle_key is not None:
                logger = self._throttled.setdefault(throttle_key, rclpy.logging.get_logger(self.node.get_logger().name))
            elif last is not None and last[1] == message and now - self._last_logged <= 5.0:
                return
            else:
                self._last_logged = now
        if throttle_key is not None:
            logger.warning(message, throttle_duration_sec=THROTTLE_S)
        else:
            self.node.get_logger().warning(message)

    def publish(self, sim: Simulator, frames: FrameCounters, stamp_ns: int) -> None:
        """Publish the camera status (rate, per-stage ms, skipped frames, the last problem) stamped ``stamp_ns``."""
        now = time.monotonic()
        cfg = sim.config
        rate = frames.rate_hz(now)
        stages = frames.stage_ms()
        with self._errors_lock:
            recent = [m for t, m in self._errors if now - t < 10.0]
        status = DiagnosticStatus(name="worldfm_sim: camera", hardware_id=cfg.frames.optical)
        stalled = self._ros_time_stalled_s(now, cfg.lockstep)
        if stalled is not None:
            status.level = DiagnosticStatus.ERROR
            status.message = (f"use_sim_time is true but ROS time has not moved for {stalled:.0f} s: nothing "
                              "publishes /clock, so timers on ROS time never fire and no frames are made")
        elif sim.world is None:
            status.level, status.message = DiagnosticStatus.ERROR, recent[-1] if recent else "no scene loaded"
        elif recent:
            status.level, status.message = DiagnosticStatus.WARN, recent[-1]
        elif skipped := frames.skipped_within(now):
            frame_ms = frame_cost_ms(stages)
            status.level = DiagnosticStatus.WARN
            status.message = (f"skipped {skipped} frames in 5 s: a frame takes {frame_ms:.0f} ms, "
                              f"the period is {1e3 / cfg.rate_hz:.0f} ms ({rate:.1f} Hz achieved)")
        else:
            status.level, status.message = DiagnosticStatus.OK, f"{rate:.1f} Hz"
        executor = self.node.executor
        values = {"backend": sim.backend.name, "scene": sim.scene_path, "input_mode": cfg.input_mode,
                  "rate_hz": f"{rate:.2f}", "target_rate_hz": f"{cfg.rate_hz:g}",
                  "frames_published": str(frames.published), "frames_skipped": str(frames.skipped),
                  "torch_threads": str(torch.get_num_threads()),
                  "executor": type(executor).__name__ if executor is not None else ""}
        values.update({f"{k}_ms": f"{v:.2f}" for k, v in stages.items()})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = conv.time_msg(stamp_ns)
        self.pub.publish(msg)

    def _ros_time_stalled_s(self, now: float, lockstep: bool) -> float | None:
        """Seconds ROS time has stood still while use_sim_time is on (None when it moves or is off)."""
        ros_now = self.node.get_clock().now().nanoseconds
        if ros_now != self._ros_time_seen[0]:
            self._ros_time_seen = (ros_now, now)
            return None
        stalled = now - self._ros_time_seen[1]
        use_sim_time = self.node.get_parameter("use_sim_time").value
        # lockstep time stands still between steps on purpose
        return stalled if use_sim_time and not lockstep and stalled > NO_CLOCK_AFTER_S else None
