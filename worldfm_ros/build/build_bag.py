"""Scene from a robot's own recording: a rosbag2 (MCAP or sqlite3) folder or a ROS 1 .bag, read by rosbags.

What is read (topics found by message type, or named in :class:`BagConfig`):

* colour: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or ``CompressedImage`` (jpeg,
  png) on a topic without "depth" in its name; depth: ``Image`` (16UC1 mm, 32FC1 m) or
  ``CompressedImage`` (compressedDepth png, 16-bit png) on a topic with "depth" in it
  (``worldfm_ros.build.bag_images``). Depth must be registered to the colour camera (same size
  and intrinsics: a driver's ``aligned_depth_to_color`` topic); it may come from another frame
  and stamp, and is then moved into the colour camera at the colour stamp by TF;
* ``sensor_msgs/CameraInfo`` beside the colour topic: K, the image size and the camera frame
  (its ``frame_id``, an optical frame: OpenCV axes); distortion is not undone (the images are
  taken as rectified, and the report says when D is not zero);
* poses: /tf and /tf_static, the chain from the world frame (``map``, else ``odom``, else the
  top of the camera's tree) to the camera frame at each colour stamp, interpolated
  (``worldfm_ros.build.bag_tf``); or an odometry topic (``nav_msgs/Odometry``, header.frame_id →
  child_frame_id) standing in for that /tf edge.

Colour and depth are paired by header stamp (the nearest depth within ``max_dt``). The bag is read
twice: once for the small topics (TF, camera_info, odometry), once streaming the images; only the
frames kept as keyframes by motion (``keyframe_distance`` / ``keyframe_angle_deg`` since the last
kept one) are decoded and held, so memory grows with the keyframes, not with the bag. Their poses
are refined by registration (``worldfm_ros.build.pose_refine``: RGB-D odometry or ICP, pose graph) unless
``refine`` is 'none', then fused and finished as ``scene-build rgbd`` does
(``rgbd_fusion.fuse_frames``, in chunks of ``FUSE_CHUNK`` frames, and ``assemble.finish_scene``): the
same scene layout. The recording's
world frame (REP-105: z up) becomes the map frame by default (``up`` 'auto' = 'none'), so poses
recorded in the bag drive the simulator to the same places.

A bag whose recorder was killed (no metadata.yaml) or whose MCAP file ends early is not read:
the error names the repair command (``worldfm bag-reindex`` / ``ros2 bag reindex``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worldfm_ros.errors import SceneError
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.build.assemble import DEFAULT_MAX_POINTS, finish_scene, pick_keyframes
from worldfm_ros.build.bag_images import COMPRESSED, IMAGE_TYPES, decode_color, decode_depth
from worldfm_ros.build.bag_tf import TfBuffer, TransformChainError
from worldfm_ros.scene.checks import check_K_for_size
from worldfm_ros.build.pose_refine import REFINE, RefineConfig, RefineReport, refine_config, refine_poses
from worldfm_ros.build.registration import DepthCamera, register_depth
from worldfm_ros.build.rgbd_fusion import DEFAULT_FUSE_VOXEL, DEFAULT_MAX_JUMP, fuse_frames

log = logging.getLogger(__name__)

CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage")
#: pending colour frames waiting for their depth (bounds memory when a depth stream lags or is missing)
_MAX_PENDING = 64
#: kept frames fused at a time (``rgbd_fusion.fuse_frames``): bounds the fusion's memory on long bags
FUSE_CHUNK = 48
#: a depth frame this far (m, deg) from the colour camera's pose is moved into it by registration
_MOVE_EPS = (1e-4, 0.01)


@dataclass(frozen=True)
class BagConfig:
    """How a bag becomes a scene.

    color_topic / depth_topic / info_topic: None = found by type; odom_topic: poses from this
    nav_msgs/Odometry topic instead of its /tf edge; world_frame: None = 'map', else 'odom', else
    the top of the camera's TF tree; camera_frame: None = camera_info's frame_id.
    max_dt: colour/depth pairing tolerance, s; tf_tolerance: how far (s) a stamp may lie outside a
    /tf edge's samples. depth_scale: metres per integer depth unit (None = mm).
    keyframe_distance (m) / keyframe_angle_deg: motion since the last kept frame that keeps a
    frame (both 0 = every paired frame); max_frames: stop after this many kept frames.
    refine: 'icp' (point-to-plane ICP registration, ``pose_refine``; the default: the most accurate on
    every bag measured, benchmarks/RESULTS.md), 'rgbd' (RGB-D odometry, 3x faster) or 'none'.
    num_keyframes: of the kept frames, how many become the scene's reference keyframes (evenly).
    pixel_stride, max_depth, max_jump, fuse_voxel: as ``scene-build rgbd``; max_points, up,
    plane_threshold: ``assemble.finish_scene`` (up 'auto' = 'none': the bag's world frame is the map).
    """

    color_topic: str | None = None
    depth_topic: str | None = None
    info_topic: str | None = None
    odom_topic: str | None = None
    world_frame: str | None = None
    camera_frame: str | None = None
    max_dt: float = 0.02
    tf_tolerance: float = 0.05
    depth_scale: float | None = None
    keyframe_distance: float = 0.1
    keyframe_angle_deg: float = 10.0
    max_frames: int | None = None
    refine: str = "icp"
    num_keyframes: int = 8
    pixel_stride: int = 2
    max_depth: float | None = None
    max_jump: float = DEFAULT_MAX_JUMP
    fuse_voxel: float = DEFAULT_FUSE_VOXEL
    max_points: int = DEFAULT_MAX_POINTS
    up: str = "auto"
    plane_threshold: float = 0.02
    name: str | None = None

    def __post_init__(self) -> None:
        if self.refine not in REFINE:
            raise SceneError(f"refine: expected one of {REFINE}, got {self.refine!r}")
        if self.max_dt < 0 or self.tf_tolerance < 0 or self.keyframe_distance < 0 or self.keyframe_angle_deg < 0:
            raise SceneError("max_dt, tf_tolerance, keyframe_distance and keyframe_angle_deg must be >= 0")
        if self.pixel_stride < 1:
            raise SceneError(f"pixel_stride: must be >= 1, got {self.pixel_stride}")


@dataclass
class BagReport:
    """What a build used and dropped, and why (``lines`` prints it).

    dropped: reason -> colour frames; examples: reason -> the first such frame's detail.
    """

    bag: str
    color_topic: str = ""
    depth_topic: str = ""
    info_topic: str = ""
    pose_source: str = ""
    chain: list[str] = field(default_factory=list)
    color_messages: int = 0
    depth_messages: int = 0
    paired: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    refine: RefineReport | None = None

    def drop(self, reason: str, detail: str) -> None:
        self.dropped[reason] += 1
        self.examples.setdefault(reason, detail)

    def lines(self) -> list[str]:
        out = [f"bag {self.bag}",
               f"  colour {self.color_topic} ({self.color_messages} messages), depth {self.depth_topic} "
               f"({self.depth_messages}), camera_info {self.info_topic}",
               f"  poses from {self.pose_source}: {' -> '.join(reversed(self.chain))}",
               f"  {self.paired} colour frames paired with depth, {self.kept} kept"]
        for reason, count in self.dropped.most_common():
            out.append(f"  dropped {count}: {reason} (first: {self.examples[reason]})")
        if self.refine is not None:
            r = self.refine
            out.append(f"  refined by registration: {r.edges} edges ({r.failed} pairs did not register), poses moved "
                       f"up to {100 * r.max_shift_m:.1f} cm / {r.max_turn_deg:.1f} deg")
        out += [f"  note: {n}" for n in self.notes]
        return out


@dataclass
class BagFrame:
    """A kept frame: name (its stamp, ns), image (H, W, 3) uint8 RGB, z-depth (H, W) float32 metres
    in the colour camera, c2w (4, 4) recorded camera-to-world (the bag's world frame, OpenCV axes)."""

    name: str
    image: np.ndarray
    depth: np.ndarray
    c2w: np.ndarray


def _repair_hint(path: Path) -> str:
    storage = "-s sqlite3 " if any(path.glob("*.db3")) else ""
    mcap = f"'worldfm bag-reindex {path}' or " if any(path.glob("*.mcap")) else ""
    return f"repair it with {mcap}'ros2 bag reindex {storage}{path}'"


def open_bag(path: str | os.PathLike):
    """An open rosbags ``AnyReader`` of a rosbag2 folder or ROS 1 .bag; SceneError naming the repair if broken."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: bag not found")
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        raise SceneError(f"{path}: pass the rosbag2 folder that holds this file (with its metadata.yaml), not the file")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        if not any(path.glob("*.mcap")) and not any(path.glob("*.db3")):
            raise SceneError(f"{path}: not a rosbag2 folder (no metadata.yaml, no .mcap or .db3 file)")
        raise SceneError(f"{path}: no metadata.yaml (was the recorder killed?); {_repair_hint(path)}")
    reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
    try:
        reader.open()
    except AnyReaderError as exc:
        hint = f"; {_repair_hint(path)}" if path.is_dir() else ""
        raise SceneError(f"{path}: cannot read the bag ({exc}){hint}") from None
    return reader


def _messages(reader, connections, path: Path):
    """reader.messages(connections), with a cut-off storage file turned into one line naming the repair."""
    try:
        yield from reader.messages(connections=connections)
    except SceneError:
        raise
    except Exception as exc:  # rosbags raises its own, struct's and zstd's errors on a cut file
        hint = f"; {_repair_hint(path)}" if path.is_dir() else " (re-record it, or repair it with 'rosbag reindex')"
        raise SceneError(f"{path}: the bag's storage file ends early or is damaged ({type(exc).__name__}: {exc})"
                         f"{hint}") from None


def _stamp(msg) -> int:
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


def _pick(candidates: list[str], prefer: tuple[str, ...], what: str, option: str, types: dict[str, str]) -> str:
    """The one best candidate topic: names with a ``prefer`` word first, raw Image before compressed."""
    def score(topic: str) -> tuple[int, int]:
        return (any(w in topic.lower() for w in prefer), types[topic] != COMPRESSED)

    best = max(map(score, candidates))
    top = sorted(t for t in candidates if score(t) == best)
    if len(top) > 1:
        raise SceneError(f"several {what} topics ({', '.join(top)}): choose one with {option}")
    return top[0]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.strip("/").split("/"), b.strip("/").split("/")):
        if x != y:
            break
        n += 1
    return n


def _check_topic(topic: str, types: dict[str, str], expected: tuple[str, ...], path: Path) -> str:
    if topic not in types:
        raise SceneError(f"{path}: topic {topic!r} is not in the bag (topics: {', '.join(sorted(types))})")
    if types[topic] not in expected:
        raise SceneError(f"{path}: topic {topic} has type {types[topic]}, expected {' or '.join(expected)}")
    return topic


def discover_topics(types: dict[str, str], cfg: BagConfig, path: Path) -> tuple[str, str, str]:
    """(colour, depth, camera_info) topics of a bag whose topics have ``types`` (topic -> msgtype)."""
    images = sorted(t for t, ty in types.items() if ty in IMAGE_TYPES)
    if cfg.color_topic:
        color = _check_topic(cfg.color_topic, types, IMAGE_TYPES, path)
    else:
        colors = [t for t in images if "depth" not in t.lower()]
        if not colors:
            raise SceneError(f"{path}: no colour image topic (sensor_msgs/Image or CompressedImage without 'depth' in "
                             f"its name; image topics: {', '.join(images) or 'none'}); name one with --color-topic")
        color = _pick(colors, ("color", "colour", "rgb"), "colour", "--color-topic", types)
    if cfg.depth_topic:
        depth = _check_topic(cfg.depth_topic, types, IMAGE_TYPES, path)
    else:
        depths = [t for t in images if "depth" in t.lower() and t != color]
        if not depths:
            raise SceneError(f"{path}: no depth topic (an Image or CompressedImage topic with 'depth' in its name; "
                             f"image topics: {', '.join(images) or 'none'}): the bag holds no depth, which a scene "
                             f"needs; name one with --depth-topic")
        depth = _pick(depths, ("aligned", "registered"), "depth", "--depth-topic", types)
    if cfg.info_topic:
        info = _check_topic(cfg.info_topic, types, (CAMERA_INFO,), path)
    else:
        infos = [t for t, ty in types.items() if ty == CAMERA_INFO]
        if not infos:
            raise SceneError(f"{path}: no sensor_msgs/msg/CameraInfo topic: the colour camera's intrinsics are unknown "
                             f"(record its camera_info, e.g. {color.rsplit('/', 1)[0]}/camera_info)")
        best = max(_common_prefix(t, color) for t in infos)
        near = sorted(t for t in infos if _common_prefix(t, color) == best)
        if len(near) > 1:
            raise SceneError(f"{path}: several camera_info topics next to {color} ({', '.join(near)}): choose one "
                             f"with --info-topic")
        info = near[0]
    if cfg.odom_topic:
        _check_topic(cfg.odom_topic, types, (ODOMETRY,), path)
    return color, depth, info


def _field(msg, name: str):
    """A message field by its ROS 2 name, or its ROS 1 upper-case one (CameraInfo K, D, P)."""
    return getattr(msg, name) if hasattr(msg, name) else getattr(msg, name.upper())


def _read_small_topics(reader, path: Path, info_topic: str, cfg: BagConfig, report: BagReport):
    """(TfBuffer, first CameraInfo message) from /tf, /tf_static, camera_info and the odometry topic."""
    wanted = [c for c in reader.connections
              if c.msgtype in TF_TYPES or c.topic == info_topic or c.topic == cfg.odom_topic]
    tf, odom, info = [], [], None
    for conn, _, raw in _messages(reader, wanted, path):
        msg = reader.deserialize(raw, conn.msgtype)
        if conn.msgtype in TF_TYPES:
            static = conn.topic.rstrip("/").endswith("tf_static")
            tf += [(t.header.frame_id, t.child_frame_id, t.transform, _stamp(t), static) for t in msg.transforms]
        elif conn.topic == cfg.odom_topic:
            odom.append((msg.header.frame_id, msg.child_frame_id, msg.pose.pose, _stamp(msg)))
        elif info is None:
            info = msg
    if info is None:
        raise SceneError(f"{path}: topic {info_topic} holds no CameraInfo message: the intrinsics are unknown")
    buffer = TfBuffer()
    odom_children = set()
    for parent, child, pose, stamp in odom:
        p, q = pose.position, pose.orientation
        buffer.add(parent, child, (p.x, p.y, p.z), (q.x, q.y, q.z, q.w), stamp)
        odom_children.add(child.lstrip("/"))
    if cfg.odom_topic and not odom:
        raise SceneError(f"{path}: odometry topic {cfg.odom_topic} holds no messages")
    for parent, child, tr, stamp, static in tf:
        if child.lstrip("/") in odom_children:
            continue  # the odometry topic stands in for this edge
        t, q = tr.translation, tr.rotation
        try:
            buffer.add(parent, child, (t.x, t.y, t.z), (q.x, q.y, q.z, q.w), stamp, static)
        except TransformChainError as exc:
            report.drop("a /tf sample was rejected", str(exc))
    if not buffer.frames:
        raise SceneError(f"{path}: no /tf, /tf_static or odometry messages: the camera poses are unknown "
                         f"(record /tf and /tf_static, or pass --odom-topic)")
    return buffer, info


def _world_frame(buffer: TfBuffer, camera: str, cfg: BagConfig) -> str:
    if cfg.world_frame:
        return cfg.world_frame
    if camera not in buffer.frames:
        raise TransformChainError(f"camera frame {camera!r} (camera_info frame_id) is not in /tf or /tf_static "
                                  f"(frames: {', '.join(sorted(buffer.frames))}); publish base -> camera transforms "
                                  f"or pass --camera-frame")
    for name in ("map", "odom"):
        if name in buffer.frames and buffer.connected(name, camera):
            return name
    return buffer.root(camera)


def _intrinsics(info, color_topic: str, info_topic: str, report: BagReport) -> tuple[np.ndarray, int, int]:
    K = np.asarray(_field(info, "k"), np.float64).reshape(3, 3)
    w, h = int(info.width), int(info.height)
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise SceneError(f"{info_topic}: CameraInfo k has fx = {K[0, 0]}, fy = {K[1, 1]}: expected positive focal "
                         f"lengths (is the camera calibrated?)")
    D = np.asarray(_field(info, "d"), np.float64)
    if D.size and np.any(np.abs(D) > 1e-9):
        report.notes.append(f"{info_topic}: distortion {info.distortion_model} D = {np.round(D, 4).tolist()} is not "
                            f"undone; {color_topic} is taken as rectified")
    return K, w, h


def _rotation_deg(T: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(T[:3, :3]) - 1) / 2, -1, 1))))


class _Stream:
    """Pairs colour with depth by stamp as the messages stream past, and keeps frames by motion."""

    def __init__(self, reader, cfg: BagConfig, report: BagReport, buffer: TfBuffer, world: str, camera: str,
                 K: np.ndarray, size: tuple[int, int]) -> None:
        self.reader, self.cfg, self.report, self.buffer = reader, cfg, report, buffer
        self.world, self.camera, self.K, self.size = world, camera, K, size
        self.max_dt_ns = int(round(cfg.max_dt * 1e9))
        self.tol_ns = int(round(cfg.tf_tolerance * 1e9))
        self.pending: deque = deque()
        self.depths: deque = deque(maxlen=_MAX_PENDING)
        self.kept: list[BagFrame] = []
        self.color_range = [None, None]
        self.depth_range = [None, None]

    @property
    def full(self) -> bool:
        return self.cfg.max_frames is not None and len(self.kept) >= self.cfg.max_frames

    def color(self, msg, msgtype: str) -> None:
        stamp = _stamp(msg)
        self._extend(self.color_range, stamp)
        self.pending.append((stamp, msg, msgtype))
        if len(self.pending) > _MAX_PENDING:
            self._finish(*self.pending.popleft())

    def depth(self, msg, msgtype: str) -> None:
        stamp = _stamp(msg)
        self._extend(self.depth_range, stamp)
        self.depths.append((stamp, msg, msgtype))
        while self.pending and stamp > self.pending[0][0] + self.max_dt_ns:
            self._finish(*self.pending.popleft())
        oldest = self.pending[0][0] if self.pending else stamp
        while len(self.depths) > 1 and self.depths[0][0] < oldest - self.max_dt_ns:
            self.depths.popleft()

    def close(self) -> None:
        while self.pending and not self.full:
            self._finish(*self.pending.popleft())

    @staticmethod
    def _extend(span: list, stamp: int) -> None:
        span[0] = stamp if span[0] is None else min(span[0], stamp)
        span[1] = stamp if span[1] is None else max(span[1], stamp)

    def _finish(self, stamp: int, msg, msgtype: str) -> None:
        if self.full:
            return
        cfg, report = self.cfg, self.report
        t = f"t = {stamp * 1e-9:.3f} s"
        if not self.depths:
            report.drop(f"no depth frame within {cfg.max_dt * 1e3:.0f} ms", t)
            return
        d_stamp, d_msg, d_type = min(self.depths, key=lambda d: abs(d[0] - stamp))
        if abs(d_stamp - stamp) > self.max_dt_ns:
            report.drop(f"no depth frame within {cfg.max_dt * 1e3:.0f} ms", f"{t}, nearest depth "
                        f"{(d_stamp - stamp) * 1e-6:+.0f} ms")
            return
        report.paired += 1
        try:
            world_T_cam = self.buffer.lookup(self.world, self.camera, stamp, self.tol_ns)
            depth_frame = (d_msg.header.frame_id or self.camera).lstrip("/")
            world_T_depth = world_T_cam if depth_frame == self.camera and d_stamp == stamp else \
                self.buffer.lookup(self.world, depth_frame, d_stamp, self.tol_ns)
        except TransformChainError as exc:
            report.drop(f"no pose {self.world} -> {self.camera} at the frame's stamp", f"{t}: {exc}")
            return
        if self.kept and not self._moved(world_T_cam):
            report.drop(f"moved less than {cfg.keyframe_distance} m / {cfg.keyframe_angle_deg} deg since the last "
                        f"kept frame", t)
            return
        image = decode_color(msg, msgtype, self.report.color_topic)
        depth = decode_depth(d_msg, d_type, self.report.depth_topic, cfg.depth_scale)
        w, h = self.size
        if image.shape[:2] != (h, w):
            raise SceneError(f"{report.color_topic}: image is {image.shape[1]}x{image.shape[0]}, its camera_info "
                             f"{report.info_topic} says {w}x{h}")
        if depth.shape != (h, w):
            raise SceneError(f"{report.depth_topic}: depth is {depth.shape[1]}x{depth.shape[0]}, colour is {w}x{h}: "
                             f"record the depth registered to the colour camera (e.g. aligned_depth_to_color)")
        cam_T_depth = np.linalg.inv(world_T_cam) @ world_T_depth
        if np.linalg.norm(cam_T_depth[:3, 3]) > _MOVE_EPS[0] or _rotation_deg(cam_T_depth) > _MOVE_EPS[1]:
            depth = register_depth(depth, DepthCamera(self.K, cam_T_depth), self.K, (w, h))
        self.kept.append(BagFrame(str(stamp), image, depth, world_T_cam))
        report.kept += 1

    def _moved(self, world_T_cam: np.ndarray) -> bool:
        delta = np.linalg.inv(self.kept[-1].c2w) @ world_T_cam
        return (np.linalg.norm(delta[:3, 3]) >= self.cfg.keyframe_distance
                or _rotation_deg(delta) >= self.cfg.keyframe_angle_deg)


def read_bag_frames(path: str | os.PathLike, cfg: BagConfig = BagConfig(),
                    progress: bool | None = None) -> tuple[list[BagFrame], np.ndarray, BagReport]:
    """The kept frames of a bag (name, image, registered depth, recorded c2w), the colour K (3, 3)
    and the report; ``progress``: a tqdm bar (None = when stderr is a terminal)."""
    from tqdm import tqdm

    path = Path(path)
    report = BagReport(str(path))
    reader = open_bag(path)
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
        color, depth, info_topic = discover_topics(types, cfg, path)
        report.color_topic, report.depth_topic, report.info_topic = color, depth, info_topic
        buffer, info = _read_small_topics(reader, path, info_topic, cfg, report)
        K, w, h = _intrinsics(info, color, info_topic, report)
        check_K_for_size(K, w, h, f"{info_topic}: CameraInfo k")
        camera = (cfg.camera_frame or info.header.frame_id).lstrip("/")
        if not camera:
            raise SceneError(f"{info_topic}: CameraInfo header.frame_id is empty: pass --camera-frame")
        world = _world_frame(buffer, camera, cfg)
        report.chain = buffer.chain(world, camera)
        report.pose_source = f"/tf + {cfg.odom_topic}" if cfg.odom_topic else "/tf + /tf_static"
        if "optical" not in camera:
            report.notes.append(f"camera frame {camera!r} is taken as an optical frame (x right, y down, z forward)")
        conns = [c for c in reader.connections if c.topic in (color, depth)]
        report.color_messages = sum(c.msgcount for c in conns if c.topic == color)
        report.depth_messages = sum(c.msgcount for c in conns if c.topic == depth)
        if report.depth_messages == 0:
            raise SceneError(f"{path}: depth topic {depth} holds no messages")
        stream = _Stream(reader, cfg, report, buffer, world, camera, K, (w, h))
        bar = tqdm(total=report.color_messages + report.depth_messages, unit="msg", desc="reading bag",
                   disable=None if progress is None else not progress, leave=False)
        with bar:
            for conn, _, raw in _messages(reader, conns, path):
                msg = reader.deserialize(raw, conn.msgtype)
                (stream.color if conn.topic == color else stream.depth)(msg, conn.msgtype)
                bar.update()
                if stream.full:
                    report.notes.append(f"stopped after {cfg.max_frames} kept frames (max_frames)")
                    break
            stream.close()
    finally:
        reader.close()
    if not stream.kept:
        detail = "; ".join(f"{n} {r} (first: {report.examples[r]})" for r, n in report.dropped.most_common())
        spans = (f"colour stamps {_span(stream.color_range)}, depth stamps {_span(stream.depth_range)}")
        raise SceneError(f"{path}: no usable frame of {color}: {detail or 'no colour messages'} ({spans})")
    return stream.kept, K, report


def _span(span: list) -> str:
    return "none" if span[0] is None else f"{span[0] * 1e-9:.3f} .. {span[1] * 1e-9:.3f} s"


def build_bag(path: str | os.PathLike, cfg: BagConfig = BagConfig(),
              progress: bool | None = None) -> tuple[SceneAnchor, BagReport]:
    """Build a scene anchor from a bag (module docstring); returns it and the build's report."""
    path = Path(path)
    kept, K, report = read_bag_frames(path, cfg, progress)
    c2ws = np.stack([k.c2w for k in kept])
    if cfg.refine != "none" and len(kept) > 1:
        max_depth = cfg.max_depth if cfg.max_depth is not None else RefineConfig.max_depth
        c2ws, report.refine = refine_poses([(k.image, k.depth) for k in kept], K, c2ws,
                                           refine_config(cfg.refine, max_depth=max_depth))
    chosen = set(pick_keyframes(len(kept), cfg.num_keyframes))

    def frames():
        for i, (k, c2w) in enumerate(zip(kept, c2ws)):
            yield k.name, k.image, k.depth, K, c2w
            if i not in chosen:
                kept[i] = None  # only the reference keyframes outlive the fusion

    points, colors, keyframes = fuse_frames(frames(), chosen, cfg.pixel_stride, cfg.max_jump, cfg.max_depth,
                                            cfg.fuse_voxel, chunk=FUSE_CHUNK)
    for line in report.lines():
        log.info("%s", line)
    name = cfg.name or (path.stem if path.is_file() else path.name)
    anchor = finish_scene(points, colors, keyframes, name, str(path), cfg.max_points, cfg.up, "none",
                          cfg.plane_threshold)
    return anchor, report
