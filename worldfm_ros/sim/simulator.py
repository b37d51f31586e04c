"""The simulator core shared by the ROS node, lockstep services and the gymnasium envs.

State: a kinematic robot (odom→base_link), the fixed map→odom transform, the world
(``world.base.World``) with its frame pipeline and collision checker, and the simulated clock ``time_ns``.
Real-time users call ``set_command`` and ``tick(now_ns)`` with their clock's time (or
``tick()`` to run the simulator's own clock one kinematic period on); lockstep users call
``reset``/``step``, which advance the simulated clock themselves. Either way ``time_ns``
is "now" for every output. ``reconfigure`` applies a new configuration while running.
Nothing here knows about ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from worldfm_ros.backends.base import FrameBackend
from worldfm_ros.backends.fill_backend import FillBackend
from worldfm_ros.camera import check_pose, invert_pose
from worldfm_ros.config import flatten
from worldfm_ros.errors import ConfigError, WorldFMError
from worldfm_ros.resources import default_scene_path
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.sim.collision import CollisionChecker
from worldfm_ros.backends.config import BackendConfig
from worldfm_ros.sim.config import LIVE_FIELDS, MAX_STEP_SUBSTEPS, SimConfig
from worldfm_ros.sim.kinematics import KinematicModel, Twist
from worldfm_ros.frame.pipeline import Frame, FramePipeline, View
from worldfm_ros.world.base import World, points_in_map
from worldfm_ros.world.store import open_world
from worldfm_ros.sensors.imu import ImuModel, ImuSample
from worldfm_ros.sensors.sensor_rig import SensorRig, build_rig, load_rig, single_camera_rig


#: metres base_link may be from the world's extent (from the map origin without a world): far
#: past any view of the world, and far short of where the renderer's float32 projection overflows
MAX_POSE_DISTANCE_M = 1000.0
#: collision-free start candidates ``Simulator.random_free_pose`` renders at most, and per world render call
START_COVERAGE_TRIES = 64
START_COVERAGE_BATCH = 4


def planar_pose(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    """(4, 4) pose at (x, y, z) metres with heading ``yaw`` radians about +z."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw).as_matrix()
    T[:3, 3] = (x, y, z)
    return T


def open_backend(cfg: BackendConfig) -> tuple[FrameBackend, str]:
    """The configured frame backend, or the fill backend ('anchor') plus the reason it had to
    fall back ('' when it did not)."""
    from worldfm_ros.backends.registry import create_backend

    try:
        return create_backend(cfg.name, config=cfg), ""
    except (ImportError, WorldFMError) as exc:
        return FillBackend.from_config(cfg), f"backend {cfg.name!r} unavailable ({exc}); using 'anchor'"


def render_device(requested: str) -> tuple[str, str]:
    """The renderer's torch device for ``backend.device`` ('auto', 'cpu', 'cuda[:N]'), or the CPU
    plus the reason when CUDA is asked for and torch sees none ('' otherwise)."""
    import torch

    from worldfm_ros.devices import resolve_device

    device = resolve_device(requested)
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "cpu", f"backend.device {device!r}: torch sees no CUDA device; rendering on the CPU"
    return device, ""


@dataclass
class RobotState:
    """The robot at one instant.

    stamp_ns: the simulator's time of the state. odom_T_base / map_T_base: (4, 4) base_link
    pose, metres. linear / angular: (3,) body twist (base_link axes), m/s and rad/s.
    collided: the last motion was blocked by the world's geometry.
    """

    stamp_ns: int
    odom_T_base: np.ndarray
    map_T_base: np.ndarray
    linear: np.ndarray
    angular: np.ndarray
    collided: bool


@dataclass
class Observation:
    """What the robot senses after a reset or step.

    frame: the primary camera's frame (None when no scene is loaded); frames: every camera's, by
    name, rendered from the same pose. imu: the IMU samples since the previous observation.
    map_T_base / odom_T_base: (4, 4) robot pose, metres. linear/angular: body velocity (3,) each.
    stamp_ns: simulated time. collision: the last motion was blocked by the world's geometry.
    min_obstacle_distance: metres from base_link to the nearest obstacle point (inf if none).
    done: episode over (collision, or the robot left the scene's extent).
    """

    frame: Frame | None
    map_T_base: np.ndarray
    odom_T_base: np.ndarray
    linear: np.ndarray
    angular: np.ndarray
    stamp_ns: int
    collision: bool
    min_obstacle_distance: float
    done: bool
    frames: dict[str, Frame] = field(default_factory=dict)
    imu: list[ImuSample] = field(default_factory=list)


def sensor_rig(config: SimConfig) -> SensorRig:
    """The configured rig: ``config.rig``'s file or preset, or the single camera of ``camera``,
    ``mount`` and ``frames``."""
    if config.rig:
        return build_rig(load_rig(config.rig), config.rate_hz, where=config.rig)
    return single_camera_rig(config.rig_camera(), config.frames.camera, config.frames.optical, config.rate_hz)


def camera_views(sensors: SensorRig, map_T_base: np.ndarray, stamp_ns: int, indices: list[int], seed: int | None,
                 backend_seed: int, twist: tuple[np.ndarray, np.ndarray]) -> list[View]:
    """The frame pipeline's views of rig cameras ``indices`` from base pose ``map_T_base`` ((4, 4),
    map frame) at ``stamp_ns``: the backend noise ``seed`` (None: the backend's own, and
    ``backend_seed`` seeds the sensor effects), twist (linear (3,) m/s, angular (3,) rad/s) for the
    motion effects; a right eye rendered with its left eye takes the left eye's keyframe."""
    noise_seed = backend_seed if seed is None else seed
    views, position = [], {}
    for i in indices:
        cam = sensors.cameras[i]
        rng = np.random.default_rng([noise_seed % 2**63, stamp_ns, i]) if cam.effects.enabled else None
        position[i] = len(views)
        views.append(View(map_T_base, stamp_ns, cam, seed, twist=twist, rng=rng,
                          reference_of=position.get(cam.stereo_left) if cam.stereo_left is not None else None))
    return views


class Simulator:
    """One robot with a sensor rig (cameras, IMU) in one world. ``backend`` defaults to the fill
    backend ('anchor') and may be shared with other simulators (a backend keeps no per-call state);
    ``device`` is the torch device worlds loaded from files render on."""

    def __init__(self, config: SimConfig, backend: FrameBackend | None = None, device: str = "cpu") -> None:
        self.config = config
        self.device = device
        self.sensors = sensor_rig(config)
        self.rig = self.sensors.cameras[0].mounted
        self.imu = ImuModel(self.sensors.imu) if self.sensors.imu.enabled else None
        self._imu_samples: list[ImuSample] = []
        self.backend = backend or FillBackend.from_config(config.backend)
        self.model = KinematicModel(config.kinematics)
        self.map_T_odom = planar_pose(*config.initial_pose)
        self.time_ns = 0
        self._last_tick_ns: int | None = None
        self.pipeline: FramePipeline | None = None
        self.collision: CollisionChecker | None = None
        self.collided = False
        self.scene_path = ""
        self._episode_seed: int | None = None
        self._steps = 0
        self._extent: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_config(cls, config: SimConfig, report: Callable[[str], None]) -> "Simulator":
        """A simulator with the configured backend and renderer device, falling back to the fill
        backend and the CPU where those cannot start here; ``report`` hears each fallback."""
        backend, why = open_backend(config.backend)
        if why:
            report(why)
        device, why = render_device(config.backend.device)
        if why:
            report(why)
        return cls(config, backend, device=device)

    def reconfigure(self, config: SimConfig) -> None:
        """Apply a new configuration while running. Only ``LIVE_FIELDS`` may differ from the
        current one; ConfigError names the first other field that does, and nothing changes."""
        old, new = flatten(self.config), flatten(config)
        for key, value in new.items():
            if key not in LIVE_FIELDS and value != old.get(key):
                raise ConfigError(f"{key} cannot change while running (restart the node)")
        if self.pipeline is not None:
            self.pipeline.point_radius = config.point_radius
            self.pipeline.antialias = config.antialias
        self.config = config

    def close(self) -> None:
        """Release the backend (models, sessions, GPU memory)."""
        self.backend.close()

    # ------------------------------------------------------------------ world
    def load_scene(self, source: str | Path | SceneAnchor | World | None = None) -> World:
        """Load a world (a scene path of any kind, a SceneAnchor, a World, or None/'' for the bundled
        default) and rebuild the frame pipeline; raises WorldFMError and keeps the previous world on failure."""
        world = open_world(source, device=self.device)
        if isinstance(source, (str, Path)) and str(source):
            path = str(source)
        else:  # an object in memory is known by its name; nothing at all is the bundled room
            path = world.name if source is not None and not isinstance(source, str) else str(default_scene_path())
        pipeline = FramePipeline(world, self.rig, self.backend, profile=self.config.backend.profile,
                                 point_radius=self.config.point_radius, splat=self.config.splat,
                                 antialias=self.config.antialias)
        points_map = points_in_map(world, world.surface_points()[0])
        self.collision = CollisionChecker(points_map, self.config.collision, base_z=self.map_T_base[2, 3])
        self._extent = (points_map.min(axis=0), points_map.max(axis=0)) if len(points_map) else None
        self.pipeline, self.scene_path = pipeline, path
        return world

    @property
    def world(self) -> World | None:
        """The loaded world (None before the first successful load_scene)."""
        return self.pipeline.world if self.pipeline is not None else None

    def render(self, map_T_base: np.ndarray, stamp_ns: int, seed: int | None = None) -> Frame:
        """The camera frame at base pose ``map_T_base`` (4, 4, map frame) stamped ``stamp_ns``;
        WorldFMError without a scene. Safe to call from another thread than ``tick``."""
        return self.render_cameras(map_T_base, stamp_ns, [0], seed=seed)[0]

    def render_cameras(self, map_T_base: np.ndarray, stamp_ns: int, indices: list[int], seed: int | None = None,
                       twist: tuple[np.ndarray, np.ndarray] | None = None) -> list[Frame]:
        """The frames of rig cameras ``indices`` (``sensors.cameras``), all from base pose
        ``map_T_base`` at ``stamp_ns``; twist: base_link body velocity (linear, angular) for the
        motion effects (None = the kinematic model's). A right eye whose left eye renders in the
        same call takes the left eye's keyframe and noise seed. WorldFMError without a scene."""
        pipeline = self.pipeline
        if pipeline is None:
            raise WorldFMError("render: no scene loaded")
        if twist is None:
            v = self.model.velocity
            twist = (v.linear.copy(), v.angular.copy())
        views = camera_views(self.sensors, map_T_base, stamp_ns, indices, seed, self.config.backend.seed, twist)
        return pipeline.render_views(views)

    def take_imu_samples(self) -> list[ImuSample]:
        """The IMU samples made since the last call (oldest first), and forget them."""
        out, self._imu_samples = self._imu_samples, []
        return out

    # ------------------------------------------------------------------ state
    @property
    def odom_T_base(self) -> np.ndarray:
        return self.model.pose

    @property
    def map_T_base(self) -> np.ndarray:
        return self.map_T_odom @ self.model.pose

    def check_map_pose(self, map_T_base: np.ndarray, name: str = "pose") -> np.ndarray:
        """``map_T_base`` as a (4, 4) rigid base pose in the map frame (metres); ValueError naming
        ``name`` when it is not finite and rigid, or when base_link lies more than
        MAX_POSE_DISTANCE_M from the world's extent (from the map origin without a world)."""
        T = check_pose(map_T_base, name)
        far = self.distance_outside_scene(T) if self._extent is not None else math.hypot(*T[:3, 3])
        if not far <= MAX_POSE_DISTANCE_M:
            where = "the scene's extent" if self._extent is not None else "the map origin"
            xyz = ", ".join(f"{v:.3g}" for v in T[:3, 3])
            raise ValueError(f"{name}: base_link at ({xyz}) m is {far:.3g} m from {where}; expected at most "
                             f"{MAX_POSE_DISTANCE_M:g} m")
        return T

    def set_map_pose(self, map_T_base: np.ndarray) -> None:
        """Teleport the robot (at rest) to a base pose in the map frame; ValueError, and nothing
        changes, for a pose :meth:`check_map_pose` refuses."""
        map_T_base = self.check_map_pose(map_T_base)
        self.model.reset(invert_pose(self.map_T_odom) @ map_T_base)
        self.collided = False
        if self.imu is not None:
            self.imu.reset(self.time_ns, self.map_T_base, np.zeros(3), np.zeros(3))

    def state(self) -> RobotState:
        """The robot now (copies)."""
        v = self.model.velocity
        return RobotState(self.time_ns, self.odom_T_base.copy(), self.map_T_base, v.linear.copy(),
                          v.angular.copy(), self.collided)

    def set_command(self, twist: Twist, now_s: float | None = None) -> None:
        """Store a velocity command (body frame) received at ``now_s`` seconds (default: the
        simulator's time); ValueError on NaN/inf."""
        self.model.set_command(twist, self.time_ns * 1e-9 if now_s is None else now_s)

    def tick(self, now_ns: int | None = None) -> RobotState:
        """Advance the kinematics to ``now_ns`` (an outside clock, e.g. ROS time: the step is the time
        since the last tick, one period of sim_rate_hz the first time), or, with None, run the
        simulator's own clock one period of sim_rate_hz on. Returns the state at the new time."""
        period = 1.0 / self.config.sim_rate_hz
        if now_ns is None:
            now_ns, dt = self.time_ns + int(round(period * 1e9)), period
        else:
            dt = period if self._last_tick_ns is None else (now_ns - self._last_tick_ns) * 1e-9
        self._last_tick_ns = self.time_ns = int(now_ns)
        self.advance(dt, now_ns * 1e-9, int(now_ns))
        return self.state()

    def advance(self, dt: float, now_s: float, now_ns: int | None = None) -> None:
        """Integrate ``dt`` seconds ending at ``now_s`` (``now_ns``, the same instant in integer
        nanoseconds, stamps the IMU samples); motion into an obstacle is blocked."""
        before = self.model.pose.copy()
        self.model.step(dt, now_s)
        self.collided = False
        # Turning on the spot cannot block (the robot is a vertical cylinder), so it asks nothing.
        moved = not np.array_equal(before[:3, 3], self.model.pose[:3, 3])
        if moved and self.collision is not None and self.config.collision.enabled:
            was = self.collision.min_distance(self.map_T_odom @ before)
            now = self.collision.min_distance(self.map_T_base)
            # Blocked when entering the robot's radius; moving away from an obstacle is always allowed.
            if now < self.config.collision.radius and now < was:
                self.model.pose = before
                self.model.velocity = Twist()
                self.collided = True
        if self.imu is not None:
            v = self.model.velocity
            stamp = int(round(now_s * 1e9)) if now_ns is None else now_ns
            self._imu_samples += self.imu.update(stamp, self.map_T_base, v.linear, v.angular)

    # ------------------------------------------------------------------ lockstep
    def reset(self, map_T_base: np.ndarray | None = None, seed: int | None = None) -> Observation:
        """Start an episode at ``map_T_base`` (default: the configured initial pose) with time 0;
        ValueError, and nothing changes, for a pose :meth:`check_map_pose` refuses."""
        map_T_base = self.check_map_pose(self.map_T_odom if map_T_base is None else map_T_base)
        self.time_ns = 0
        self.set_map_pose(map_T_base)
        self._imu_samples = []
        self._steps = 0
        if seed is not None:
            self._episode_seed = int(seed)
        return self.observe()

    def step(self, twist: Twist, dt: float) -> Observation:
        """Apply ``twist`` for ``dt`` simulated seconds (sub-stepped at sim_rate_hz), then observe.

        ValueError, before any work, for a dt that is not positive and finite or that needs more
        than MAX_STEP_SUBSTEPS sub-steps."""
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"step dt must be a positive number of seconds, got {dt}")
        max_dt = MAX_STEP_SUBSTEPS / self.config.sim_rate_hz
        if dt > max_dt:
            raise ValueError(f"step dt: expected at most {max_dt:g} s ({MAX_STEP_SUBSTEPS} kinematic sub-steps at "
                             f"sim_rate_hz {self.config.sim_rate_hz:g}), got {dt:g}")
        if not twist.is_finite():
            raise ValueError("action contains NaN or inf")
        n = max(1, math.ceil(dt * self.config.sim_rate_hz - 1e-9))
        blocked = False
        for i in range(n):
            t0 = self.time_ns * 1e-9 + dt * i / n
            self.model.set_command(twist, t0)
            self.advance(dt / n, t0 + dt / n, self.time_ns + int(round(dt * 1e9 * (i + 1) / n)))
            blocked |= self.collided
        self.collided = blocked
        self.time_ns += int(round(dt * 1e9))
        self._steps += 1
        return self.observe()

    def observe(self) -> Observation:
        """Render the camera at the current pose and time."""
        seed = None if self._episode_seed is None else (self._episode_seed * 1_000_003 + self._steps) % 2**31
        frames: dict[str, Frame] = {}
        if self.pipeline:
            indices = list(range(len(self.sensors.cameras)))
            rendered = self.render_cameras(self.map_T_base, self.time_ns, indices, seed=seed)
            frames = {self.sensors.cameras[i].name: f for i, f in zip(indices, rendered)}
        distance = self.collision.min_distance(self.map_T_base) if self.collision else float("inf")
        return Observation(next(iter(frames.values()), None), self.map_T_base, self.odom_T_base.copy(),
                           self.model.velocity.linear.copy(), self.model.velocity.angular.copy(), self.time_ns,
                           self.collided, distance, self.collided or not self.inside_scene(), frames,
                           self.take_imu_samples())

    def random_free_pose(self, rng: np.random.Generator, clearance: float = 0.2, tries: int = 10_000,
                         min_coverage: float = 0.0, coverage_tries: int = START_COVERAGE_TRIES) -> np.ndarray:
        """(4, 4) map→base_link at the ground height of the configured initial pose, drawn uniformly
        over the scene's xy extent (shrunk by the robot radius + ``clearance`` metres) with a uniform
        yaw, whose nearest obstacle point is at least radius + ``clearance`` away (collision-free
        with room to turn) and whose primary camera sees at least ``min_coverage`` of its view on
        the world ([0, 1], ``FramePipeline.coverage``: what ``Frame.coverage`` reports), so an
        episode does not start looking where the scene holds nothing. At most ``tries`` draws and
        ``coverage_tries`` of them rendered; WorldFMError when no scene is loaded or none passes."""
        if self._extent is None or self.collision is None or self.pipeline is None:
            raise WorldFMError("random start pose: no scene loaded")
        keep = self.config.collision.radius + clearance
        lo, hi = self._extent[0][:2] + keep, self._extent[1][:2] - keep
        if np.any(hi <= lo):
            raise WorldFMError(f"random start pose: the scene's extent is smaller than the robot ({keep:.2f} m)")
        z = self.map_T_odom[2, 3]
        inside = getattr(self.pipeline.world, "contains", None)  # a completed world knows its room
        free: list[np.ndarray] = []
        rendered, best = 0, 0.0
        for i in range(tries):
            x, y = rng.uniform(lo, hi)
            pose = planar_pose(x, y, z, rng.uniform(-math.pi, math.pi))
            if inside is not None and not inside(pose[None, :3, 3], keep)[0]:
                continue  # in the box around the room but outside its walls (an L-shaped room's corner)
            if self.collision.min_distance(pose) >= keep:
                if min_coverage <= 0.0:
                    return pose
                free.append(pose)
            if free and (len(free) == START_COVERAGE_BATCH or rendered + len(free) >= coverage_tries
                         or i == tries - 1):
                camera = self.sensors.cameras[0]
                coverage = self.pipeline.coverage([View(p, self.time_ns, camera) for p in free])
                for candidate, c in zip(free, coverage):
                    if c >= min_coverage:
                        return candidate
                rendered, best, free = rendered + len(free), max(best, *coverage), []
                if rendered >= coverage_tries:
                    break
        if rendered:
            raise WorldFMError(f"random start pose: none of {rendered} collision-free poses sees min_start_coverage "
                               f"{min_coverage:.2f} of the view on the scene (best {best:.2f}); lower it or give "
                               "start_poses")
        raise WorldFMError(f"random start pose: no point of the scene is {keep:.2f} m from every obstacle "
                           f"after {tries} draws")

    def distance_outside_scene(self, map_T_base: np.ndarray) -> float:
        """Metres from base_link (a (4, 4) map pose) to the axis-aligned box around the scene's
        points in the map frame: 0 inside it, or without a scene."""
        if self._extent is None:
            return 0.0
        lo, hi = self._extent
        xyz = map_T_base[:3, 3]
        return math.hypot(*(np.maximum(lo - xyz, 0.0) + np.maximum(xyz - hi, 0.0)))  # no overflow at 1e300

    def inside_scene(self, margin: float = 0.5) -> bool:
        """Whether base_link lies within the scene's xy extent (plus ``margin`` metres)."""
        if self._extent is None:
            return True
        lo, hi = self._extent
        xy = self.map_T_base[:2, 3]
        return bool(np.all(xy >= lo[:2] - margin) and np.all(xy <= hi[:2] + margin))
