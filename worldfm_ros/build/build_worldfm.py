"""Scene from the official WorldFM ``meta.json`` and a depth map of its input image.

meta.json (the release's input): ``name``; ``image`` (path relative to the file);
``K`` 3x3 in pixels for the 512×512 render canvas; ``c2w`` one 4x4 or a list of 4x4
camera-to-world matrices, OpenCV camera axes, in the release's panorama world
(origin at the panorama centre, +X = the input image's viewing direction, +Y down,
+Z to the left; see :mod:`worldfm_ros.build.build_panorama`).

Where the image is back-projected: at the pose the release gives the input image,
the yaw 0 / pitch 0 view at the origin looking along +X, with the release's paste
field of view (80° across the image's longer side). Not at the identity, which in
this world looks along +Z, 90° left of the content, and not at the first c2w, which
is a trajectory pose that need not look at the content at all. This keeps the
release's poses valid in our scene: a meta.json trajectory renders the same view of
the image here as in the release. The image becomes the single keyframe, with its
depth (z-depth along its optical axis, same size as the image).
Gravity is known (−Y is up): map_T_scene is the fixed rotation, floor from the cloud.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import SceneError
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.build.assemble import DEFAULT_MAX_POINTS
from worldfm_ros.build.build_image import image_scene, read_image_depth
from worldfm_ros.build.build_panorama import reference_pose
from worldfm_ros.scene.checks import check_K_for_size, check_rigid
from worldfm_ros.scene.io import read_image, read_json_object, require_file

#: the release's render canvas (K in meta.json describes it)
RENDER_CANVAS = 512
#: field of view across the longer image side with which the release pastes the input image
PASTE_FOV_DEG = 80.0


@dataclass(frozen=True)
class WorldFMMeta:
    """Contents of a release meta.json.

    image: path of the input image. K: (3, 3) intrinsics of the 512×512 render canvas,
    pixels. c2w: (N, 4, 4) camera-to-world trajectory, OpenCV axes, release world frame.
    """

    name: str
    image: Path
    K: np.ndarray
    c2w: np.ndarray


def read_worldfm_meta(path: str | os.PathLike) -> WorldFMMeta:
    """Parse and validate a release meta.json (four required keys: name, image, K, c2w)."""
    path = require_file(path, "meta.json")
    doc = read_json_object(path)
    for key in ("name", "image", "K", "c2w"):
        if key not in doc:
            raise SceneError(f"{path}: missing field '{key}'")
    try:
        K = np.array(doc["K"], dtype=np.float64)
        c2w = np.array(doc["c2w"], dtype=np.float64)
    except (TypeError, ValueError):
        raise SceneError(f"{path}: fields 'K' and 'c2w' must be numeric matrices") from None
    K = check_K_for_size(K, RENDER_CANVAS, RENDER_CANVAS, f"{path}: K")
    if c2w.ndim == 2:
        c2w = c2w[None]
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or len(c2w) == 0:
        raise SceneError(f"{path}: field 'c2w' must be a 4x4 matrix or a list of them, got shape {c2w.shape}")
    c2w = np.stack([check_rigid(T, f"{path}: c2w[{i}]") for i, T in enumerate(c2w)])
    return WorldFMMeta(str(doc["name"]), path.parent / str(doc["image"]), K, c2w)


def input_view_intrinsics(width: int, height: int, fov_deg: float = PASTE_FOV_DEG) -> np.ndarray:
    """(3, 3) K of the input image: ``fov_deg`` across its longer side, square pixels, centred."""
    f = (max(width, height) / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return PinholeCamera(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0).K


def build_worldfm(
    meta_path: str | os.PathLike,
    depth_path: str | os.PathLike,
    depth_scale: float | None = None,
    fov_deg: float = PASTE_FOV_DEG,
    max_depth: float | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    up: str = "auto",
    plane_threshold: float = 0.02,
    name: str | None = None,
) -> SceneAnchor:
    """Scene in the release's world frame from meta.json's image and its z-depth map.

    fov_deg: field of view across the image's longer side (the release pastes at 80°).
    up: "auto" = gravity known (−y of the release world); see finish_scene.
    """
    meta = read_worldfm_meta(meta_path)
    image = read_image(meta.image)
    depth = read_image_depth(depth_path, depth_scale, image, meta.image)
    K = input_view_intrinsics(image.shape[1], image.shape[0], fov_deg)
    return image_scene(image, depth, K, meta.image.stem, name or meta.name, str(depth_path), max_depth, max_points,
                       up, plane_threshold, c2w=reference_pose(0.0, 0.0), default_up="-y")
