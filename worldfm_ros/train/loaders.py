"""Clips from real posed captures, for training on your own data.

Every loader returns ``Clip``s (images, z-depth, camera-to-world poses in OpenCV axes, K),
which ``build_samples`` turns into the same multi-view samples as the procedural clips. Depth
is required: it is what the anchor point cloud is fused from; for image-only captures, save a
depth map per frame (e.g. from a monocular depth estimator, in metres) and point the loader at it.

* ``rgbd_clips``: posed RGB-D folders read by ``worldfm_ros.build.build_rgbd`` (TUM RGB-D,
  7-Scenes, ICL-NUIM / Open3D image+depth folders).
* ``nerf_clip``: a NeRF / instant-ngp / nerfstudio ``transforms.json`` (OpenGL camera axes,
  converted); each frame needs ``depth_file_path``.
* ``realestate10k_clip``: a RealEstate10K camera file (per line: timestamp in microseconds,
  normalised fx fy cx cy, two zeros, the 3x4 world-to-camera matrix row-major) plus folders of
  ``<timestamp>.png|jpg`` images and ``<timestamp>.npy|png`` depth maps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from worldfm_ros.errors import SceneError
from worldfm_ros.build.build_rgbd import read_sequence
from worldfm_ros.scene.checks import orthonormalize_pose
from worldfm_ros.scene.io import read_depth, read_image, require_file
from worldfm_ros.train.synthetic import Clip

log = logging.getLogger(__name__)

# OpenGL/NeRF camera axes (x right, y up, z backwards) -> OpenCV (x right, y down, z forward).
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def _clip_from_files(colors: list[Path], depths: list[Path], poses: list[np.ndarray], K: np.ndarray,
                     depth_scale: float | None, name: str) -> Clip:
    return _clip_from_arrays(colors, [read_image(c) for c in colors], depths,
                             [read_depth(d, depth_scale) for d in depths], poses, K, name)


def _clip_from_arrays(colors: list[Path], images: list[np.ndarray], depths: list[Path], maps: list[np.ndarray],
                      poses: list[np.ndarray], K: np.ndarray, name: str) -> Clip:
    h, w = images[0].shape[:2]
    for c, im, d, dm in zip(colors, images, depths, maps):
        if im.shape[:2] != (h, w):
            raise SceneError(f"{c}: image is {im.shape[1]}x{im.shape[0]}, the clip's first image is {w}x{h}")
        if dm.shape != (h, w):
            raise SceneError(f"{d}: depth is {dm.shape[1]}x{dm.shape[0]}, its image {c.name} is {w}x{h}")
    return Clip(np.stack(images), np.stack(maps).astype(np.float32), np.stack(poses), np.asarray(K, np.float64), name)


def rgbd_clips(root: str | Path, frames_per_clip: int = 16, frame_step: int = 1, K: np.ndarray | None = None,
               max_clips: int | None = None, max_frame: int | None = None,
               depth_registration: str = "auto") -> Iterator[Clip]:
    """Consecutive clips of ``frames_per_clip`` frames, ``frame_step`` apart, of a posed RGB-D folder.

    K: (3, 3) intrinsics, required for TUM folders (they carry none). max_frame: use only the
    frames with index < max_frame (file order), e.g. to keep the rest for validation.
    depth_registration: see ``read_sequence``. Clips are read lazily.
    """
    root = Path(root)
    seq = read_sequence(root, depth_registration=depth_registration)
    K = K if K is not None else seq.K
    if K is None:
        raise SceneError(f"{root}: no intrinsics in the folder ({seq.layout}); pass K")
    frames = seq.frames[:max_frame][::frame_step]
    count = len(frames) // frames_per_clip
    if count == 0:
        raise SceneError(f"{root}: {len(frames)} frames (step {frame_step}) are fewer than one clip of "
                         f"{frames_per_clip}")
    for k in range(count if max_clips is None else min(count, max_clips)):
        part = frames[k * frames_per_clip:(k + 1) * frames_per_clip]
        loaded = [seq.load(f, K=K) for f in part]  # depth registered to the colour camera
        yield _clip_from_arrays([f.color for f in part], [im for im, _ in loaded], [f.depth for f in part],
                                [d for _, d in loaded], [f.c2w for f in part], K, f"{root.name}_{k:03d}")


def nerf_clip(path: str | Path, depth_scale: float | None = None, max_frames: int | None = None) -> Clip:
    """All frames (at most ``max_frames``) of a ``transforms.json`` as one clip.

    Intrinsics: fl_x / fl_y / cx / cy / w / h, or camera_angle_x (principal point at the centre).
    Distortion coefficients are ignored (undistort the images first). depth_scale: metres per
    stored depth unit (default: ``read_depth``'s).
    """
    path = require_file(path, "transforms file")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SceneError(f"{path}: not valid JSON ({exc})") from None
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SceneError(f"{path}: 'frames': expected a non-empty list")
    frames = frames[:max_frames]
    colors, depths, poses = [], [], []
    for i, frame in enumerate(frames):
        where = f"{path}: frames[{i}]"
        if "depth_file_path" not in frame:
            raise SceneError(f"{where}: no 'depth_file_path' (the anchor is fused from depth; save one per frame)")
        colors.append(_nerf_file(path.parent, frame.get("file_path"), where, "file_path"))
        depths.append(_nerf_file(path.parent, frame["depth_file_path"], where, "depth_file_path"))
        m = np.asarray(frame.get("transform_matrix"), dtype=np.float64)
        if m.shape not in ((4, 4), (3, 4)):
            raise SceneError(f"{where}.transform_matrix: expected a 4x4 matrix, got shape {m.shape}")
        c2w = np.eye(4)
        c2w[: m.shape[0]] = m
        poses.append(orthonormalize_pose(c2w @ GL_TO_CV, f"{where}.transform_matrix"))
    if any(abs(float(meta.get(k, 0.0))) > 0 for k in ("k1", "k2", "k3", "p1", "p2")):
        log.warning("%s: distortion coefficients are ignored; the images are treated as pinhole", path)
    first = read_image(colors[0])
    K = _nerf_intrinsics(meta, first.shape[1], first.shape[0], path)
    return _clip_from_files(colors, depths, poses, K, depth_scale, path.parent.name)


def _nerf_file(folder: Path, value: object, where: str, key: str) -> Path:
    if not isinstance(value, str):
        raise SceneError(f"{where}.{key}: expected a file path, got {value!r}")
    p = folder / value
    if p.is_file():
        return p
    # instant-ngp and nerfstudio files often omit the image suffix
    for suffix in (".png", ".jpg", ".jpeg", ".npy"):
        if p.with_name(p.name + suffix).is_file():
            return p.with_name(p.name + suffix)
    raise SceneError(f"{where}.{key}: {p} not found")


def _nerf_intrinsics(meta: dict, width: int, height: int, path: Path) -> np.ndarray:
    w, h = float(meta.get("w", width)), float(meta.get("h", height))
    if (int(w), int(h)) != (width, height):
        raise SceneError(f"{path}: w, h = {int(w)}, {int(h)} but the images are {width}x{height}")
    if "fl_x" in meta:
        fx = float(meta["fl_x"])
        fy = float(meta.get("fl_y", fx))
    elif "camera_angle_x" in meta:
        fx = 0.5 * w / np.tan(0.5 * float(meta["camera_angle_x"]))
        fy = 0.5 * h / np.tan(0.5 * float(meta["camera_angle_y"])) if "camera_angle_y" in meta else fx
    else:
        raise SceneError(f"{path}: no intrinsics (expected fl_x/fl_y/cx/cy or camera_angle_x)")
    cx = float(meta.get("cx", (w - 1) / 2.0))
    cy = float(meta.get("cy", (h - 1) / 2.0))
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def realestate10k_clip(pose_file: str | Path, image_dir: str | Path, depth_dir: str | Path,
                       depth_scale: float | None = None, max_frames: int | None = None) -> Clip:
    """The frames of a RealEstate10K camera file whose image and depth exist, as one clip.

    Normalised intrinsics are scaled by each image's size; the world-to-camera matrices are
    inverted to camera-to-world (RealEstate10K cameras already use OpenCV axes).
    """
    pose_file = require_file(pose_file, "RealEstate10K camera file")
    image_dir, depth_dir = Path(image_dir), Path(depth_dir)
    colors, depths, poses, Ks = [], [], [], []
    lines = pose_file.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) != 19:
            if n == 1 and len(parts) <= 1:  # the first line holds the video URL
                continue
            raise SceneError(f"{pose_file}: line {n}: expected 19 numbers (timestamp, fx fy cx cy, 2 zeros, "
                             f"3x4 matrix), got {len(parts)}")
        try:
            values = np.array(parts[1:], dtype=np.float64)
        except ValueError:
            raise SceneError(f"{pose_file}: line {n}: expected numbers") from None
        stem = parts[0]
        color = next((image_dir / f"{stem}{s}" for s in (".png", ".jpg") if (image_dir / f"{stem}{s}").is_file()), None)
        depth = next((depth_dir / f"{stem}{s}" for s in (".npy", ".png") if (depth_dir / f"{stem}{s}").is_file()), None)
        if color is None or depth is None:
            continue
        w2c = np.eye(4)
        w2c[:3] = values[6:].reshape(3, 4)
        poses.append(orthonormalize_pose(np.linalg.inv(w2c), f"{pose_file}: line {n}"))
        colors.append(color)
        depths.append(depth)
        Ks.append(values[:4])
        if max_frames is not None and len(colors) >= max_frames:
            break
    if not colors:
        raise SceneError(f"{pose_file}: no frame has both an image in {image_dir} and a depth map in {depth_dir}")
    h, w = read_image(colors[0]).shape[:2]
    fx, fy, cx, cy = Ks[0]
    K = np.array([[fx * w, 0.0, cx * w - 0.5], [0.0, fy * h, cy * h - 0.5], [0.0, 0.0, 1.0]])
    return _clip_from_files(colors, depths, poses, K, depth_scale, pose_file.stem)
