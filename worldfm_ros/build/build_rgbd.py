"""Scene from posed RGB-D frames: TUM RGB-D sequences and a simple folder format.

All poses are camera-to-world, OpenCV camera axes (x right, y down, z forward), metres.

TUM RGB-D (detected by rgb.txt + depth.txt + groundtruth.txt in the folder)::

    rgb.txt / depth.txt    "timestamp path" per line ('#' comments)
    groundtruth.txt        "timestamp tx ty tz qx qy qz qw" (pose of the colour camera)

  Each colour frame is paired with the depth frame and the pose nearest in time
  (both within ``max_dt`` seconds, else the frame is skipped); depth PNGs are 16-bit
  with 5000 units per metre. TUM folders carry no intrinsics: pass K.

Simple folder format (also reads 7-Scenes and Open3D/ICL-NUIM folders as they are)::

    intrinsics.txt | camera-intrinsics.txt    3x3 K rows, or "fx fy cx cy"
      (or intrinsics.json | camera_intrinsics.json: Open3D layout, or fx/fy/cx/cy keys)
    frames, either
      (a) per-frame files side by side (7-Scenes):
          <stem>.color.png|jpg   <stem>.depth.png|npy   <stem>.pose.txt (4x4 matrix)
      (b) image/ (or color/, rgb/) and depth/ folders with matching stems, and the poses in
          poses.txt          one frame per line: the 16 numbers of the row-major 4x4 matrix
          or trajectory.log  Open3D log: per frame a header line, then 4 rows of the matrix
          (frames are matched to poses in sorted-stem order)

  Depth PNGs hold millimetres unless ``depth_scale`` says otherwise (0 and 65535 = no
  data); .npy depth holds metres.

  Raw depth from a separate depth camera (``worldfm_ros.build.registration``) is registered
  into the colour camera on reading: when the folder holds ``color-intrinsics.txt`` (then the
  main intrinsics and the poses are the depth camera's, ``color_T_depth.txt`` optional), and
  for 7-Scenes, recognised by its layout and documented intrinsics (those of the Kinect's depth
  camera), with the Kinect v1 colour calibration.

Frames ``frame_step`` apart (at most ``max_frames``) are cleaned of flying pixels at depth
edges, back-projected every ``pixel_stride`` pixels with a confidence per observation (range,
viewing angle, distance to a depth edge), and fused per ``fuse_voxel`` cell with robust colours
(``worldfm_ros.build.rgbd_fusion``); ``num_keyframes`` of them evenly spaced (or every
``keyframe_every``-th) become keyframes with their full-resolution image and depth.
No gravity is known: the floor is found with the cameras' average up as a hint.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldfm_ros.errors import SceneError
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.build.assemble import DEFAULT_MAX_POINTS, finish_scene, pick_keyframes
from worldfm_ros.scene.checks import check_K_for_size, orthonormalize_pose
from worldfm_ros.scene.io import read_depth, read_image, read_intrinsics, require_file
from worldfm_ros.build.registration import (KINECT_V1_COLOR_K, KINECT_V1_COLOR_T_DEPTH, SEVEN_SCENES_DEPTH_K,
                                            DepthCamera, register_depth)
from worldfm_ros.build.rgbd_fusion import DEFAULT_FUSE_VOXEL, DEFAULT_MAX_JUMP, fuse_frames

log = logging.getLogger(__name__)

TUM_DEPTH_SCALE = 1.0 / 5000.0
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")
_DEPTH_SUFFIXES = (".png", ".npy", ".pgm", ".tif", ".tiff", ".exr")


@dataclass(frozen=True)
class RGBDFrame:
    """One posed RGB-D frame on disk.

    c2w: (4, 4) camera-to-world, OpenCV axes, metres.
    """

    name: str
    color: Path
    depth: Path
    c2w: np.ndarray


@dataclass(frozen=True)
class RGBDSequence:
    """Frames plus what the folder says about intrinsics (K may be None for TUM) and depth units.

    K: (3, 3) colour-camera intrinsics, pixels (None: the folder gives none).
    depth_scale: metres per stored depth unit (None = the reader's default, mm for integer maps).
    depth_camera: the depth camera of unregistered depth maps (None: depth is registered to the
        colour images); :meth:`load` registers them, and the frames' c2w are the colour camera's.
    """

    frames: list[RGBDFrame]
    K: np.ndarray | None
    depth_scale: float | None
    layout: str
    depth_camera: DepthCamera | None = None

    def load(self, frame: RGBDFrame, depth_scale: float | None = None,
             K: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8 RGB, z-depth (H, W) float32 metres in the colour camera, 0 = none).

        depth_scale / K override the sequence's (K: the colour camera's, (3, 3) pixels).
        """
        image = read_image(frame.color)
        h, w = image.shape[:2]
        K = self.K if K is None else K
        depth = read_depth(frame.depth, self.depth_scale if depth_scale is None else depth_scale)
        if self.depth_camera is not None:
            depth = register_depth(depth, self.depth_camera, K, (w, h))
        elif depth.shape != (h, w):
            raise SceneError(f"{frame.depth}: depth is {depth.shape[1]}x{depth.shape[0]}, image {frame.color.name} "
                             f"is {w}x{h}")
        return image, depth


def load_frames(root: str | os.PathLike, indices: list[int], size: tuple[int, int],
                depth_registration: str = "auto", K: np.ndarray | None = None, depth_scale: float | None = None):
    """The sequence's frames ``indices`` resized to ``size`` (W, H) (colour by area, depth nearest),
    depth registered to the colour camera; ``K`` ((3, 3) pixels) and ``depth_scale`` (metres per
    unit) override the folder's. Returns (images (N, H, W, 3) uint8, depths (N, H, W) float32
    metres, c2w (N, 4, 4) camera-to-scene, the PinholeCamera at ``size``)."""
    import cv2

    from worldfm_ros.camera import PinholeCamera

    seq = read_sequence(root, depth_registration=depth_registration)
    K = seq.K if K is None else K
    if K is None:
        raise SceneError(f"{root}: no intrinsics in the folder ({seq.layout}); pass K (fx fy cx cy)")
    w, h = size
    images, depths, poses = [], [], []
    camera = None
    for i in indices:
        f = seq.frames[i]
        image, depth = seq.load(f, depth_scale, K)
        if camera is None:
            camera = PinholeCamera.from_K(K, image.shape[1], image.shape[0]).scaled(w, h)
        images.append(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))
        depths.append(cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST))
        poses.append(f.c2w)
    return np.stack(images), np.stack(depths).astype(np.float32), np.stack(poses), camera


DEPTH_REGISTRATIONS = ("auto", "registered", "kinect_v1")


def refine_sequence_poses(root: str | os.PathLike, indices: list[int], poses: np.ndarray | None = None,
                          K: np.ndarray | None = None, depth_scale: float | None = None, max_dt: float = 0.02,
                          depth_registration: str = "auto", cfg=None):
    """Poses of the sequence's frames ``indices`` refined by registering their RGB-D images
    (``build.pose_refine.refine_poses``: pairwise registration and a pose graph, the first frame
    fixed), for recordings whose poses come from a drifting or noisy odometry.

    poses: (len(indices), 4, 4) camera-to-scene starting poses, OpenCV axes, metres (None = the
    recording's); K / depth_scale override the folder's; cfg: a ``pose_refine.RefineConfig``
    (None = its defaults). Returns ((len(indices), 4, 4) refined poses, the ``RefineReport``)."""
    from worldfm_ros.build.pose_refine import RefineConfig, refine_poses

    seq = read_sequence(root, max_dt, depth_registration)
    K = seq.K if K is None else K
    if K is None:
        raise SceneError(f"{root}: no intrinsics in the folder ({seq.layout}); pass K (fx fy cx cy)")
    chosen = [seq.frames[i] for i in indices]
    start = np.stack([f.c2w for f in chosen]) if poses is None else np.asarray(poses, np.float64)
    if start.shape != (len(chosen), 4, 4):
        raise SceneError(f"{root}: poses: expected ({len(chosen)}, 4, 4), one per frame refined, got {start.shape}")
    refined, report = refine_poses([seq.load(f, depth_scale, K) for f in chosen], K, start, cfg or RefineConfig())
    log.info("%s: %d poses refined by registration (%d edges, %d pairs did not register), moved up to %.3f m / %.2f deg",
             root, len(chosen), report.edges, report.failed, report.max_shift_m, report.max_turn_deg)
    return refined, report


def read_sequence(root: str | os.PathLike, max_dt: float = 0.02, depth_registration: str = "auto") -> RGBDSequence:
    """Discover the frames of a TUM or simple-folder RGB-D sequence (see the module docstring).

    depth_registration: 'registered' (depth maps are aligned with the colour images),
    'kinect_v1' (raw Kinect v1 depth: the folder's intrinsics are the depth camera's, the colour
    camera is :data:`~worldfm_ros.build.registration.KINECT_V1_COLOR_K`) or 'auto' (the folder's
    own calibration files, else 'kinect_v1' for the 7-Scenes layout and intrinsics, else
    'registered').
    """
    root = Path(root)
    if depth_registration not in DEPTH_REGISTRATIONS:
        raise SceneError(f"depth_registration: expected one of {DEPTH_REGISTRATIONS}, got {depth_registration!r}")
    if not root.is_dir():
        raise SceneError(f"{root}: RGB-D sequence folder not found")
    if all((root / f).is_file() for f in ("rgb.txt", "depth.txt", "groundtruth.txt")):
        return RGBDSequence(_read_tum(root, max_dt), None, TUM_DEPTH_SCALE, "tum")
    K, intrinsics_file = _folder_intrinsics(root)
    frames = _read_seven_scenes(root)
    layout = "per-frame files"
    if not frames:
        frames = _read_image_depth_dirs(root)
        layout = "image/ + depth/ folders"
    K, depth_camera = _depth_camera(root, K, intrinsics_file, layout, depth_registration)
    if depth_camera is not None:
        depth_T_color = np.linalg.inv(depth_camera.color_T_depth)
        frames = [RGBDFrame(f.name, f.color, f.depth, f.c2w @ depth_T_color) for f in frames]
    return RGBDSequence(frames, K, None, layout, depth_camera)


def _folder_intrinsics(root: Path) -> tuple[np.ndarray | None, str | None]:
    for name in ("intrinsics.txt", "camera-intrinsics.txt", "intrinsics.json", "camera_intrinsics.json"):
        if (root / name).is_file():
            return read_intrinsics(root / name)[0], name
    return None, None


def _depth_camera(root: Path, K: np.ndarray | None, intrinsics_file: str | None, layout: str,
                  mode: str) -> tuple[np.ndarray | None, DepthCamera | None]:
    """(colour K, depth camera or None) of a folder; its intrinsics file is the depth camera's when unregistered.

    A folder with ``color-intrinsics.txt`` (3x3 or fx fy cx cy) holds raw depth: the main
    intrinsics file is the depth camera's, ``color_T_depth.txt`` (4x4, metres; identity when
    absent) places the depth camera in the colour camera's frame, and the poses are the depth
    camera's (as a depth tracker such as KinectFusion estimates them).
    """
    if mode == "registered" or K is None:
        return K, None
    color_file = root / "color-intrinsics.txt"
    if mode == "auto" and color_file.is_file():
        extrinsic = root / "color_T_depth.txt"
        color_T_depth = _read_matrix_file(extrinsic) if extrinsic.is_file() else np.eye(4)
        log.info("%s: depth is registered to the colour camera of %s", root, color_file.name)
        return read_intrinsics(color_file)[0], DepthCamera(K, color_T_depth)
    seven_scenes = (layout == "per-frame files" and intrinsics_file == "camera-intrinsics.txt"
                    and np.allclose(K, SEVEN_SCENES_DEPTH_K))
    if mode == "kinect_v1" or seven_scenes:
        log.info("%s: raw Kinect v1 depth (the 7-Scenes calibration is the depth camera's); registering it to "
                 "the Kinect v1 colour camera (f = %.0f px)", root, KINECT_V1_COLOR_K[0, 0])
        return KINECT_V1_COLOR_K.copy(), DepthCamera(K, KINECT_V1_COLOR_T_DEPTH.copy())
    return K, None


def _read_tum_list(path: Path, columns: int) -> list[tuple[float, list[str]]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < columns:
            raise SceneError(f"{path}: line {n}: expected {columns} columns, got {len(parts)}")
        try:
            rows.append((float(parts[0]), parts[1:columns]))
        except ValueError:
            raise SceneError(f"{path}: line {n}: timestamp {parts[0]!r} is not a number") from None
    if not rows:
        raise SceneError(f"{path}: no entries")
    return rows


def _nearest(stamps: np.ndarray, t: float) -> int:
    i = int(np.searchsorted(stamps, t))
    candidates = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
    return min(candidates, key=lambda j: abs(stamps[j] - t))


def _read_tum(root: Path, max_dt: float) -> list[RGBDFrame]:
    from scipy.spatial.transform import Rotation

    rgb = _read_tum_list(root / "rgb.txt", 2)
    depth = sorted(_read_tum_list(root / "depth.txt", 2))
    gt = sorted(_read_tum_list(root / "groundtruth.txt", 8))
    depth_t = np.array([t for t, _ in depth])
    gt_t = np.array([t for t, _ in gt])
    frames = []
    for t, (color_file,) in rgb:
        d = _nearest(depth_t, t)
        g = _nearest(gt_t, t)
        if abs(depth_t[d] - t) > max_dt or abs(gt_t[g] - t) > max_dt:
            continue
        try:
            values = np.array(gt[g][1], dtype=np.float64)
        except ValueError:
            raise SceneError(f"{root / 'groundtruth.txt'}: pose at t={gt_t[g]:.6f} is not 7 numbers") from None
        c2w = np.eye(4)
        c2w[:3, :3] = Rotation.from_quat(values[3:7]).as_matrix()  # scalar-last (qx qy qz qw)
        c2w[:3, 3] = values[:3]
        frames.append(RGBDFrame(Path(color_file).stem, root / color_file, root / depth[d][1][0], c2w))
    if not frames:
        raise SceneError(f"{root}: no colour frame has a depth frame and a pose within {max_dt} s")
    return frames


def _read_seven_scenes(root: Path) -> list[RGBDFrame]:
    frames = []
    for color in sorted(root.glob("*.color.*")):
        if color.suffix.lower() not in _IMAGE_SUFFIXES:
            continue
        stem = color.name[: -len(".color" + color.suffix)]
        depth = _with_suffixes(root, stem + ".depth", _DEPTH_SUFFIXES)
        if depth is None:
            raise SceneError(f"{color}: no depth map {stem}.depth.png/.npy beside it")
        pose_path = require_file(root / f"{stem}.pose.txt", "pose file")
        frames.append(RGBDFrame(stem, color, depth, _read_matrix_file(pose_path)))
    return frames


def _with_suffixes(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Path | None:
    for s in suffixes:
        if (folder / (stem + s)).is_file():
            return folder / (stem + s)
    return None


def _read_matrix_file(path: Path) -> np.ndarray:
    try:
        m = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise SceneError(f"{path}: expected a 4x4 matrix of numbers ({exc})") from None
    if m.shape not in ((4, 4), (3, 4)):
        raise SceneError(f"{path}: expected a 4x4 matrix, got shape {m.shape}")
    return orthonormalize_pose(m, str(path))


def _read_image_depth_dirs(root: Path) -> list[RGBDFrame]:
    image_dir = next((root / d for d in ("image", "color", "rgb") if (root / d).is_dir()), None)
    depth_dir = root / "depth"
    if image_dir is None or not depth_dir.is_dir():
        raise SceneError(
            f"{root}: no RGB-D frames found (expected rgb.txt+depth.txt+groundtruth.txt, "
            "*.color.png + *.depth.png + *.pose.txt, or image/ + depth/ folders)"
        )
    colors = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if (root / "poses.txt").is_file():
        poses = _read_poses_txt(root / "poses.txt")
        pose_file = root / "poses.txt"
    elif (root / "trajectory.log").is_file():
        poses = _read_open3d_log(root / "trajectory.log")
        pose_file = root / "trajectory.log"
    else:
        raise SceneError(f"{root}: no poses.txt or trajectory.log beside {image_dir.name}/ and depth/")
    if len(poses) < len(colors):
        raise SceneError(f"{pose_file}: holds {len(poses)} poses for {len(colors)} images in {image_dir}")
    frames = []
    for color, c2w in zip(colors, poses):
        depth = _with_suffixes(depth_dir, color.stem, _DEPTH_SUFFIXES)
        if depth is None:
            raise SceneError(f"{color}: no depth map {depth_dir / color.stem}.png/.npy")
        frames.append(RGBDFrame(color.stem, color, depth, c2w))
    return frames


def _read_poses_txt(path: Path) -> list[np.ndarray]:
    poses = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            values = np.array(line.split(), dtype=np.float64)
        except ValueError:
            raise SceneError(f"{path}: line {n}: expected 16 numbers") from None
        if values.size != 16:
            raise SceneError(f"{path}: line {n}: expected 16 numbers (row-major 4x4), got {values.size}")
        poses.append(orthonormalize_pose(values.reshape(4, 4), f"{path}: line {n}"))
    return poses


def _read_open3d_log(path: Path) -> list[np.ndarray]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(lines) % 5:
        raise SceneError(f"{path}: expected blocks of 5 lines (header + 4x4 matrix), got {len(lines)} lines")
    poses = []
    for b in range(0, len(lines), 5):
        try:
            m = np.array([row.split() for row in lines[b + 1: b + 5]], dtype=np.float64)
        except ValueError:
            raise SceneError(f"{path}: line {b + 2}: expected 4 rows of 4 numbers") from None
        if m.shape != (4, 4):
            raise SceneError(f"{path}: line {b + 2}: expected 4 rows of 4 numbers")
        poses.append(orthonormalize_pose(m, f"{path}: line {b + 2}"))
    return poses


def write_recorded_path(path: str | os.PathLike, c2w: np.ndarray, rate_hz: float = 10.0) -> Path:
    """Write the recording's camera path as a TUM file (``t tx ty tz qx qy qz qw``; what
    ``sim.trajectory.load_tum`` reads): c2w (N, 4, 4) camera-to-scene, OpenCV axes, metres, in frame
    order, stamped ``i / rate_hz`` seconds (the layouts do not all carry stamps)."""
    from scipy.spatial.transform import Rotation

    c2w = np.asarray(c2w, dtype=np.float64)
    q = Rotation.from_matrix(c2w[:, :3, :3]).as_quat()  # x y z w
    lines = [f"# camera optical frame in the scene frame (OpenCV axes, metres): the recorded poses, {rate_hz:g} Hz"]
    lines += [f"{i / rate_hz:.6f} " + " ".join(f"{v:.9f}" for v in (*T[:3, 3], *qi)) for i, (T, qi) in enumerate(zip(c2w, q))]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def build_rgbd(
    root: str | os.PathLike,
    K: np.ndarray | None = None,
    depth_scale: float | None = None,
    frame_step: int = 1,
    max_frames: int | None = None,
    num_keyframes: int = 8,
    keyframe_every: int | None = None,
    pixel_stride: int = 2,
    max_depth: float | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    up: str = "auto",
    plane_threshold: float = 0.02,
    max_dt: float = 0.02,
    name: str | None = None,
    frames: list[int] | None = None,
    max_jump: float = DEFAULT_MAX_JUMP,
    fuse_voxel: float = DEFAULT_FUSE_VOXEL,
    depth_registration: str = "auto",
    poses: np.ndarray | None = None,
) -> SceneAnchor:
    """Fuse a posed RGB-D sequence into a scene anchor (layouts: module docstring).

    frames: indices into the sequence's frames (in file order) to build from, before
        ``frame_step`` / ``max_frames`` apply (None = all; e.g. an evaluation's anchor split).

    K: (3, 3) colour intrinsics in pixels, overriding the folder's (required for TUM).
    depth_registration: how depth maps relate to the colour images (:func:`read_sequence`).
    depth_scale: metres per stored depth unit, overriding the layout's default.
    frame_step / max_frames: use every ``frame_step``-th frame, at most ``max_frames``.
    pixel_stride: back-project every ``pixel_stride``-th pixel of each used frame.
    max_depth: ignore depth beyond this many metres (sensor noise grows with range).
    poses: (len(frames), 4, 4) camera-to-scene poses (OpenCV axes, metres) fused instead of the
        recording's, one per chosen frame before ``frame_step`` (None = the recording's; e.g. poses
        from another odometry, or an evaluation's perturbed ones).
    max_jump: drop pixels next to a relative depth jump above this (flying pixels; 0 = keep all).
    fuse_voxel: fusion cell edge in metres (0 = keep every back-projected point, unweighted).
    up, plane_threshold, max_points: see :func:`worldfm_ros.build.assemble.finish_scene`
        (``up`` "auto" = the cameras' average up refined by the floor plane).
    """
    root = Path(root)
    seq = read_sequence(root, max_dt, depth_registration)
    if frame_step < 1 or pixel_stride < 1:
        raise SceneError(f"frame_step and pixel_stride must be >= 1, got {frame_step}, {pixel_stride}")
    chosen_frames = seq.frames
    if frames is not None:
        bad = [i for i in frames if not 0 <= i < len(seq.frames)]
        if bad:
            raise SceneError(f"{root}: frame indices {bad[:5]} out of range (the sequence has {len(seq.frames)} frames)")
        chosen_frames = [seq.frames[i] for i in frames]
    if poses is not None:
        poses = np.asarray(poses, dtype=np.float64)
        if poses.shape != (len(chosen_frames), 4, 4):
            raise SceneError(f"{root}: poses: expected ({len(chosen_frames)}, 4, 4), one per chosen frame, got {poses.shape}")
        chosen_frames = [dataclasses.replace(f, c2w=orthonormalize_pose(T, f"{f.name}: poses[{i}]"))
                         for i, (f, T) in enumerate(zip(chosen_frames, poses))]
    frames = chosen_frames[::frame_step][:max_frames]
    if not frames:
        raise SceneError(f"{root}: no frames selected (found {len(seq.frames)}, max_frames = {max_frames})")
    K = K if K is not None else seq.K
    if K is None:
        raise SceneError(f"{root}: no intrinsics in the folder ({seq.layout}); pass K (fx fy cx cy)")
    chosen = set(pick_keyframes(len(frames), num_keyframes, keyframe_every))

    def loaded():
        for frame in frames:
            image, depth = seq.load(frame, depth_scale, K)
            check_K_for_size(K, image.shape[1], image.shape[0], f"{frame.color}: intrinsics K")
            yield frame.name, image, depth, K, frame.c2w

    points, colors, keyframes = fuse_frames(loaded(), chosen, pixel_stride, max_jump, max_depth, fuse_voxel)
    log.info("%s: %d frames (%s), %d keyframes", root, len(frames), seq.layout, len(keyframes))
    return finish_scene(
        points, colors, keyframes, name or root.name, str(root),
        max_points, up, "camera", plane_threshold,
    )
