"""Scene from one RGB image and its depth map.

The camera sits at the scene origin with identity pose (scene frame = the camera's
OpenCV frame: x right, y down, z forward); the image becomes the only keyframe.
The depth map holds z-depth (see :func:`worldfm_ros.scene.io.read_depth` for units).
No gravity is known: the floor is searched with the camera's up (-y) as a hint, so
a level photo that shows the floor gets it at z = 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import SceneError
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.build.assemble import DEFAULT_MAX_POINTS, finish_scene
from worldfm_ros.build.backproject import backproject_depth
from worldfm_ros.scene.checks import check_K_for_size
from worldfm_ros.scene.io import read_depth, read_image


def image_intrinsics(width: int, height: int, K: np.ndarray | None, hfov_deg: float | None, where: str) -> np.ndarray:
    """K for an image: the given (3, 3) K (checked against the size), or one from a horizontal FOV
    in degrees (square pixels, centred principal point)."""
    if (K is None) == (hfov_deg is None):
        raise SceneError(f"{where}: give exactly one of K or a horizontal field of view")
    if K is not None:
        return check_K_for_size(K, width, height, f"{where}: K")
    return PinholeCamera.from_fov(width, height, float(hfov_deg)).K


def build_image(
    image_path: str | os.PathLike,
    depth_path: str | os.PathLike,
    K: np.ndarray | None = None,
    hfov_deg: float | None = None,
    depth_scale: float | None = None,
    max_depth: float | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    up: str = "auto",
    plane_threshold: float = 0.02,
    name: str | None = None,
) -> SceneAnchor:
    """Back-project one image at the identity pose into a scene with one keyframe.

    K: (3, 3) intrinsics in pixels for the image's size, or hfov_deg: horizontal FOV.
    depth_scale: metres per stored depth unit (default: mm for integer maps, m for float).
    max_depth: drop points beyond this many metres (e.g. sky at a depth model's far limit).
    up, plane_threshold, max_points: see :func:`worldfm_ros.build.assemble.finish_scene`
        (``up`` "auto" = the camera's up refined by the floor plane).
    """
    image_path = Path(image_path)
    image = read_image(image_path)
    h, w = image.shape[:2]
    K = image_intrinsics(w, h, K, hfov_deg, str(image_path))
    depth = read_image_depth(depth_path, depth_scale, image, image_path)
    return image_scene(image, depth, K, image_path.stem, name or image_path.stem, str(depth_path), max_depth,
                       max_points, up, plane_threshold)


def read_image_depth(depth_path: str | os.PathLike, depth_scale: float | None, image: np.ndarray,
                     image_path: Path) -> np.ndarray:
    """The (H, W) z-depth map in metres of ``image`` (read from ``image_path``); SceneError naming both
    files when the sizes differ."""
    h, w = image.shape[:2]
    depth = read_depth(depth_path, depth_scale)
    if depth.shape != (h, w):
        raise SceneError(f"{depth_path}: depth is {depth.shape[1]}x{depth.shape[0]}, image {image_path.name} is {w}x{h}")
    return depth


def image_scene(image: np.ndarray, depth: np.ndarray, K: np.ndarray, keyframe_name: str, name: str, source: str,
                max_depth: float | None = None, max_points: int = DEFAULT_MAX_POINTS, up: str = "auto",
                plane_threshold: float = 0.02, c2w: np.ndarray | None = None,
                default_up: str = "camera") -> SceneAnchor:
    """The one-keyframe scene of an (H, W, 3) uint8 RGB image and its (H, W) z-depth in metres.

    K: (3, 3) pixels; c2w: (4, 4) camera-to-scene pose of the image (None = the identity: the scene
    frame is the camera's); source names the input in errors; default_up: what ``up`` "auto"
    means (see :func:`worldfm_ros.build.assemble.finish_scene`; the others as in :func:`build_image`).
    """
    c2w = np.eye(4) if c2w is None else c2w
    points, colors = backproject_depth(depth, K, c2w, image, max_depth=max_depth)
    keyframe = Keyframe(image, K, c2w, depth, keyframe_name)
    return finish_scene(points, colors, [keyframe], name, source, max_points, up, default_up, plane_threshold)
