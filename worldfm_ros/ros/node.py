"""The simulator node: a thin ROS 2 adapter over :mod:`worldfm_ros.sim`.

Inputs: ``cmd_vel`` (Twist, or TwistStamped) integrated by a kinematic model, or a
pose followed from /tf. Outputs (relative names, so a namespace applies), for each camera
``<name>`` of the sensor rig (one camera named ``camera`` by default):
``<name>/image_raw`` (rgb8), ``<name>/camera_info``, ``<name>/depth/image_raw``
(32FC1 metres, NaN = no data), ``<name>/points`` (optional), ``<name>/frame_stats``;
``imu/data`` when the rig has an IMU; ``odom``, /tf, /tf_static, /diagnostics and /clock
(when it runs its own time). Every image carries the stamp of the pose it was rendered at;
the cameras of one rate render from one pose and share its stamp.

Faults never stop the node: every callback catches what it raises, reports it on
/diagnostics and keeps serving. Diagnostics run on the steady clock, so they also say why
no frames come when ROS time stands still (use_sim_time without /clock).
"""

from __future__ import annotations

import array
import os
import queue
import signal
import threading
import time
from collections import deque
from typing import Callable

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, Imu, LaserScan, PointCloud2

from worldfm_ros.config import flatten, load_config, unflatten
from worldfm_ros.errors import ConfigError, WorldFMError
from worldfm_ros.msg import FrameStats
from worldfm_ros.resources import default_scene_path
from worldfm_ros.ros import conversions as conv
from worldfm_ros.ros.tf_io import TfListener, TfPublisher
from worldfm_ros.ros.dds import use_camera_profile
from worldfm_ros.ros.executors import make_executor
from worldfm_ros.runtime import apply_torch_threads
from worldfm_ros.sim.config import SimConfig
from worldfm_ros.frame.pipeline import FRAME_STAGES, Frame
from worldfm_ros.sim.scan import depth_to_scan
from worldfm_ros.scene.backproject import backproject_pixels
from worldfm_ros.scene.store import resolve_in_dirs, scene_folder
from worldfm_ros.sim.sensor_rig import RigCamera
from worldfm_ros.sim.simulator import RobotState, Simulator
from worldfm_ros.ros.tf_tree import TransformLookupError
from worldfm_ros.srv import LoadScene, Reset, Step
from worldfm_ros.viz import open_log

# Parameters that may change while running are SimConfig's LIVE_FIELDS (Simulator.reconfigure).
# Camera streams: reliable, depth 10, as camera drivers publish (image_transport's default), so a
# recorder loses no frame; best-effort (sensor-data) subscribers still match.
CAMERA_QOS = QoSProfile(depth=10)

# IMU samples come in bursts of a few per kinematic tick; a VIO consumer must lose none.
IMU_QOS = QoSProfile(depth=400)

# Service request/response queues: an RL client may send a burst of ~/step calls; rclpy's default
# depth of 10 silently drops the rest. Requests queue here and are answered in order.
SERVICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)
# ROS time standing still for this long (steady clock) with use_sim_time set means no /clock.
NO_CLOCK_AFTER_S = 2.0
# Frames published before the node compares a frame's cost with the camera period (the first
# frames carry warm-up cost).
RATE_CHECK_FRAMES = 6


def frame_cost_ms(stage_ms: dict[str, float]) -> float:
    """What one frame costs the node, ms: the frame's stages (render, antialias, select, backend)
    run in one thread and publish in another, so the slower of the two sets the pace."""
    return max(sum(stage_ms.get(k, 0.0) for k in FRAME_STAGES), stage_ms.get("publish", 0.0))


class CameraOutputs:
    """The publishers of one rig camera (relative names under ``<name>/``) and its CameraInfo,
    built once and restamped per frame (the camera does not change while the node runs)."""

    def __init__(self, node: Node, camera: RigCamera) -> None:
        ns = camera.name
        self.camera = camera
        self.image = node.create_publisher(Image, f"{ns}/image_raw", CAMERA_QOS)
        self.info = node.create_publisher(CameraInfo, f"{ns}/camera_info", CAMERA_QOS)
        self.depth = node.create_publisher(Image, f"{ns}/depth/image_raw", CAMERA_QOS) if camera.config.publish_depth else None
        # Depth is registered to the colour camera; image_transport consumers look for the info here.
        self.depth_info = (node.create_publisher(CameraInfo, f"{ns}/depth/camera_info", CAMERA_QOS)
                           if camera.config.publish_depth else None)
        self.points = node.create_publisher(PointCloud2, f"{ns}/points", qos_profile_sensor_data)
        self.stats = node.create_publisher(FrameStats, f"{ns}/frame_stats", 10)
        self.camera_info = self.info_msg(0)

    def info_msg(self, stamp_ns: int) -> CameraInfo:
        cam = self.camera
        return conv.camera_info_msg(cam.camera, stamp_ns, cam.optical_frame, cam.lens.distortion_model, cam.lens.D,
                                    cam.projection_tx())


class SimNode(Node):
    """The worldfm_ros camera simulator (see module docstring for its interface)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("worldfm_sim", **kwargs)
        cfg = self._declare_config()
        apply_torch_threads(cfg.torch_threads)  # before the backend and the frame thread start
        self._lock = threading.Lock()
        self._errors: deque[tuple[float, str]] = deque(maxlen=20)
        self._last_logged = 0.0
        self._errors_lock = threading.Lock()
        self._stage_ms: dict[str, deque[float]] = {}
        self._published: deque[float] = deque(maxlen=50)
        self.frames_published = 0
        self.frames_skipped = 0
        self._skips: deque[float] = deque(maxlen=1000)
        self._steady = RosClock(clock_type=ClockType.STEADY_TIME)
        self._ros_time_seen = (self.get_clock().now().nanoseconds, time.monotonic())

        self.sim = Simulator.from_config(cfg, self._report)
        self.rig, self.backend, self.sensors = self.sim.rig, self.sim.backend, self.sim.sensors
        self.viz = open_log(cfg.rerun, self.rig.camera, self._report, application_id=self.get_name())
        try:
            self.load_scene(cfg.scene)
        except WorldFMError as exc:
            self._report(f"no scene loaded: {exc}")

        # Outputs.
        self.outputs = [CameraOutputs(self, cam) for cam in self.sensors.cameras]
        self.pub_imu = self.create_publisher(Imu, "imu/data", IMU_QOS) if self.sim.imu is not None else None
        self.pub_scan = self.create_publisher(LaserScan, "scan", qos_profile_sensor_data)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.pub_odom = self.create_publisher(Odometry, "odom", 10)
        self.pub_clock = self.create_publisher(Clock, "/clock", 10) if (cfg.publish_clock or cfg.lockstep) else None
        self.tf = TfPublisher(self)
        self.tf_listener = (TfListener(self, on_reject=lambda why: self._report(f"/tf rejected: {why}"))
                            if cfg.input_mode == "tf" else None)

        self._state: RobotState | None = None  # the last kinematic tick, whose odom was published
        self._followed: tuple[np.ndarray, int] | None = None  # the last /tf pose (tf mode), for its velocity
        self._publish_static_tf()

        # Inputs.
        guard = self._guarded
        if cfg.lockstep:
            self.create_service(Reset, "~/reset", self._served("reset", self._on_reset), qos_profile=SERVICE_QOS)
            self.create_service(Step, "~/step", self._served("step", self._on_step), qos_profile=SERVICE_QOS)
        elif cfg.input_mode == "cmd_vel":
            twist_type = TwistStamped if cfg.cmd_vel_stamped else Twist
            self.create_subscription(twist_type, "cmd_vel", guard("cmd_vel", self._on_cmd_vel), 10)
            self.create_subscription(PoseWithCovarianceStamped, "initialpose",
                                     guard("initialpose", self._on_initial_pose), 10)
            self.create_timer(1.0 / cfg.sim_rate_hz, guard("kinematics tick", self._on_sim_tick))
        self.create_service(LoadScene, "~/load_scene", self._served("load_scene", self._on_load_scene),
                            qos_profile=SERVICE_QOS)
        self._frame_timers: list = []
        self._groups: list[tuple[float, list[int]]] = []
        if not cfg.lockstep:
            self._create_frame_timers()
        # Steady clock: diagnostics keep coming when ROS time stands still.
        self.create_timer(1.0, guard("diagnostics", self._publish_diagnostics), clock=self._steady)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._work = threading.Condition()
        # The next pose to render per camera group (at most one each), in arrival order:
        # group -> (map_T_base, stamp_ns, t_trigger, (linear, angular)).
        self._jobs: dict[int, tuple[np.ndarray, int, float, tuple[np.ndarray, np.ndarray] | None]] = {}
        self._last_rendered_stamp: dict[int, int] = {}
        self._running = True
        # Two stages, one thread each: frame n is converted and published while frame n + 1
        # renders. One queue between them keeps the order; holding at most two frames, it holds
        # the renderer back (and frames are then skipped) when publishing falls behind.
        self._outbox: queue.Queue[tuple[list[Frame], list[int], np.ndarray, float] | None] = queue.Queue(maxsize=2)
        self._worker = threading.Thread(target=self._work_loop, name="worldfm_frames", daemon=True)
        self._publisher = threading.Thread(target=self._publish_loop, name="worldfm_publish", daemon=True)
        self._worker.start()
        self._publisher.start()
        cams = ", ".join(f"{c.name} {c.camera.width}x{c.camera.height} at {c.rate_hz:g} Hz" for c in self.sensors.cameras)
        imu = f", imu at {self.sensors.imu.rate_hz:g} Hz" if self.sim.imu is not None else ""
        self.get_logger().info(f"worldfm_sim: {cfg.input_mode} mode, {cams}{imu}, backend {self.backend.name}, "
                               f"scene {self.scene_path or 'none'}")

    # ----------------------------------------------------------------- set-up
    def _guarded(self, what: str, callback: Callable) -> Callable:
        """``callback`` for a subscription or timer: anything it raises (MemoryError included) is
        reported and the node keeps serving."""
        def run(*args):
            try:
                callback(*args)
            except Exception as exc:
                self._report(f"{what} failed: {type(exc).__name__}: {exc}")
        return run

    def _served(self, what: str, handler: Callable) -> Callable:
        """``handler`` for a service whose response has success/message: anything it raises is
        answered as a failure and reported."""
        def run(request, response):
            try:
                return handler(request, response)
            except Exception as exc:
                response.success, response.message = False, f"{what} failed: {type(exc).__name__}: {exc}"
                self._report(response.message)
                return response
        return run

    def _create_frame_timers(self) -> None:
        """One frame timer per camera rate (cameras with rate_hz 0 follow the node's rate_hz)."""
        for timer in self._frame_timers:
            timer.cancel()
            self.destroy_timer(timer)
        groups: dict[float, list[int]] = {}
        for i, cam in enumerate(self.sensors.cameras):
            groups.setdefault(cam.config.rate_hz or self.cfg.rate_hz, []).append(i)
        self._groups = list(groups.items())
        self._frame_timers = [self.create_timer(1.0 / rate, self._guarded("frame tick", lambda g=g: self._on_frame_tick(g)))
                              for g, (rate, _) in enumerate(self._groups)]

    def stop_frames(self) -> None:
        """Stop triggering frames (the ones already triggered are still published)."""
        for timer in self._frame_timers:
            timer.cancel()

    def _declare_config(self) -> SimConfig:
        defaults = flatten(SimConfig())
        # dynamic typing: YAML writes 1 for 1.0; load_config then checks the type once, by field.
        for key, value in defaults.items():
            self.declare_parameter(key, value, ParameterDescriptor(dynamic_typing=True))
        values = {key: self.get_parameter(key).value for key in defaults}
        return load_config(SimConfig, unflatten(values), prefix="parameter")

    @property
    def cfg(self) -> SimConfig:
        """The configuration in force (the simulator's; ``reconfigure`` replaces it)."""
        return self.sim.config

    def _publish_static_tf(self) -> None:
        f = self.cfg.frames
        statics = []
        if not (self.cfg.input_mode == "tf" and self.cfg.tf_source == "optical"):
            statics += self.sensors.static_transforms(f.base)
        if self.cfg.input_mode == "cmd_vel" and self.cfg.publish_map_to_odom:
            statics.append((self.sim.map_T_odom, f.map, f.odom))
        if statics:
            self.tf.send_static([(T, 0, parent, child) for T, parent, child in statics])

    @property
    def scene_path(self) -> str:
        return self.sim.scene_path

    def load_scene(self, path: str) -> None:
        """Load a world ('' = bundled default); raises WorldFMError and changes nothing."""
        with self._lock:
            self.sim.load_scene(path)
            if self.viz is not None:
                self.viz.log_world(self.sim.world)

    def _report(self, message: str) -> None:
        """Keep a problem for /diagnostics; log it unless it repeats the last one within 5 s."""
        now = time.monotonic()
        with self._errors_lock:
            last = self._errors[-1] if self._errors else None
            self._errors.append((now, message))
        if last is None or last[1] != message or now - self._last_logged > 5.0:
            self._last_logged = now
            self.get_logger().warning(message)

    # ----------------------------------------------------------------- time
    def now_ns(self) -> int:
        """The simulator's clock when it owns time (lockstep, publish_clock), else ROS time."""
        return self.sim.time_ns if self.cfg.owns_time else self.get_clock().now().nanoseconds

    # ----------------------------------------------------------------- inputs
    def _on_cmd_vel(self, msg) -> None:
        twist = msg.twist if isinstance(msg, TwistStamped) else msg
        body = conv.twist_to_body(twist)
        try:
            with self._lock:
                self.sim.set_command(body, self.now_ns() * 1e-9)
        except ValueError as exc:
            self._report(f"cmd_vel rejected: {exc}")

    def _on_initial_pose(self, msg: PoseWithCovarianceStamped) -> None:
        try:
            map_T_base = conv.pose_to_matrix(msg.pose.pose)
        except ValueError as exc:
            self._report(f"initialpose rejected: {exc}")
            return
        if msg.header.frame_id not in ("", self.cfg.frames.map):
            self._report(f"initialpose rejected: frame_id {msg.header.frame_id!r} is not {self.cfg.frames.map!r}")
            return
        with self._lock:
            self.sim.set_map_pose(map_T_base)

    def _on_sim_tick(self) -> None:
        """Integrate the kinematics, then publish /clock (own time), odom and odom→base_link."""
        with self._lock:
            state = self._state = self.sim.tick(None if self.cfg.owns_time else self.now_ns())
            imu = self.sim.take_imu_samples()
        now, f = state.stamp_ns, self.cfg.frames
        if self.cfg.publish_clock:
            self.pub_clock.publish(Clock(clock=conv.time_msg(now)))
        if state.collided:
            self._report("motion blocked: the robot would collide with the scene")
        self.pub_odom.publish(conv.odometry_msg(state.odom_T_base, state.linear, state.angular, now, f.odom, f.base))
        self.tf.send([(state.odom_T_base, now, f.odom, f.base)])
        self._publish_imu(imu)

    def _publish_imu(self, samples: list) -> list[Imu]:
        """Publish IMU samples on imu/data; return the messages."""
        if self.pub_imu is None:
            return []
        model, frame = self.sim.imu, self.sensors.imu.frame_id
        msgs = [conv.imu_msg(s.stamp_ns, frame, s.angular_velocity, s.linear_acceleration, s.orientation_xyzw,
                             model.angular_velocity_covariance, model.linear_acceleration_covariance,
                             model.orientation_covariance) for s in samples]
        for msg in msgs:
            self.pub_imu.publish(msg)
        return msgs

    def _pose_from_tf(self) -> tuple[np.ndarray, int] | None:
        f = self.cfg.frames
        source = f.optical if self.cfg.tf_source == "optical" else f.base
        now = self.now_ns()
        try:
            T, stamp = self.tf_listener.lookup(f.map, source, now, self.cfg.tf_max_age_s)
        except TransformLookupError as exc:
            self._report(f"waiting for pose on /tf: {exc}")
            return None
        ahead_s = (stamp - now) * 1e-9
        if ahead_s > self.cfg.tf_future_tolerance_s:
            self._report(f"/tf rejected: {f.map} -> {source} is stamped {ahead_s:.3f} s ahead of the node's clock "
                         f"(tf_future_tolerance_s {self.cfg.tf_future_tolerance_s:g}); images would carry that stamp")
            return None
        if self.cfg.tf_source == "optical":
            T = self.rig.base_from_optical_in_map(T)
        return T, stamp

    # ----------------------------------------------------------------- frames
    def _followed_twist(self, pose: tuple[np.ndarray, int]) -> tuple[np.ndarray, np.ndarray] | None:
        """Body twist (linear, angular) of base_link between the last two followed /tf poses (None
        for the first): the velocity the motion effects need in tf mode."""
        last, self._followed = self._followed, pose
        if last is None or pose[1] <= last[1]:
            return None
        dt = (pose[1] - last[1]) * 1e-9
        prev_T_now = np.linalg.inv(last[0]) @ pose[0]
        return prev_T_now[:3, 3] / dt, Rotation.from_matrix(prev_T_now[:3, :3]).as_rotvec() / dt

    def _on_frame_tick(self, group: int = 0) -> None:
        if self.sim.world is None:
            return
        twist = None
        if self.cfg.input_mode == "tf":
            pose = self._pose_from_tf()
            if pose is not None and pose[1] != self._last_rendered_stamp.get(group):
                twist = self._followed_twist(pose)
        else:
            with self._lock:
                state = self._state
            if state is not None and state.stamp_ns == self._last_rendered_stamp.get(group) and not self.cfg.owns_time:
                # A camera faster than the kinematics: integrate to now rather than repeat a pose.
                self._on_sim_tick()
                with self._lock:
                    state = self._state
            pose = None if state is None else (state.map_T_base, state.stamp_ns)
            if state is not None:
                twist = (state.linear, state.angular)
        if pose is None or pose[1] == self._last_rendered_stamp.get(group):
            return
        with self._work:
            if self._jobs.pop(group, None) is not None:
                # The renderer has not taken the last pose yet: the newest pose replaces it, so a
                # slow frame costs one frame, never a queue of stale ones.
                self.frames_skipped += 1
                self._skips.append(time.monotonic())
            self._jobs[group] = (pose[0], pose[1], time.perf_counter(), twist)
            self._last_rendered_stamp[group] = pose[1]
            self._work.notify()

    def _work_loop(self) -> None:
        while True:
            with self._work:
                while not self._jobs and self._running:
                    self._work.wait()
                if not self._running:
                    return
                group = next(iter(self._jobs))
                map_T_base, stamp, t_trigger, twist = self._jobs.pop(group)
                indices = self._groups[group][1]
            try:
                # Noise seeding (fixed or fresh per frame) is the backend's, from backend.seed/reuse_noise.
                frames = self.sim.render_cameras(map_T_base, stamp, indices, twist=twist)
                self._outbox.put((frames, indices, map_T_base, t_trigger))
            except Exception as exc:  # keep serving: a bad frame must not kill the camera
                self._report(f"frame failed: {type(exc).__name__}: {exc}")

    def _publish_loop(self) -> None:
        while (item := self._outbox.get()) is not None:
            frames, indices, map_T_base, t_trigger = item
            try:
                for frame, i in zip(frames, indices):
                    self._publish_frame(frame, t_trigger, i)
                self._check_blank(frames[0], map_T_base)
            except Exception as exc:
                self._report(f"frame failed: {type(exc).__name__}: {exc}")

    def _check_blank(self, frame: Frame, map_T_base: np.ndarray) -> None:
        """Report a frame that shows no scene point, saying how far the pose is from the scene."""
        if frame.coverage > 0.0:
            return
        outside = self.sim.distance_outside_scene(map_T_base)
        where = (f"base_link is {outside:.3g} m outside the scene's extent" if outside > 0
                 else "base_link is inside the scene's extent, looking at no point")
        self._report(f"blank frame: the camera sees no scene point ({where})")

    def _publish_frame(self, frame: Frame, t_trigger: float, camera: int = 0) -> tuple[Image, Image]:
        """Publish camera ``camera``'s frame: image, camera_info, depth (+ points, stats; the scan
        from the primary camera); return (image, depth) messages."""
        out = self.outputs[camera]
        optical = out.camera.optical_frame
        stamp = frame.stamp_ns
        t_publish = time.perf_counter()
        image = conv.rgb_image_msg(frame.rgb, stamp, optical)
        depth = conv.depth_image_msg(frame.depth, stamp, optical)
        info = out.camera_info
        info.header.stamp = conv.time_msg(stamp)
        out.image.publish(image)
        out.info.publish(info)
        if out.depth is not None:
            out.depth.publish(depth)
            out.depth_info.publish(info)
        if self.cfg.publish_points:
            out.points.publish(self._points_msg(frame, out.camera))
        if self.cfg.publish_scan and camera == 0:
            self.pub_scan.publish(self._scan_msg(frame))
        frame.timings_ms["publish"] = (time.perf_counter() - t_publish) * 1e3
        frame.timings_ms["trigger_to_publish"] = (time.perf_counter() - t_trigger) * 1e3
        latency_ms = (self.now_ns() - stamp) * 1e-6  # pose stamp -> publish, as FrameStats defines it
        stats = FrameStats(header=conv.header(stamp, optical), frame_index=self.frames_published,
                           backend=self.backend.name, reference_keyframe=frame.reference_index,
                           reference_score=float(frame.reference_score), render_coverage=frame.coverage,
                           latency_ms=latency_ms, skipped_frames=self.frames_skipped,
                           stage_names=list(frame.timings_ms), stage_ms=[float(v) for v in frame.timings_ms.values()])
        out.stats.publish(stats)
        if camera != 0:
            return image, depth
        # Rates, stage costs and the viewer follow the primary camera.
        with self._lock:
            self.frames_published += 1
            self._published.append(time.monotonic())
            for name, ms in frame.timings_ms.items():
                self._stage_ms.setdefault(name, deque(maxlen=50)).append(ms)
            if self.frames_published == RATE_CHECK_FRAMES and self._frame_timers:
                self._check_rate()
        if self.viz is not None:
            self.viz.log_frame(frame)
        return image, depth

    def _check_rate(self) -> None:
        """Say once, from the first frames' costs, when a frame takes longer than the camera period."""
        cost = {k: float(np.median(self._stage_ms[k])) for k in (*FRAME_STAGES, "publish")
                if k in self._stage_ms}
        period_ms = 1e3 / self.cfg.rate_hz
        frame_ms = frame_cost_ms(cost)
        if frame_ms > period_ms:
            stages = ", ".join(f"{k} {v:.0f} ms" for k, v in cost.items())
            self.get_logger().warning(
                f"rate_hz {self.cfg.rate_hz:g} cannot be held: a frame costs {frame_ms:.0f} ms ({stages}) against a "
                f"period of {period_ms:.0f} ms, so about {1e3 / frame_ms:.1f} Hz will be published and the rest "
                "skipped (lower rate_hz or the camera size, or see torch_threads)")

    def _scan_msg(self, frame: Frame) -> LaserScan:
        sc = self.cfg.scan
        ranges = depth_to_scan(frame.depth, self.rig.camera, self.rig.base_T_optical, sc)
        return LaserScan(header=conv.header(frame.stamp_ns, self.cfg.frames.base), angle_min=sc.angle_min,
                         angle_max=sc.angle_min + (len(ranges) - 1) * sc.angle_increment,
                         angle_increment=sc.angle_increment, time_increment=0.0, scan_time=1.0 / self.cfg.rate_hz,
                         range_min=sc.range_min, range_max=sc.range_max, ranges=ranges.astype(float).tolist())

    def _points_msg(self, frame: Frame, camera: RigCamera) -> PointCloud2:
        v, u = np.nonzero(frame.valid & (frame.depth > 0))
        points = backproject_pixels(u, v, frame.depth[v, u], camera.camera.K)
        return conv.point_cloud_msg(points, frame.rgb[v, u], frame.stamp_ns, camera.optical_frame)

    # ----------------------------------------------------------------- lockstep (RL)
    def _on_reset(self, request: Reset.Request, response: Reset.Response) -> Reset.Response:
        try:
            pose = conv.pose_to_matrix(request.pose) if request.use_pose else None
            with self._lock:
                obs = self.sim.reset(pose, seed=request.seed if request.seed >= 0 else None)
        except Exception as exc:  # a failing backend must not take the node down
            response.success, response.message = False, f"reset rejected: {exc}"
            self._report(response.message)
            return response
        self._fill_observation(response, obs)
        response.success, response.message = True, "ok"
        return response

    def _on_step(self, request: Step.Request, response: Step.Response) -> Step.Response:
        twist = conv.twist_to_body(request.action)
        try:
            with self._lock:
                obs = self.sim.step(twist, request.dt)
        except Exception as exc:  # a failing backend must not take the node down
            response.success, response.message = False, f"step rejected: {exc}"
            self._report(response.message)
            return response
        self._fill_observation(response, obs)
        response.done, response.collision = bool(obs.done), bool(obs.collision)
        response.min_obstacle_distance = float(obs.min_obstacle_distance)
        response.success, response.message = True, "ok"
        return response

    def _fill_observation(self, response, obs) -> None:
        """Publish the observation like a real-time frame and copy it into a Reset/Step response."""
        f, stamp = self.cfg.frames, obs.stamp_ns
        self.pub_clock.publish(Clock(clock=conv.time_msg(stamp)))
        odom = conv.odometry_msg(obs.odom_T_base, obs.linear, obs.angular, stamp, f.odom, f.base)
        self.pub_odom.publish(odom)
        self.tf.send([(obs.odom_T_base, stamp, f.odom, f.base)])
        response.odometry = odom
        response.camera_info = self.outputs[0].info_msg(stamp)
        if hasattr(response, "imu"):
            response.imu = self._publish_imu(obs.imu)
        t_trigger = time.perf_counter()
        for i, cam in enumerate(self.sensors.cameras):
            frame = obs.frames.get(cam.name)
            if frame is not None:
                messages = self._publish_frame(frame, t_trigger, i)
                if i == 0:
                    response.image, response.depth = messages

    # ----------------------------------------------------------------- services, parameters
    def scene_dirs(self) -> list[str]:
        """Directories ~/load_scene may read from (see SimConfig.scene_dirs)."""
        if self.cfg.scene_dirs:
            return self.cfg.scene_dirs.split(os.pathsep)
        dirs = [str(default_scene_path().parent)]
        return dirs + [str(scene_folder(self.cfg.scene))] if self.cfg.scene else dirs

    def _on_load_scene(self, request: LoadScene.Request, response: LoadScene.Response) -> LoadScene.Response:
        try:
            path = str(resolve_in_dirs(request.path, self.scene_dirs())) if request.path else ""
            self.load_scene(path)
        except (WorldFMError, MemoryError) as exc:
            response.success, response.message = False, (str(exc) if isinstance(exc, WorldFMError) else
                                                         f"{request.path}: not enough memory to load the scene")
            self._report(f"load_scene failed: {response.message}")
            return response
        world = self.sim.world
        response.success, response.message = True, f"loaded {request.path}"
        response.num_points, response.num_keyframes = world.primitives, len(world.keyframes)
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        flat = flatten(self.cfg)
        for p in params:
            if p.name not in flat:
                continue  # rclpy's own parameters (use_sim_time, ...)
            flat[p.name] = list(p.value) if isinstance(p.value, (list, tuple, array.array)) else p.value
        old_rate = self.cfg.rate_hz
        try:
            with self._lock:
                self.sim.reconfigure(load_config(SimConfig, unflatten(flat), prefix="parameter"))
        except ConfigError as exc:
            self._report(f"parameter change rejected: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        if self.cfg.rate_hz != old_rate and self._frame_timers:
            with self._work:
                self._jobs.clear()  # the groups are renumbered
                self._create_frame_timers()
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            published = [t for t in self._published if now - t < 5.0]
            stages = {k: float(np.mean(v)) for k, v in self._stage_ms.items() if v}
        rate = (len(published) - 1) / (published[-1] - published[0]) if len(published) > 1 else 0.0
        with self._errors_lock:
            recent = [m for t, m in self._errors if now - t < 10.0]
        status = DiagnosticStatus(name="worldfm_sim: camera", hardware_id=self.cfg.frames.optical)
        stalled = self._ros_time_stalled_s(now)
        if stalled is not None:
            status.level = DiagnosticStatus.ERROR
            status.message = (f"use_sim_time is true but ROS time has not moved for {stalled:.0f} s: nothing "
                              "publishes /clock, so timers on ROS time never fire and no frames are made")
        elif self.sim.world is None:
            status.level, status.message = DiagnosticStatus.ERROR, recent[-1] if recent else "no scene loaded"
        elif recent:
            status.level, status.message = DiagnosticStatus.WARN, recent[-1]
        elif skipped := sum(1 for t in self._skips if now - t < 5.0):
            frame_ms = frame_cost_ms(stages)
            status.level = DiagnosticStatus.WARN
            status.message = (f"skipped {skipped} frames in 5 s: a frame takes {frame_ms:.0f} ms, "
                              f"the period is {1e3 / self.cfg.rate_hz:.0f} ms ({rate:.1f} Hz achieved)")
        else:
            status.level, status.message = DiagnosticStatus.OK, f"{rate:.1f} Hz"
        values = {"backend": self.backend.name, "scene": self.scene_path, "input_mode": self.cfg.input_mode,
                  "rate_hz": f"{rate:.2f}", "target_rate_hz": f"{self.cfg.rate_hz:g}",
                  "frames_published": str(self.frames_published), "frames_skipped": str(self.frames_skipped),
                  "torch_threads": str(torch.get_num_threads()),
                  "executor": type(self.executor).__name__ if self.executor is not None else ""}
        values.update({f"{k}_ms": f"{v:.2f}" for k, v in stages.items()})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = conv.time_msg(self.now_ns())
        self.pub_diag.publish(msg)

    def _ros_time_stalled_s(self, now: float) -> float | None:
        """Seconds ROS time has stood still while use_sim_time is on (None when it moves or is off)."""
        ros_now = self.get_clock().now().nanoseconds
        if ros_now != self._ros_time_seen[0]:
            self._ros_time_seen = (ros_now, now)
            return None
        stalled = now - self._ros_time_seen[1]
        use_sim_time = self.get_parameter("use_sim_time").value
        # lockstep time stands still between steps on purpose
        return stalled if use_sim_time and not self.cfg.lockstep and stalled > NO_CLOCK_AFTER_S else None

    def destroy_node(self) -> None:
        with self._work:
            self._running = False
            self._work.notify_all()
        self._worker.join(timeout=5.0)
        try:
            self._outbox.put(None, timeout=5.0)  # after the frames still queued
        except queue.Full:
            pass
        self._publisher.join(timeout=5.0)
        self.sim.close()
        if self.viz is not None:
            self.viz.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run worldfm_ros sim_node``; returns 0 after SIGINT or SIGTERM.

    rclpy's own signal handler shuts the context down at once, while the frame worker may be
    publishing and the executor waiting on it. Here a signal only asks the spin loop to stop;
    the node then stops its worker before the context goes.
    """
    transport_note = use_camera_profile()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    if transport_note:
        rclpy.logging.get_logger("worldfm_sim").info(
            f"Fast DDS camera profile not applied ({transport_note}): best-effort subscribers in other "
            "processes may lose frames larger than 512 KiB")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node = SimNode()
    except WorldFMError as exc:
        rclpy.logging.get_logger("worldfm_sim").fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 2
    executor, kind = make_executor(node.cfg.executor)
    if kind != node.cfg.executor:
        node.get_logger().info(f"executor {node.cfg.executor!r} is not in this rclpy: spinning with {kind!r}")
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0
