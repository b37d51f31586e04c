"""The node's frame loop: camera timers, a render thread and a publish thread, and the messages of a frame.

Frames are triggered at each camera group's rate (``SensorRig.groups``) from the latest robot pose,
each stamped with that pose's time. One thread renders frame n + 1 while another converts and
publishes frame n, in order. When frames come due faster than they are rendered, at most one pose
waits per group and a newer one replaces it: frames are skipped (and counted), never queued stale.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, LaserScan, PointCloud2

from worldfm_ros.frame.pipeline import FRAME_STAGES, Frame
from worldfm_ros.msg import FrameStats
from worldfm_ros.ros import conversions as conv
from worldfm_ros.ros.compressed import CompressedOutputs
from worldfm_ros.build.backproject import backproject_pixels
from worldfm_ros.sim.config import CompressedConfig
from worldfm_ros.sim.scan import depth_to_scan
from worldfm_ros.sensors.sensor_rig import RigCamera
from worldfm_ros.sim.simulator import Simulator
from worldfm_ros.viz import RerunLog

# Camera streams: reliable, depth 10, as camera drivers publish (image_transport's default), so a
# recorder loses no frame; best-effort (sensor-data) subscribers still match.
CAMERA_QOS = QoSProfile(depth=10)
# Frames published before the node compares a frame's cost with the camera period (the first
# frames carry warm-up cost).
RATE_CHECK_FRAMES = 6

#: a pose to render: (map_T_base (4, 4) metres, stamp ns, body twist (linear m/s, angular rad/s) or None)
FramePose = tuple[np.ndarray, int, tuple[np.ndarray, np.ndarray] | None]


def frame_cost_ms(stage_ms: dict[str, float]) -> float:
    """What one frame costs the node, ms: the frame's stages (render, antialias, select, backend)
    run in one thread and publish in another, so the slower of the two sets the pace."""
    return max(sum(stage_ms.get(k, 0.0) for k in FRAME_STAGES), stage_ms.get("publish", 0.0))


class FrameCounters:
    """Published and skipped frames of the primary camera, and its recent per-stage costs (ms)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.published = 0
        self.skipped = 0
        self._published_at: deque[float] = deque(maxlen=50)  # time.monotonic() s
        self._skipped_at: deque[float] = deque(maxlen=1000)
        self._stage_ms: dict[str, deque[float]] = {}

    def count_skip(self) -> None:
        with self._lock:
            self.skipped += 1
            self._skipped_at.append(time.monotonic())

    def count_published(self, timings_ms: dict[str, float]) -> int:
        """Count one published frame with its stage timings; the number published so far."""
        with self._lock:
            self.published += 1
            self._published_at.append(time.monotonic())
            for name, ms in timings_ms.items():
                self._stage_ms.setdefault(name, deque(maxlen=50)).append(ms)
            return self.published

    def rate_hz(self, now: float, window_s: float = 5.0) -> float:
        """Frames per second over the last ``window_s`` (monotonic clock ``now``), 0 with fewer than two."""
        with self._lock:
            t = [s for s in self._published_at if now - s < window_s]
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0

    def skipped_within(self, now: float, window_s: float = 5.0) -> int:
        with self._lock:
            return sum(1 for t in self._skipped_at if now - t < window_s)

    def stage_ms(self, reduce: Callable = np.mean) -> dict[str, float]:
        """Each stage's recent cost, ms (mean, or ``reduce``)."""
        with self._lock:
            return {k: float(reduce(v)) for k, v in self._stage_ms.items() if v}


class CameraOutputs:
    """The publishers of one rig camera (relative names under ``<name>/``) and its CameraInfo,
    built once and restamped per frame (the camera does not change while the node runs)."""

    def __init__(self, node: Node, camera: RigCamera, compressed: CompressedConfig) -> None:
        ns = camera.name
        self.camera = camera
        self.image = node.create_publisher(Image, f"{ns}/image_raw", CAMERA_QOS)
        self.info = node.create_publisher(CameraInfo, f"{ns}/camera_info", CAMERA_QOS)
        self.depth = node.create_publisher(Image, f"{ns}/depth/image_raw", CAMERA_QOS) if camera.config.publish_depth else None
        # Depth is registered to the colour camera; image_transport consumers look for the info here.
        self.depth_info = (node.create_publisher(CameraInfo, f"{ns}/depth/camera_info", CAMERA_QOS)
                           if camera.config.publish_depth else None)
        self.points = node.create_publisher(PointCloud2, f"{ns}/points", qos_profile_sensor_data)
        self.observed = node.create_publisher(Image, f"{ns}/observed", CAMERA_QOS)
        self.stats = node.create_publisher(FrameStats, f"{ns}/frame_stats", 10)
        self.compressed = (CompressedOutputs(node, ns, compressed, camera.config.publish_depth, CAMERA_QOS)
                           if compressed.enabled else None)
        self.camera_info = self.info_msg(0)

    def info_msg(self, stamp_ns: int) -> CameraInfo:
        cam = self.camera
        return conv.camera_info_msg(cam.camera, stamp_ns, cam.optical_frame, cam.lens.distortion_model, cam.lens.D,
                                    cam.projection_tx())


class FramePublisher:
    """Publishes rendered frames: per camera image, camera_info, depth, points, frame_stats, and
    the scan from the primary camera; counts the primary camera's frames in ``counters``.

    With ``check_rate``, says once (after RATE_CHECK_FRAMES frames) when a frame costs more than
    the camera period."""

    def __init__(self, node: Node, sim: Simulator, now_ns: Callable[[], int], viz: RerunLog | None,
                 check_rate: bool) -> None:
        self.sim, self.now_ns, self.viz, self._check_rate_once = sim, now_ns, viz, check_rate
        self.logger = node.get_logger()
        self.outputs = [CameraOutputs(node, cam, sim.config.compressed) for cam in sim.sensors.cameras]
        self.pub_scan = node.create_publisher(LaserScan, "scan", qos_profile_sensor_data)
        self.counters = FrameCounters()

    def publish(self, frame: Frame, t_trigger: float, camera: int = 0) -> tuple[Image, Image]:
        """Publish camera ``camera``'s frame (``t_trigger``: time.perf_counter() when it was
        triggered); return its (image, depth) messages."""
        cfg, out = self.sim.config, self.outputs[camera]
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
        if out.compressed is not None:
            out.compressed.publish(image.header, frame.rgb, frame.depth)
        if cfg.publish_points:
            out.points.publish(self._points_msg(frame, out.camera))
        if cfg.publish_observed:
            observed = frame.valid if frame.observed is None else frame.observed
            out.observed.publish(conv.mask_image_msg(observed, stamp, optical))
        if cfg.publish_scan and camera == 0:
            self.pub_scan.publish(self._scan_msg(frame))
        frame.timings_ms["publish"] = (time.perf_counter() - t_publish) * 1e3
        frame.timings_ms["trigger_to_publish"] = (time.perf_counter() - t_trigger) * 1e3
        latency_ms = (self.now_ns() - stamp) * 1e-6  # pose stamp -> publish, as FrameStats defines it
        stats = FrameStats(header=conv.header(stamp, optical), frame_index=self.counters.published,
                           backend=self.sim.backend.name, reference_keyframe=frame.reference_index,
                           reference_score=float(frame.reference_score), render_coverage=frame.coverage,
                           latency_ms=latency_ms, skipped_frames=self.counters.skipped,
                           stage_names=list(frame.timings_ms), stage_ms=[float(v) for v in frame.timings_ms.values()])
        out.stats.publish(stats)
        if camera != 0:
            return image, depth
        # Rates, stage costs and the viewer follow the primary camera.
        if self.counters.count_published(frame.timings_ms) == RATE_CHECK_FRAMES and self._check_rate_once:
            self._check_rate()
        if self.viz is not None:
            self.viz.log_frame(frame)
        return image, depth

    def _check_rate(self) -> None:
        """Say once, from the first frames' costs, when a frame takes longer than the camera period."""
        rate_hz = self.sim.config.rate_hz
        medians = self.counters.stage_ms(np.median)
        cost = {k: medians[k] for k in (*FRAME_STAGES, "publish") if k in medians}
        period_ms = 1e3 / rate_hz
        frame_ms = frame_cost_ms(cost)
        if frame_ms > period_ms:
            stages = ", ".join(f"{k} {v:.0f} ms" for k, v in cost.items())
            self.logger.warning(
                f"rate_hz {rate_hz:g} cannot be held: a frame costs {frame_ms:.0f} ms ({stages}) against a "
                f"period of {period_ms:.0f} ms, so about {1e3 / frame_ms:.1f} Hz will be published and the rest "
                "skipped (lower rate_hz or the camera size, or see torch_threads)")

    def _scan_msg(self, frame: Frame) -> LaserScan:
        cfg = self.sim.config
        sc = cfg.scan
        ranges = depth_to_scan(frame.depth, self.sim.rig.camera, self.sim.rig.base_T_optical, sc)
        return LaserScan(header=conv.header(frame.stamp_ns, cfg.frames.base), angle_min=sc.angle_min,
                         angle_max=sc.angle_min + (len(ranges) - 1) * sc.angle_increment,
                         angle_increment=sc.angle_increment, time_increment=0.0, scan_time=1.0 / cfg.rate_hz,
                         range_min=sc.range_min, range_max=sc.range_max, ranges=ranges.astype(float).tolist())

    def _points_msg(self, frame: Frame, camera: RigCamera) -> PointCloud2:
        v, u = np.nonzero(frame.valid & (frame.depth > 0))
        points = backproject_pixels(u, v, frame.depth[v, u], camera.camera.K)
        return conv.point_cloud_msg(points, frame.rgb[v, u], frame.stamp_ns, camera.optical_frame)


class FrameLoop:
    """Real-time frames: one timer per camera group, a render thread and a publish thread.

    ``next_pose(last_stamp_ns)`` gives the pose to render when it is newer than ``last_stamp_ns``
    (the last one this group rendered; None the first time), else None. ``lock`` guards ``sim``.
    ``report`` gets one line per failed frame and per blank frame; ``guard`` wraps timer callbacks
    so that nothing they raise stops the node."""

    def __init__(self, node: Node, sim: Simulator, lock: threading.Lock, publisher: FramePublisher,
                 next_pose: Callable[[int | None], FramePose | None],
                 report: Callable[..., None], guard: Callable[[str, Callable], Callable]) -> None:
        self.node, self.sim, self.lock, self.publisher = node, sim, lock, publisher
        self.next_pose, self.report, self.guard = next_pose, report, guard
        self._timers: list = []
        self._groups: list[tuple[float, list[int]]] = []
        self._work = threading.Condition()
        # The next pose to render per camera group (at most one each), in arrival order:
        # group -> (map_T_base, stamp_ns, t_trigger, twist).
        self._jobs: dict[int, tuple[np.ndarray, int, float, tuple[np.ndarray, np.ndarray] | None]] = {}
        self._last_rendered_stamp: dict[int, int] = {}
        self._running = True
        # Two stages, one thread each: frame n is converted and published while frame n + 1
        # renders. One queue between them keeps the order; holding at most two frames, it holds
        # the renderer back (and frames are then skipped) when publishing falls behind.
        self._outbox: queue.Queue[tuple[list[Frame], list[int], np.ndarray, float] | None] = queue.Queue(maxsize=2)
        self._worker = threading.Thread(target=self._work_loop, name="worldfm_frames", daemon=True)
        self._publisher = threading.Thread(target=self._publish_loop, name="worldfm_publish", daemon=True)
        self._create_timers()
        self._worker.start()
        self._publisher.start()

    def _create_timers(self) -> None:
        """One frame timer per camera rate (cameras with rate_hz 0 follow the node's rate_hz)."""
        for timer in self._timers:
            timer.cancel()
            self.node.destroy_timer(timer)
        self._groups = list(self.sim.sensors.groups(self.sim.config.rate_hz).items())
        self._timers = [self.node.create_timer(1.0 / rate, self.guard("frame tick", lambda g=g: self.tick(g)))
                        for g, (rate, _) in enumerate(self._groups)]

    def rate_changed(self) -> None:
        """Re-create the timers for a new node rate_hz (the groups are renumbered)."""
        with self._work:
            self._jobs.clear()
            self._create_timers()

    def stop_triggering(self) -> None:
        """Stop triggering frames (the ones already triggered are still published)."""
        for timer in self._timers:
            timer.cancel()

    def tick(self, group: int = 0) -> None:
        """Hand camera group ``group`` the latest pose, replacing one the renderer has not taken yet."""
        if self.sim.world is None:
            return
        pose = self.next_pose(self._last_rendered_stamp.get(group))
        if pose is None:
            return
        map_T_base, stamp, twist = pose
        with self._work:
            if self._jobs.pop(group, None) is not None:
                # The renderer has not taken the last pose yet: the newest pose replaces it, so a
                # slow frame costs one frame, never a queue of stale ones.
                self.publisher.counters.count_skip()
            self._jobs[group] = (map_T_base, stamp, time.perf_counter(), twist)
            self._last_rendered_stamp[group] = stamp
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
                self.report(f"frame failed: {type(exc).__name__}: {exc}", throttle_key="frame failed")

    def _publish_loop(self) -> None:
        while (item := self._outbox.get()) is not None:
            frames, indices, map_T_base, t_trigger = item
            try:
                for frame, i in zip(frames, indices):
                    self.publisher.publish(frame, t_trigger, i)
                self._check_blank(frames[0], map_T_base)
            except Exception as exc:
                self.report(f"frame failed: {type(exc).__name__}: {exc}", throttle_key="frame failed")

    def _check_blank(self, frame: Frame, map_T_base: np.ndarray) -> None:
        """Report a frame that shows no scene point, saying how far the pose is from the scene."""
        if frame.coverage > 0.0:
            return
        outside = self.sim.distance_outside_scene(map_T_base)
        where = (f"base_link is {outside:.3g} m outside the scene's extent" if outside > 0
                 else "base_link is inside the scene's extent, looking at no point")
        self.report(f"blank frame: the camera sees no scene point ({where})", throttle_key="blank frame")

    def close(self) -> None:
        """Stop the render thread, publish what is queued, stop the publish thread (≤ 5 s each)."""
        with self._work:
            self._running = False
            self._work.notify_all()
        self._worker.join(timeout=5.0)
        try:
            self._outbox.put(None, timeout=5.0)  # after the frames still queued
        except queue.Full:
            pass
        self._publisher.join(timeout=5.0)
