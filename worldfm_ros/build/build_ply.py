"""Scene from a PLY point cloud, with optional keyframes listed in a YAML/JSON file.

Keyframe list (YAML or JSON; paths relative to the list file)::

    keyframes:
      - image: views/0000.png          # RGB image
        K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]   # or  hfov_deg: 60
        c2w: [[...], [...], [...], [...]]          # 4x4 camera-to-scene, OpenCV axes, metres
        depth: views/0000_depth.npy    # optional z-depth (units: see read_depth)
        depth_scale: 0.001             # optional, metres per stored unit
        name: front                    # optional, default: the image's stem

A bare list of such entries is accepted too. The cloud's own frame is the scene frame.
Up: with keyframes, the floor is searched with their average up as a hint; without,
``up`` "auto" assumes the cloud is z-up (most PLY tools' convention).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from worldfm_ros.errors import SceneError
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.build.assemble import DEFAULT_MAX_POINTS, finish_scene
from worldfm_ros.build.build_image import image_intrinsics
from worldfm_ros.scene.checks import check_rigid
from worldfm_ros.scene.io import read_depth, read_image, read_ply, require_file


def read_keyframe_list(path: str | os.PathLike) -> list[Keyframe]:
    """Keyframes from a YAML/JSON list file (format: module docstring)."""
    import yaml

    path = require_file(path, "keyframe list")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SceneError(f"{path}: invalid YAML/JSON ({str(exc).splitlines()[0]})") from None
    entries = doc.get("keyframes") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise SceneError(f"{path}: expected a list of keyframes (or a mapping with 'keyframes')")
    return [_keyframe_entry(e, i, path) for i, e in enumerate(entries)]


def _keyframe_entry(entry: Any, i: int, path: Path) -> Keyframe:
    where = f"{path}: keyframes[{i}]"
    if not isinstance(entry, dict) or "image" not in entry or "c2w" not in entry:
        raise SceneError(f"{where}: needs 'image' and 'c2w' (and 'K' or 'hfov_deg')")
    image_path = path.parent / str(entry["image"])
    image = read_image(image_path)
    h, w = image.shape[:2]
    try:
        K = np.array(entry["K"], dtype=np.float64) if "K" in entry else None
        hfov = float(entry["hfov_deg"]) if "hfov_deg" in entry else None
        c2w = np.array(entry["c2w"], dtype=np.float64)
    except (TypeError, ValueError):
        raise SceneError(f"{where}: K, hfov_deg and c2w must be numbers") from None
    K = image_intrinsics(w, h, K, hfov, where)
    c2w = check_rigid(c2w, f"{where}.c2w")
    depth = None
    if entry.get("depth") is not None:
        depth_path = path.parent / str(entry["depth"])
        scale = entry.get("depth_scale")
        depth = read_depth(depth_path, None if scale is None else float(scale))
        if depth.shape != (h, w):
            raise SceneError(f"{depth_path}: depth is {depth.shape[1]}x{depth.shape[0]}, image is {w}x{h}")
    return Keyframe(image, K, c2w, depth, str(entry.get("name", image_path.stem)))


def build_ply(
    ply_path: str | os.PathLike,
    keyframes_path: str | os.PathLike | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    up: str = "auto",
    plane_threshold: float = 0.02,
    name: str | None = None,
) -> SceneAnchor:
    """A scene from a PLY cloud (x y z + optional colours) and optional keyframes.

    up: "auto" = the keyframes' average up refined by the floor plane, or "+z" when
        there are no keyframes; see :func:`worldfm_ros.build.assemble.finish_scene`.
    """
    ply_path = Path(ply_path)
    points, colors = read_ply(ply_path)
    keyframes = read_keyframe_list(keyframes_path) if keyframes_path is not None else []
    return finish_scene(points, colors, keyframes, name or ply_path.stem, str(ply_path),
                        max_points, up, "camera" if keyframes else "+z", plane_threshold)
