"""The simulator node: a thin ROS 2 adapter over :mod:`worldfm_ros.sim`.

Inputs: ``cmd_vel`` (Twist, or TwistStamped) integrated by a kinematic model, or a
pose followed from /tf. Outputs (relative names, so a namespace applies), for each camera
``<name>`` of the sensor rig (one camera named ``camera`` by default):
``<name>/image_raw`` (rgb8), ``<name>/camera_info``, ``<name>/depth/image_raw``
(32FC1 metres, NaN = no data), ``<name>/points`` (optional), ``<name>/frame_stats``, and
optionally image_transport's ``<name>/image_raw/compressed`` and
``<name>/depth/image_raw/compressedDepth`` (:mod:`worldfm_ros.ros.compressed`);
``imu/data`` when the rig has an IMU; ``odom``, /tf, /tf_static, /diagnostics and /clock
(when it runs its own time). Every image carries the stamp of the pose it was rendered at;
the cameras of one rate render from one pose and share its stamp.

Faults never stop the node: every callback catches what it raises, reports it on
/diagnostics and keeps serving. Diagnostics run on the steady clock, so they also say why
no frames come when ROS time stands still (use_sim_time without /clock).

This module is the wiring: parameters, publishers, subscriptions, services and the robot's pose.
The real-time frames are :mod:`worldfm_ros.ros.frame_loop`, the RL services
:mod:`worldfm_ros.ros.lockstep` and /diagnostics :mod:`worldfm_ros.ros.diagnostics`.
"""

from __future__ import annotations

import array
import os
import signal
import threading
from typing import Callable

import rclpy
from geometry_msgs.msg import PoseWithCovarianceStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu

from worldfm_ros.config import flatten, load_config, unflatten
from worldfm_ros.errors import ConfigError, SceneError, WorldFMError
from worldfm_ros.lifetime import end_with_parent
from worldfm_ros.resources import default_scene_path
from worldfm_ros.ros import conversions as conv
from worldfm_ros.ros.dds import use_camera_profile
from worldfm_ros.ros.diagnostics import Diagnostics
from worldfm_ros.ros.executors import make_executor
from worldfm_ros.ros.frame_loop import FrameLoop, FramePose, FramePublisher
from worldfm_ros.ros.imu_stream import ImuStream, use_short_switch_interval
from worldfm_ros.ros.lockstep import LockstepServices
from worldfm_ros.ros.parameters import declared_type, type_change, unknown_overrides, widen, widened
from worldfm_ros.ros.tf_follow import TfFollower
from worldfm_ros.ros.tf_io import TfListener, TfPublisher
from worldfm_ros.runtime import apply_torch_threads
from worldfm_ros.scene.store import resolve_in_dirs, scene_folder
from worldfm_ros.sim.config import SimConfig
from worldfm_ros.sim.simulator import RobotState, Simulator
from worldfm_ros.srv import LoadScene, Reset, Step
from worldfm_ros.viz import open_log

# Parameters that may change while running are SimConfig's LIVE_FIELDS (Simulator.reconfigure).
# Reliable, and 2 s deep at 200 Hz: a reliable VIO consumer loses no sample to a stall (best-effort
# ones are served by ImuStream's pacing).
IMU_QOS = QoSProfile(depth=400)

# Service request/response queues: an RL client may send a burst of ~/step calls; rclpy's default
# depth of 10 silently drops the rest. Requests queue here and are answered in order.
SERVICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)


class SimNode(Node):
    """The worldfm_ros camera simulator (see module docstring for its interface)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("worldfm_sim", **kwargs)
        self.diagnostics = Diagnostics(self)
        cfg = self._declare_config()
        apply_torch_threads(cfg.torch_threads)  # before the backend and the frame thread start
        self._lock = threading.Lock()  # guards self.sim

        self.sim = Simulator.from_config(cfg, self._report)
        self.rig, self.backend, self.sensors = self.sim.rig, self.sim.backend, self.sim.sensors
        self.viz = open_log(cfg.rerun, self.rig.camera, self._report, application_id=self.get_name())
        try:
            self.load_scene(cfg.scene)
        except WorldFMError as exc:
            self._report(f"no scene loaded: {exc}")

        # Outputs.
        self.frames = FramePublisher(self, self.sim, self.now_ns, self.viz, check_rate=not cfg.lockstep)
        self.outputs = self.frames.outputs
        self.pub_imu = self.create_publisher(Imu, "imu/data", IMU_QOS) if self.sim.imu is not None else None
        # Real time: samples leave from a thread of their own (lockstep answers ~/step with them).
        self.imu_stream = ImuStream(self.pub_imu) if self.pub_imu is not None and not cfg.lockstep else None
        self.pub_odom = self.create_publisher(Odometry, "odom", 10)
        self.pub_clock = self.create_publisher(Clock, "/clock", 10) if (cfg.publish_clock or cfg.lockstep) else None
        self.tf = TfPublisher(self)
        self.tf_listener = (TfListener(self, on_reject=lambda why: self._report(f"/tf rejected: {why}",
                                                                                throttle_key="/tf rejected"))
                            if cfg.input_mode == "tf" else None)
        self.tf_follower = (TfFollower(self.tf_listener.lookup, self.rig.base_from_optical_in_map, self._report)
                            if self.tf_listener is not None else None)

        self._state: RobotState | None = None  # the last kinematic tick, whose odom was published
        self._publish_static_tf()

        # Inputs.
        guard = self._guarded
        if cfg.lockstep:
            lockstep = LockstepServices(self.sim, self._lock, self.frames, self.pub_clock, self.pub_odom, self.tf,
                                        self._publish_imu)
            self.create_service(Reset, "~/reset", self._served("reset", lockstep.reset), qos_profile=SERVICE_QOS)
            self.create_service(Step, "~/step", self._served("step", lockstep.step), qos_profile=SERVICE_QOS)
        elif cfg.input_mode == "cmd_vel":
            twist_type = TwistStamped if cfg.cmd_vel_stamped else Twist
            self.create_subscription(twist_type, "cmd_vel", guard("cmd_vel", self._on_cmd_vel), 10)
            self.create_subscription(PoseWithCovarianceStamped, "initialpose",
                                     guard("initialpose", self._on_initial_pose), 10)
            self.create_timer(1.0 / cfg.sim_rate_hz, guard("kinematics tick", self._on_sim_tick))
        self.create_service(LoadScene, "~/load_scene", self._served("load_scene", self._on_load_scene),
                            qos_profile=SERVICE_QOS)
        # Lockstep frames come from ~/step only.
        self.frame_loop = (None if cfg.lockstep else
                           FrameLoop(self, self.sim, self._lock, self.frames, self._next_pose, self._report, guard))
        # Steady clock: diagnostics keep coming when ROS time stands still.
        self.create_timer(1.0, guard("diagnostics", self._publish_diagnostics),
                          clock=RosClock(clock_type=ClockType.STEADY_TIME))
        self.add_on_set_parameters_callback(self._on_set_parameters)

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
                self._report(f"{what} failed: {type(exc).__name__}: {exc}", throttle_key=f"{what} failed")
        return run

    def _served(self, what: str, handler: Callable) -> Callable:
        """``handler`` for a service whose response has success/message, the one place its errors
        are caught: what it raises is answered as a failure and reported, as "<what> rejected:
        <reason>" for bad input (WorldFMError, ValueError) and "<what> failed: <type>: <reason>"
        for anything else (a failing backend, MemoryError)."""
        def run(request, response):
            try:
                return handler(request, response)
            except (WorldFMError, ValueError) as exc:
                response.success, response.message = False, f"{what} rejected: {exc}"
            except Exception as exc:
                response.success, response.message = False, f"{what} failed: {type(exc).__name__}: {exc}"
            self._report(response.message)
            return response
        return run

    @property
    def frames_published(self) -> int:
        """Frames of the primary camera published so far."""
        return self.frames.counters.published

    @property
    def frames_skipped(self) -> int:
        """Frames skipped because the renderer had not taken the previous pose yet."""
        return self.frames.counters.skipped

    def stop_frames(self) -> None:
        """Stop triggering frames (the ones already triggered are still published)."""
        if self.frame_loop is not None:
            self.frame_loop.stop_triggering()

    def _declare_config(self) -> SimConfig:
        """Declare SimConfig's fields as parameters, with their start-up values; warn once about
        start-up values that name no parameter; return the validated configuration."""
        defaults = flatten(SimConfig())
        self._types = {key: declared_type(value) for key, value in defaults.items()}
        # What -p, parameter files, the launch file and parameter_overrides set, as rclpy gathered it.
        overrides = self._parameter_overrides
        for key, default in defaults.items():
            value = widened(overrides[key].value, self._types[key]) if key in overrides else default
            # dynamic typing: a wrong type is load_config's one-line error, and later refused by
            # _on_set_parameters by name (see worldfm_ros.ros.parameters)
            self.declare_parameter(key, value, ParameterDescriptor(dynamic_typing=True), ignore_override=True)
        if unknown := unknown_overrides(overrides, self._parameters):
            self.get_logger().warning(unknown)
        self.add_pre_set_parameters_callback(
            lambda params: [widen(p, self._types[p.name]) if p.name in self._types else p for p in params])
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

    def _report(self, message: str, throttle_key: str | None = None) -> None:
        """Keep a problem for /diagnostics and log it (see Diagnostics.report)."""
        self.diagnostics.report(message, throttle_key)

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
            self._report(f"cmd_vel rejected: {exc}", throttle_key="cmd_vel rejected")

    def _on_initial_pose(self, msg: PoseWithCovarianceStamped) -> None:
        if msg.header.frame_id not in ("", self.cfg.frames.map):
            self._report(f"initialpose rejected: frame_id {msg.header.frame_id!r} is not {self.cfg.frames.map!r}")
            return
        try:
            map_T_base = conv.pose_to_matrix(msg.pose.pose)
            with self._lock:
                self.sim.set_map_pose(map_T_base)
        except ValueError as exc:  # NaN, a non-unit quaternion, or far outside the scene
            self._report(f"initialpose rejected: {exc}")

    def _on_sim_tick(self) -> None:
        """Integrate the kinematics, then publish /clock (own time), odom and odom→base_link."""
        with self._lock:
            state = self._state = self.sim.tick(None if self.cfg.owns_time else self.now_ns())
            imu = self.sim.take_imu_samples()
        now, f = state.stamp_ns, self.cfg.frames
        if self.cfg.publish_clock:
            self.pub_clock.publish(Clock(clock=conv.time_msg(now)))
        if state.collided:
            self._report("motion blocked: the robot would collide with the scene", throttle_key="motion blocked")
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
        if self.imu_stream is not None:
            self.imu_stream.put(msgs)
        else:
            for msg in msgs:
                self.pub_imu.publish(msg)
        return msgs

    # ----------------------------------------------------------------- poses for frames
    def _next_pose(self, last_stamp_ns: int | None) -> FramePose | None:
        """The pose a frame tick renders, when it is newer than ``last_stamp_ns``: the followed
        /tf pose (tf mode) or the last kinematic tick, with the body twist the motion effects need."""
        if self.cfg.input_mode == "tf":
            pose = self.tf_follower.pose(self.cfg, self.now_ns())
            if pose is None or pose[1] == last_stamp_ns:
                return None
            return pose[0], pose[1], self.tf_follower.twist(pose)
        with self._lock:
            state = self._state
        if state is not None and state.stamp_ns == last_stamp_ns and not self.cfg.owns_time:
            # A camera faster than the kinematics: integrate to now rather than repeat a pose.
            self._on_sim_tick()
            with self._lock:
                state = self._state
        if state is None or state.stamp_ns == last_stamp_ns:
            return None
        return state.map_T_base, state.stamp_ns, (state.linear, state.angular)

    # ----------------------------------------------------------------- services, parameters
    def scene_dirs(self) -> list[str]:
        """Directories ~/load_scene may read from (see SimConfig.scene_dirs)."""
        if self.cfg.scene_dirs:
            return self.cfg.scene_dirs.split(os.pathsep)
        dirs = [str(default_scene_path().parent)]
        return dirs + [str(scene_folder(self.cfg.scene))] if self.cfg.scene else dirs

    def _on_load_scene(self, request: LoadScene.Request, response: LoadScene.Response) -> LoadScene.Response:
        path = str(resolve_in_dirs(request.path, self.scene_dirs())) if request.path else ""
        try:
            self.load_scene(path)
        except MemoryError:
            raise SceneError(f"{request.path}: not enough memory to load the scene") from None
        world = self.sim.world
        response.success, response.message = True, f"loaded {request.path}"
        response.num_points, response.num_keyframes = world.primitives, len(world.keyframes)
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        flat = flatten(self.cfg)
        for p in params:
            if p.name not in flat:
                continue  # rclpy's own parameters (use_sim_time, ...)
            if reason := type_change(p, self._types[p.name]):
                self._report(f"parameter change rejected: {reason}")
                return SetParametersResult(successful=False, reason=reason)
            flat[p.name] = list(p.value) if isinstance(p.value, (list, tuple, array.array)) else p.value
        old_rate = self.cfg.rate_hz
        try:
            with self._lock:
                self.sim.reconfigure(load_config(SimConfig, unflatten(flat), prefix="parameter"))
        except ConfigError as exc:
            self._report(f"parameter change rejected: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        if self.cfg.rate_hz != old_rate and self.frame_loop is not None:
            self.frame_loop.rate_changed()
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        self.diagnostics.publish(self.sim, self.frames.counters, self.now_ns())

    def destroy_node(self) -> None:
        if self.frame_loop is not None:
            self.frame_loop.close()
        if self.imu_stream is not None:
            self.imu_stream.close()
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
    end_with_parent()  # a launcher killed outright still stops the node cleanly (SIGTERM)
    use_short_switch_interval()  # the IMU and executor threads get the GIL while frames render
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
