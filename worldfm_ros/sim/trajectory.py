"""Offline rendering of a pose trajectory: PNG frames, an MP4 and a rosbag2 (MCAP) bag.

Pose files:
* TUM (``.txt``/``.tum``, anything not JSON/YAML): one pose per line, ``t tx ty tz qx qy qz qw``,
  t in seconds, quaternion x, y, z, w; ``#`` starts a comment.
* JSON/YAML: a list of 4x4 matrices, or a mapping with ``c2w`` (a list of 4x4, as in a WorldFM
  ``meta.json``) and optionally ``stamps`` (seconds, one per pose). Without stamps, pose i is at
  i / rate_hz seconds.
Each pose is either the camera's optical frame (``kind='optical'``: camera-to-world, OpenCV
axes) or base_link (``kind='base'``: the camera mount is added), in the map frame or in the
scene anchor's own frame (``world='scene'``, e.g. poses of a WorldFM meta.json).

The bag is written with rosbags' own serializer (no ROS install needed), on the node's topics:
for every camera of the simulator's sensor rig (one ``camera`` by default) <name>/image_raw
(rgb8), <name>/camera_info (its lens model; -fx·B in P for a stereo right eye) and
<name>/depth/image_raw (32FC1 metres, NaN = no data), imu/data (sensor_msgs/Imu at the IMU's
rate, with an IMU in the rig), odom (nav_msgs/Odometry, twist from finite differences), /tf
(odom → base_link) and /tf_static (map → odom identity, the rig's mounts). Every message is
stamped, and written at, the time of its pose (an IMU sample, at its own time). The cameras are
rendered as the node renders them (``Simulator.render_cameras``: stereo, lens, noise, motion blur,
rolling shutter from the trajectory's finite-difference twist); the IMU follows the trajectory
as a screw motion between consecutive poses.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from worldfm_ros.camera import invert_pose
from worldfm_ros.errors import CameraError, ConfigError, WorldFMError
from worldfm_ros.messages import MessageBuilder
from worldfm_ros.scene.checks import orthonormalize_pose
from worldfm_ros.sim.config import FramesConfig
from worldfm_ros.frame.pipeline import Frame, FramePipeline

if TYPE_CHECKING:
    from worldfm_ros.sensors.imu import ImuModel, ImuSample
    from worldfm_ros.sensors.sensor_rig import SensorRig
    from worldfm_ros.sim.simulator import Simulator

KINDS = ("optical", "base")
WORLDS = ("map", "scene")


@dataclass
class Trajectory:
    """stamps_ns: (N,) int64 strictly increasing nanoseconds; poses: (N, 4, 4) world-from-pose, metres;
    kind: 'optical' (camera, OpenCV axes) or 'base' (base_link); world: 'map' or 'scene'."""

    stamps_ns: np.ndarray
    poses: np.ndarray
    kind: str = "optical"
    world: str = "map"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"trajectory kind: expected one of {KINDS}, got {self.kind!r}")
        if self.world not in WORLDS:
            raise ConfigError(f"trajectory world: expected one of {WORLDS}, got {self.world!r}")
        if len(self.poses) == 0 or len(self.stamps_ns) != len(self.poses):
            raise ConfigError(f"trajectory: need one stamp per pose and at least one pose, got "
                              f"{len(self.stamps_ns)} stamps and {len(self.poses)} poses")
        if np.any(np.diff(self.stamps_ns) <= 0):
            raise ConfigError("trajectory: stamps must be strictly increasing")

    def __len__(self) -> int:
        return len(self.poses)


def _seconds_to_ns(text: str) -> int:
    """Exact nanoseconds of a decimal seconds string (float64 would lose ~100 ns at epoch times)."""
    sign = -1 if text.startswith("-") else 1
    whole, dot, frac = text.lstrip("+-").partition(".")
    if "e" in text.lower() or not (whole or frac) or not (whole + frac).isdigit():
        return int(round(float(text) * 1e9))
    return sign * (int(whole or 0) * 1_000_000_000 + int((frac[:9]).ljust(9, "0")))


def load_tum(path: str | Path, kind: str = "optical", world: str = "map") -> Trajectory:
    """Read a TUM trajectory file (``t tx ty tz qx qy qz qw`` per line)."""
    path = Path(path)
    stamps, poses = [], []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read trajectory ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.replace(",", " ").split()
        try:
            if len(fields) != 8:
                raise ValueError
            stamp = _seconds_to_ns(fields[0])
            values = np.array([float(v) for v in fields[1:]])
        except ValueError:
            raise ConfigError(f"{path}:{number}: expected 't tx ty tz qx qy qz qw' (8 numbers), got {line!r}") from None
        q = values[3:]
        if not np.all(np.isfinite(values)) or abs(np.linalg.norm(q) - 1.0) > 1e-3:
            raise CameraError(f"{path}:{number}: pose must be finite with a unit quaternion, got {line!r}")
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat(q / np.linalg.norm(q)).as_matrix()
        T[:3, 3] = values[:3]
        stamps.append(stamp)
        poses.append(T)
    if not poses:
        raise ConfigError(f"{path}: no poses in the trajectory file")
    return Trajectory(np.array(stamps, np.int64), np.stack(poses), kind, world)


def load_matrices(path: str | Path, kind: str = "optical", world: str = "map", rate_hz: float = 10.0) -> Trajectory:
    """Read a JSON/YAML list of 4x4 matrices, or a mapping with ``c2w`` and optional ``stamps`` (s)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read trajectory ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid JSON/YAML ({str(exc).splitlines()[0]})") from None
    stamps = None
    if isinstance(doc, dict):
        if "c2w" not in doc:
            raise ConfigError(f"{path}: expected a list of 4x4 matrices or a mapping with 'c2w', got keys {sorted(doc)}")
        stamps = doc.get("stamps")
        doc = doc["c2w"]
    try:
        matrices = np.array(doc, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: 'c2w' must be a list of numeric 4x4 matrices") from None
    if matrices.ndim == 2:
        matrices = matrices[None]
    if matrices.ndim != 3 or matrices.shape[1:] not in ((4, 4), (3, 4)) or len(matrices) == 0:
        raise ConfigError(f"{path}: 'c2w' must be a non-empty list of 4x4 matrices, got shape {matrices.shape}")
    poses = _snap_rotations(matrices, path)
    if stamps is None:
        if not rate_hz > 0:
            raise ConfigError(f"rate_hz: expected a positive number, got {rate_hz}")
        stamps_ns = np.round(np.arange(len(poses)) * (1e9 / rate_hz)).astype(np.int64)
    else:
        if not isinstance(stamps, list) or len(stamps) != len(poses):
            raise ConfigError(f"{path}: 'stamps' must be a list of {len(poses)} times in seconds")
        stamps_ns = np.array([_seconds_to_ns(str(s)) for s in stamps], np.int64)
    return Trajectory(stamps_ns, poses, kind, world)


def _snap_rotations(matrices: np.ndarray, path: Path) -> np.ndarray:
    """(N, 4, 4) rigid poses; rotations printed with few digits are re-orthonormalised, with a note.

    Uses the tolerance of the scene builders (scene.checks.orthonormalize_pose), so a pose file
    that ``scene-build rgbd`` accepts renders too.
    """
    poses = np.stack([orthonormalize_pose(T, f"{path}: c2w[{i}]") for i, T in enumerate(matrices)])
    R = matrices[:, :3, :3]
    err = float(np.max(np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3))))
    if err > 1e-6:
        warnings.warn(f"{path}: rotations re-orthonormalised (max |RᵀR - I| = {err:.2e} before)", stacklevel=3)
    return poses


def load_trajectory(path: str | Path, kind: str = "optical", world: str = "map", rate_hz: float = 10.0) -> Trajectory:
    """A trajectory from a TUM file, or from JSON/YAML (by extension: .json, .yaml, .yml)."""
    if Path(path).suffix.lower() in (".json", ".yaml", ".yml"):
        return load_matrices(path, kind, world, rate_hz)
    return load_tum(path, kind, world)


def base_poses(trajectory: Trajectory, pipeline: FramePipeline) -> np.ndarray:
    """(N, 4, 4) map → base_link poses of the trajectory for the pipeline's rig and world."""
    poses = trajectory.poses
    if trajectory.world == "scene":
        poses = pipeline.world.map_T_scene @ poses
    if trajectory.kind == "optical":
        poses = poses @ invert_pose(pipeline.rig.base_T_optical)
    return poses


# ----------------------------------------------------------------------------- the bag
class TrajectoryBag:
    """An MCAP rosbag2 of rendered frames, written with rosbags (no rclpy).

    path: the bag directory (must not exist); sensors: the rig whose cameras the frames come from
    (their mounts and the IMU's go to /tf_static); frames: frame ids; imu: the IMU model whose
    covariances the imu/data messages carry (None: no IMU topic).
    """

    def __init__(self, path: str | Path, sensors: "SensorRig", frames: FramesConfig | None = None,
                 compress: bool = True, imu: "ImuModel | None" = None) -> None:
        from rosbags.typesys import Stores, get_typestore

        from worldfm_ros.bags import open_writer

        self.path = Path(path)
        self.sensors, self.frames, self.imu = sensors, frames or FramesConfig(), imu
        self._store = get_typestore(Stores.ROS2_JAZZY)
        self._msg = MessageBuilder(self._store.types.__getitem__, lambda array: array)
        self._writer = open_writer(self.path, compress=compress)
        topics = {"odom": ("/odom", "nav_msgs/msg/Odometry"), "tf": ("/tf", "tf2_msgs/msg/TFMessage"),
                  "tf_static": ("/tf_static", "tf2_msgs/msg/TFMessage")}
        for cam in sensors.cameras:
            topics[f"{cam.name}/image"] = (f"/{cam.name}/image_raw", "sensor_msgs/msg/Image")
            topics[f"{cam.name}/info"] = (f"/{cam.name}/camera_info", "sensor_msgs/msg/CameraInfo")
            if cam.config.publish_depth:
                topics[f"{cam.name}/depth"] = (f"/{cam.name}/depth/image_raw", "sensor_msgs/msg/Image")
        if imu is not None:
            topics["imu"] = ("/imu/data", "sensor_msgs/msg/Imu")
        self._connections = {key: self._writer.add_connection(topic, msgtype, typestore=self._store)
                             for key, (topic, msgtype) in topics.items()}
        self._static_written = False

    def _write(self, key: str, msg, stamp_ns: int) -> None:
        conn = self._connections[key]
        self._writer.write(conn, stamp_ns, self._store.serialize_cdr(msg, conn.msgtype))

    def write(self, frames: list[Frame], odom_T_base: np.ndarray, linear: np.ndarray, angular: np.ndarray,
              imu: "list[ImuSample] | None" = None) -> None:
        """Write the frames of one pose, one per rig camera in rig order, with the base pose (4, 4)
        and body velocities (3,) each, after the IMU samples up to it. The bag's map → odom is the
        identity, so ``odom_T_base`` is the map pose."""
        m, f, stamp = self._msg, self.frames, frames[0].stamp_ns
        if not self._static_written:
            chain = [(np.eye(4), f.map, f.odom)] + self.sensors.static_transforms(f.base)
            static = [m.transform_stamped(T, stamp, parent, child) for T, parent, child in chain]
            self._write("tf_static", m.tf_message(static), stamp)
            self._static_written = True
        model = self.imu
        for s in imu or []:
            self._write("imu", m.imu(s.stamp_ns, self.sensors.imu.frame_id, s.angular_velocity, s.linear_acceleration,
                                     s.orientation_xyzw, model.angular_velocity_covariance,
                                     model.linear_acceleration_covariance, model.orientation_covariance), s.stamp_ns)
        for cam, frame in zip(self.sensors.cameras, frames):
            self._write(f"{cam.name}/image", m.rgb_image(frame.rgb, stamp, cam.optical_frame), stamp)
            if cam.config.publish_depth:
                self._write(f"{cam.name}/depth", m.depth_image(frame.depth, stamp, cam.optical_frame), stamp)
            self._write(f"{cam.name}/info", m.camera_info(cam.camera, stamp, cam.optical_frame, cam.lens.distortion_model,
                                                          cam.lens.D, cam.projection_tx()), stamp)
        self._write("tf", m.tf_message([m.transform_stamped(odom_T_base, stamp, f.odom, f.base)]), stamp)
        self._write("odom", m.odometry(odom_T_base, linear, angular, stamp, f.odom, f.base), stamp)

    def close(self) -> None:
        """Finalise the bag (metadata.yaml)."""
        self._writer.close()


# ----------------------------------------------------------------------------- rendering
def body_velocities(poses: np.ndarray, stamps_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame linear (N, 3) m/s and angular (N, 3) rad/s velocities by finite differences of
    (N, 4, 4) poses: pose i uses the motion from i-1 to i (the first pose, from 0 to 1)."""
    linear, angular = np.zeros((len(poses), 3)), np.zeros((len(poses), 3))
    for i in range(1, len(poses)):
        dt = (stamps_ns[i] - stamps_ns[i - 1]) * 1e-9
        delta = invert_pose(poses[i - 1]) @ poses[i]
        linear[i] = delta[:3, 3] / dt
        angular[i] = Rotation.from_matrix(delta[:3, :3]).as_rotvec() / dt
    if len(poses) > 1:
        linear[0], angular[0] = linear[1], angular[1]
    return linear, angular


@dataclass
class RenderSummary:
    """frames: how many were rendered; seconds: wall time of rendering plus writing;
    render_ms: per-frame pipeline milliseconds; outputs: the files and folders written."""

    frames: int
    seconds: float
    render_ms: list[float] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Frames per second, rendering and writing included."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def render_trajectory(sim: "Simulator", trajectory: Trajectory, output: str | Path, png: bool = True,
                      video: bool = True, bag: bool = True, video_fps: float | None = None, compress: bool = True,
                      on_frame: Callable[[Frame], None] | None = None) -> RenderSummary:
    """Render every pose of ``trajectory`` with every camera of ``sim``'s sensor rig into the folder
    ``output`` (``sim`` needs a loaded scene; its robot state is not used).

    Writes ``frames/NNNNNN.png`` (RGB; ``frames/<camera name, '/' as '_'>/NNNNNN.png`` for a rig of
    several cameras), ``video.mp4`` of the first camera (mp4v, ``video_fps`` or the trajectory's
    mean rate) and the bag folder ``bag/`` (zstd chunks unless not ``compress``; see the module
    docstring); pose i is rendered with backend seed i. ``on_frame`` sees each frame of the first
    camera once it is written (e.g. a viz.RerunLog).
    """
    pipeline = sim.pipeline
    if pipeline is None:
        raise WorldFMError("render_trajectory: no scene loaded")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    cameras = sim.sensors.cameras
    width, height = cameras[0].camera.width, cameras[0].camera.height
    poses = base_poses(trajectory, pipeline)
    linear, angular = body_velocities(poses, trajectory.stamps_ns)
    summary = RenderSummary(len(trajectory), 0.0)
    writer = None
    bag_writer = TrajectoryBag(output / "bag", sim.sensors, sim.config.frames, compress=compress,
                               imu=sim.imu) if bag else None
    folders = [output / "frames"] if len(cameras) == 1 else \
        [output / "frames" / cam.name.replace("/", "_") for cam in cameras]
    if png:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        summary.outputs.append(output / "frames")
    if video:
        span = (trajectory.stamps_ns[-1] - trajectory.stamps_ns[0]) * 1e-9
        fps = video_fps or ((len(trajectory) - 1) / span if len(trajectory) > 1 else 10.0)
        writer = cv2.VideoWriter(str(output / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise WorldFMError(f"{output / 'video.mp4'}: OpenCV cannot open an mp4v video writer")
        summary.outputs.append(output / "video.mp4")
    if sim.imu is not None:
        sim.imu.reset(int(trajectory.stamps_ns[0]), poses[0], linear[0], angular[0])
    indices = list(range(len(cameras)))
    start = time.perf_counter()
    try:
        for i, (T, stamp) in enumerate(zip(poses, trajectory.stamps_ns)):
            imu = sim.imu.update(int(stamp), T, linear[i], angular[i]) if sim.imu is not None and i else []
            t0 = time.perf_counter()
            rendered = sim.render_cameras(T, int(stamp), indices, seed=i, twist=(linear[i], angular[i]))
            summary.render_ms.append((time.perf_counter() - t0) * 1e3)
            if png:
                for folder, frame in zip(folders, rendered):
                    cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
            if writer is not None:
                writer.write(cv2.cvtColor(rendered[0].rgb, cv2.COLOR_RGB2BGR))
            if bag_writer is not None:
                bag_writer.write(rendered, T, linear[i], angular[i], imu)
            if on_frame is not None:
                on_frame(rendered[0])
    finally:
        if writer is not None:
            writer.release()
        if bag_writer is not None:
            bag_writer.close()
            summary.outputs.append(bag_writer.path)
    summary.seconds = time.perf_counter() - start
    return summary
