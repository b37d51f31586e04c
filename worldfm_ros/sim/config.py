"""Configuration of the simulator (the node's parameters), one dataclass per concern."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from worldfm_ros.backends.config import BackendConfig
from worldfm_ros.errors import ConfigError
from worldfm_ros.render.antialias import DEFAULT_ANTIALIAS, MAX_ANTIALIAS
from worldfm_ros.runtime import DEFAULT_TORCH_THREADS, check_threads
from worldfm_ros.sim.collision import CollisionConfig
from worldfm_ros.sim.scan import ScanConfig
from worldfm_ros.sim.kinematics import KinematicsConfig
from worldfm_ros.sensors.mount import MountConfig
from worldfm_ros.sensors.rig import CameraConfig
from worldfm_ros.sensors.sensor_rig import RigCameraConfig
from worldfm_ros.viz import parse_targets

INPUT_MODES = ("cmd_vel", "tf")
#: SimConfig.splat: the scene's choice, or one of the scene splats (worldfm_ros.scene.anchor.SPLATS)
SPLAT_MODES = ("auto", "square", "footprint")
#: what may spin the node (SimConfig.executor; worldfm_ros.ros.executors makes them)
EXECUTORS = ("events", "single")
# Upper bounds on the rates: each tick costs a Python callback, so beyond these a core is pinned
# doing nothing useful (a camera above 1 kHz or kinematics above 10 kHz buys no fidelity).
MAX_RATE_HZ = 1000.0
MAX_SIM_RATE_HZ = 10000.0
# One ~/step integrates dt * sim_rate_hz kinematic sub-steps in the service callback; more than
# this would hold every other callback of the node for seconds.
MAX_STEP_SUBSTEPS = 10_000
#: SimConfig.compressed.image: the colour codecs of compressed_image_transport ('' = off)
COMPRESSED_IMAGE_FORMATS = ("", "jpeg", "png")
#: fields (flattened, as node parameters) that may change while running; the others need a restart
LIVE_FIELDS = frozenset({"rate_hz", "point_radius", "antialias", "publish_points", "publish_scan",
                         "publish_observed", "tf_max_age_s",
                         "tf_future_tolerance_s"})


@dataclass
class FramesConfig:
    """REP-105 frame ids. ``optical`` is the frame_id of every image and CameraInfo."""

    map: str = "map"
    odom: str = "odom"
    base: str = "base_link"
    camera: str = "camera_link"
    optical: str = "camera_optical_frame"

    def __post_init__(self) -> None:
        ids = [self.map, self.odom, self.base, self.camera, self.optical]
        if any(not i for i in ids) or len(set(ids)) != len(ids):
            raise ConfigError(f"frames: frame ids must be non-empty and distinct, got {ids}")


@dataclass
class CompressedConfig:
    """Compressed topics beside the raw ones, as image_transport names and writes them
    (:mod:`worldfm_ros.ros.compressed`); read at start-up.

    image: '' (off), 'jpeg' or 'png': publish ``<camera>/image_raw/compressed``.
    jpeg_quality: 1..100 (image_transport's default 95). png_level: 0..9 zlib level (default 3).
    depth: publish ``<camera>/depth/image_raw/compressedDepth`` (cameras that publish depth).
    depth_max: metres; farther depth is sent as no data. depth_quantization: z0 of the inverse
    depth code, metres (default 100, as compressed_depth_image_transport). depth_png_level: 0..9;
    3, not compressed_depth_image_transport's 9, which took 300 ms for a 640x480 depth here (20 ms
    at 3) for 4 % fewer bytes, and would have held the camera to 3 Hz."""

    image: str = ""
    jpeg_quality: int = 95
    png_level: int = 3
    depth: bool = False
    depth_max: float = 10.0
    depth_quantization: float = 100.0
    depth_png_level: int = 3

    def __post_init__(self) -> None:
        if self.image not in COMPRESSED_IMAGE_FORMATS:
            raise ConfigError(f"compressed.image: expected one of {COMPRESSED_IMAGE_FORMATS}, got {self.image!r}")
        if not (isinstance(self.jpeg_quality, int) and 1 <= self.jpeg_quality <= 100):
            raise ConfigError(f"compressed.jpeg_quality: expected an integer 1..100, got {self.jpeg_quality!r}")
        for name in ("png_level", "depth_png_level"):
            level = getattr(self, name)
            if not (isinstance(level, int) and 0 <= level <= 9):
                raise ConfigError(f"compressed.{name}: expected an integer 0..9, got {level!r}")
        for name in ("depth_max", "depth_quantization"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"compressed.{name}: expected a positive number of metres, got {value!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.image) or self.depth


@dataclass
class SimConfig:
    """Everything the simulator node is configured with.

    scene: scene anchor path ('' = the bundled default scene).
    scene_dirs: directories ~/load_scene may load from, separated by ':' (os.pathsep); links and
        '..' are resolved before the check. '' = the bundled scenes directory and the folder
        holding ``scene``. Fixed at start-up: a peer on the network cannot widen it.
    input_mode: 'cmd_vel' (integrate velocity commands, publish odom + odom→base_link) or
        'tf' (follow map→optical, or map→base + mount, published by someone else).
    rate_hz: camera frame rate, Hz (at most MAX_RATE_HZ); sim_rate_hz: kinematics integration
        rate, Hz (at most MAX_SIM_RATE_HZ).
    initial_pose: [x, y, z, yaw] of base_link in map, metres/radians.
    cmd_vel_stamped: subscribe geometry_msgs/TwistStamped instead of Twist.
    tf_source: 'optical' (look up map→optical) or 'base' (map→base, then the mount).
    tf_max_age_s: a followed pose older than this is stale (frames pause, diagnostics warn).
    tf_future_tolerance_s: a followed pose stamped more than this ahead of the node's clock is
        rejected (its images would carry a future stamp); diagnostics say so.
    publish_clock: run our own simulated time and publish it on /clock.
    lockstep: RL mode: time advances only through the ~/step service (and /clock shows it);
        ~/reset starts an episode. Requires input_mode 'cmd_vel'.
    publish_map_to_odom: publish an identity map→odom (no localisation node in the loop).
    publish_points: also publish the rendered depth as a coloured PointCloud2.
    publish_observed: also publish ``<camera>/observed``, mono8: 255 where the pixel shows a captured
        surface, 0 where it shows one synthesised by ``scene-complete`` (or none).
    publish_scan: also publish a sensor_msgs/LaserScan (frame base_link) made from the depth,
        for Nav2 costmaps; ``scan`` sets its beams and height band.
    compressed: ``<camera>/image_raw/compressed`` and ``<camera>/depth/image_raw/compressedDepth``
        beside the raw topics (CompressedConfig).
    point_radius: splat radius of the anchor render in pixels (0 = one pixel per point).
    splat: how the camera view is splatted: 'auto' (as the scene asks, ``render.splat`` of its
        scene.yaml; squares of ``point_radius`` when it asks nothing), 'square' (``point_radius``
        squares) or 'footprint' (each point by its footprint, ``render.point_spacing`` or the
        cloud's measured spacing; :meth:`PointCloudRenderer.render`).
    antialias: width of the camera view's Gaussian reconstruction filter, in point footprints at
        the view's median depth (``worldfm_ros.render.antialias``); 0 = point-sampled, as before.
    collision: robot footprint for blocking motion into the anchor's geometry.
    rerun: log the frames, poses and scene to Rerun ('' = off): comma-separated targets, each
        'spawn' (a viewer here), a rerun+http://HOST:PORT/proxy URL or a path ending in '.rrd'
        (see worldfm_ros.viz).
    rig: the sensor rig: a rig file (``worldfm_ros.sensors.sensor_rig``) or a preset ('stereo',
        'stereo_imu' in config/rigs); '' = one ideal camera from ``camera``, ``mount`` and ``frames``.
    torch_threads: torch CPU threads of the process (0 = one per core, torch's default; more
        threads are slower on a busy machine); applied by :func:`worldfm_ros.runtime.apply_torch_threads`.
    executor: what spins the node: 'events' (rclpy's C++ events executor, the default; the Python
        one where rclpy lacks it) or 'single' (rclpy's Python SingleThreadedExecutor); see
        :mod:`worldfm_ros.ros.executors`. Read at start-up.
    """

    scene: str = ""
    scene_dirs: str = ""
    input_mode: str = "cmd_vel"
    rate_hz: float = 10.0
    sim_rate_hz: float = 100.0
    initial_pose: list[float] = field(default_factory=lambda: [3.5, 2.5, 0.0, 0.0])
    cmd_vel_stamped: bool = False
    tf_source: str = "optical"
    tf_max_age_s: float = 1.0
    tf_future_tolerance_s: float = 0.5
    publish_clock: bool = False
    lockstep: bool = False
    publish_map_to_odom: bool = True
    publish_points: bool = False
    publish_observed: bool = False
    publish_scan: bool = False
    point_radius: int = 1
    splat: str = "auto"
    antialias: float = DEFAULT_ANTIALIAS
    rerun: str = ""
    rig: str = ""
    torch_threads: int = DEFAULT_TORCH_THREADS
    executor: str = "events"
    camera: CameraConfig = field(default_factory=CameraConfig)
    mount: MountConfig = field(default_factory=MountConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    kinematics: KinematicsConfig = field(default_factory=KinematicsConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    collision: CollisionConfig = field(default_factory=CollisionConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    compressed: CompressedConfig = field(default_factory=CompressedConfig)

    def rig_camera(self) -> RigCameraConfig:
        """The single camera (``rig: ''``) as a rig camera: ``camera`` on ``mount``, at the node's
        ``rate_hz``, effects off (its frame ids are ``frames.camera`` and ``frames.optical``)."""
        return RigCameraConfig(mount=self.mount, camera=self.camera)

    @property
    def owns_time(self) -> bool:
        """Whether the simulator's clock is "now" (lockstep or publish_clock), not an outside one."""
        return self.lockstep or self.publish_clock

    def __post_init__(self) -> None:
        if self.input_mode not in INPUT_MODES:
            raise ConfigError(f"input_mode: expected one of {INPUT_MODES}, got {self.input_mode!r}")
        if self.lockstep and self.input_mode != "cmd_vel":
            raise ConfigError("lockstep: requires input_mode 'cmd_vel' (the simulator owns the pose)")
        if self.publish_clock and self.input_mode != "cmd_vel":
            raise ConfigError("publish_clock: our own simulated time needs input_mode 'cmd_vel' "
                              "(in tf mode the pose source owns time; use use_sim_time with its /clock)")
        if self.rig and self.input_mode == "tf" and self.tf_source == "optical":
            raise ConfigError("rig: in input_mode 'tf' a rig follows map -> base_link (tf_source 'base'): its "
                              "cameras and IMU hang off base_link")
        if self.tf_source not in ("optical", "base"):
            raise ConfigError(f"tf_source: expected 'optical' or 'base', got {self.tf_source!r}")
        for name in ("rate_hz", "sim_rate_hz", "tf_max_age_s", "tf_future_tolerance_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name}: expected a positive number, got {v}")
        for name, limit in (("rate_hz", MAX_RATE_HZ), ("sim_rate_hz", MAX_SIM_RATE_HZ)):
            if getattr(self, name) > limit:
                raise ConfigError(f"{name}: expected at most {limit:g} Hz, got {getattr(self, name):g}")
        if len(self.initial_pose) != 4 or not all(math.isfinite(v) for v in self.initial_pose):
            raise ConfigError(f"initial_pose: expected [x, y, z, yaw] finite numbers, got {self.initial_pose}")
        if not 0 <= self.point_radius <= 8:
            raise ConfigError(f"point_radius: expected 0..8 pixels, got {self.point_radius}")
        parse_targets(self.rerun)
        check_threads(self.torch_threads)
        if self.splat not in SPLAT_MODES:
            raise ConfigError(f"splat: expected one of {SPLAT_MODES}, got {self.splat!r}")
        if not (math.isfinite(self.antialias) and 0 <= self.antialias <= MAX_ANTIALIAS):
            raise ConfigError(f"antialias: expected 0..{MAX_ANTIALIAS:g} point footprints, got {self.antialias}")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor: expected one of {EXECUTORS}, got {self.executor!r}")
