"""Scene from an equirectangular panorama and its per-pixel ray distance.

World frame (the official WorldFM release's, so its meta.json poses work here): origin
at the panorama centre, OpenCV-style axes: +X = the panorama's centre column (yaw 0,
pitch 0), +Y = down, +Z = 90° to the left (column W/4); -Z is to the right.

Angles of pixel (x, y) of a W×H panorama use the pixel's left/top edge, as the release
does: θ = 2π·x/W − π, φ = π·y/H, and the point at ray distance r is
r·(sin φ cos θ, −cos φ, −sin φ sin θ).

Reference keyframes are perspective crops resampled from the panorama (bilinear,
horizontal wrap-around) at the release's (yaw, pitch) camera poses, all at the
origin: positive yaw turns right (toward −Z), positive pitch looks up. Their depth is
the distance map sampled (nearest) along each pixel ray and converted to z-depth.
Gravity is known (−Y is up), so map_T_scene is that fixed rotation with the floor
height measured from the cloud.

``profile="release"`` builds what the released pipeline builds instead (spec §3.1-§3.3): the
panorama and its distance map resized (bilinear) to the 4096×2048 tier (8192×4096 from
6000 px wide), missing distances set to the largest one, one point per pixel (8.4 M, no
point budget), and the 42 reference views (5 pitches × 8 yaws, then straight up and down)
sampled at 504×504 with f = 320 px and resized to 512×512 bilinearly; their K is the
release's rescaled one (f·512/504, c·512/504) and their depth is left to be rendered from
the cloud, as the release's selection does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import SceneError
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.build.assemble import DEFAULT_MAX_POINTS, finish_scene
from worldfm_ros.build.backproject import pixel_rays
from worldfm_ros.scene.io import read_depth, read_image

#: the release's world ↔ its Y-up "GL" world (and GL ↔ OpenCV camera axes)
FLIP_YZ = np.diag([1.0, -1.0, -1.0])
#: the release's reference crops: 504×504, f = 320 px → this horizontal FOV
RELEASE_CROP_FOV_DEG = 2.0 * math.degrees(math.atan(252.0 / 320.0))
DEFAULT_YAWS = (0.0, 45.0, 90.0, 135.0, 180.0, -135.0, -90.0, -45.0)
DEFAULT_PITCHES = (0.0, 30.0, -30.0)
#: the release's reference views: index 8 p + y over these pitches and yaws, then the poles
RELEASE_PITCHES = (0.0, 45.0, -45.0, 30.0, -30.0)
RELEASE_VIEWS = tuple((y, p) for p in RELEASE_PITCHES for y in DEFAULT_YAWS) + ((0.0, 90.0), (0.0, -90.0))
#: the release's reference crops: side, focal length (pixels), and the side they are resized to
RELEASE_CROP, RELEASE_CROP_F, RELEASE_VIEW_SIZE = 504, 320.0, 512


def panorama_directions(width: int, height: int, stride: int = 1) -> np.ndarray:
    """Unit ray directions (H', W', 3) in the panorama world for pixels (x, y) = (0, stride, …)."""
    x = np.arange(0, width, stride, dtype=np.float64)
    y = np.arange(0, height, stride, dtype=np.float64)
    theta = 2.0 * np.pi * x / width - np.pi  # (W',)
    phi = np.pi * y / height  # (H',)
    d = np.empty((len(y), len(x), 3))
    d[..., 0] = np.sin(phi)[:, None] * np.cos(theta)[None, :]
    d[..., 1] = -np.cos(phi)[:, None]
    d[..., 2] = -np.sin(phi)[:, None] * np.sin(theta)[None, :]
    return d


def panorama_points(
    panorama: np.ndarray, distance: np.ndarray, stride: int = 1, max_distance: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) float32 in the panorama world and colours (N, 3) uint8, one per valid pixel.

    panorama: (H, W, 3) uint8 RGB; distance: (H, W) ray distance in metres, 0 = no data.
    """
    h, w = distance.shape
    r = distance[::stride, ::stride].astype(np.float64)
    valid = np.isfinite(r) & (r > 0)
    if max_distance is not None:
        valid &= r <= max_distance
    dirs = panorama_directions(w, h, stride)[valid]  # (N, 3)
    points = (dirs * r[valid][:, None]).astype(np.float32)
    return points, np.ascontiguousarray(panorama[::stride, ::stride][valid])


def reference_pose(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(4, 4) camera-to-world of the release's reference crop at (yaw, pitch), at the origin.

    Built like the release: Y-up basis f = (cos y cos p, sin p, sin y cos p),
    r = f × (0, 1, 0) normalised ((0, 0, 1) at the poles), u = r × f, GL c2w columns
    (r, u, −f), then flipped to OpenCV world and camera axes.
    """
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    f = np.array([math.cos(yaw) * math.cos(pitch), math.sin(pitch), math.sin(yaw) * math.cos(pitch)])
    r = np.cross(f, [0.0, 1.0, 0.0])
    n = np.linalg.norm(r)
    r = r / n if n > 1e-6 else np.array([0.0, 0.0, 1.0])
    u = np.cross(r, f)
    c2w = np.eye(4)
    c2w[:3, :3] = FLIP_YZ @ np.stack([r, u, -f], axis=1) @ FLIP_YZ
    return c2w


def render_crop(
    panorama: np.ndarray, distance: np.ndarray | None, K: np.ndarray, c2w: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """A perspective view of the panorama from its centre.

    K: (3, 3) intrinsics of the crop in pixels; c2w: (4, 4) camera-to-world at the origin
    (only the rotation is used). Returns the (height, width, 3) uint8 image, bilinear, and,
    when ``distance`` is given, the (height, width) float32 z-depth in metres (nearest
    sample of the distance map divided by the ray length).
    """
    import cv2

    ph, pw = panorama.shape[:2]
    rays = pixel_rays(K, width, height)  # (h, w, 3), unit z
    world = rays @ np.asarray(c2w, dtype=np.float64)[:3, :3].T  # (h, w, 3)
    gl = world * np.diag(FLIP_YZ)
    theta = np.arctan2(gl[..., 2], gl[..., 0])
    phi = np.arccos(np.clip(gl[..., 1] / np.linalg.norm(gl, axis=-1), -1.0, 1.0))
    map_x = np.mod((theta + np.pi) / (2.0 * np.pi) * pw, pw).astype(np.float32)
    map_y = np.clip(phi / np.pi * ph, 0.0, ph - 1).astype(np.float32)
    # one wrapped column on the right so bilinear samples between column W-1 and column 0
    wrapped = np.concatenate([panorama, panorama[:, :1]], axis=1)
    image = cv2.remap(wrapped, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    z = None
    if distance is not None:
        ix = np.mod(np.rint(map_x).astype(np.int64), pw)
        iy = np.clip(np.rint(map_y).astype(np.int64), 0, ph - 1)
        z = (distance[iy, ix] / np.linalg.norm(rays, axis=-1)).astype(np.float32)
    return image, z


def build_panorama(
    panorama_path: str | os.PathLike,
    distance_path: str | os.PathLike,
    depth_scale: float | None = None,
    stride: int = 1,
    max_distance: float | None = None,
    crop_size: int = 512,
    crop_fov_deg: float = RELEASE_CROP_FOV_DEG,
    yaws: Sequence[float] = DEFAULT_YAWS,
    pitches: Sequence[float] = DEFAULT_PITCHES,
    max_points: int = DEFAULT_MAX_POINTS,
    up: str = "auto",
    plane_threshold: float = 0.02,
    name: str | None = None,
    profile: str = "default",
) -> SceneAnchor:
    """Scene from an equirectangular panorama + ray-distance map, with perspective keyframes.

    distance_path: (H, W) ray distance per panorama pixel (units: see read_depth; 0 = none).
    stride: use every ``stride``-th panorama pixel for the cloud.
    max_distance: drop points farther than this (e.g. a sky shell), metres.
    crop_size, crop_fov_deg: square keyframe size in pixels and horizontal FOV.
    yaws, pitches: keyframe angles in degrees; one keyframe per (pitch, yaw), pitch-major,
        the release's order.
    up: "auto" = gravity known (-y of the panorama world); see finish_scene.
    profile: "default" or "release" (see the module docstring; stride, max_distance,
        crop_size, crop_fov_deg, yaws, pitches and max_points are then the release's).
    """
    panorama_path = Path(panorama_path)
    panorama = read_image(panorama_path)
    ph, pw = panorama.shape[:2]
    distance = read_depth(distance_path, depth_scale)
    if distance.shape != (ph, pw):
        raise SceneError(f"{distance_path}: distance map is {distance.shape[1]}x{distance.shape[0]}, "
                         f"panorama {panorama_path.name} is {pw}x{ph}")
    if pw != 2 * ph:
        raise SceneError(f"{panorama_path}: an equirectangular panorama is 2:1, got {pw}x{ph}")
    if profile == "release":
        return _release_scene(panorama, distance, name or panorama_path.stem, str(distance_path), up,
                              plane_threshold)
    if profile != "default":
        raise SceneError(f"profile: expected 'default' or 'release', got {profile!r}")
    points, colors = panorama_points(panorama, distance, stride, max_distance)
    K = PinholeCamera.from_fov(crop_size, crop_size, crop_fov_deg).K
    keyframes = []
    for pitch in pitches:
        for yaw in yaws:
            c2w = reference_pose(yaw, pitch)
            image, z = render_crop(panorama, distance, K, c2w, crop_size, crop_size)
            keyframes.append(Keyframe(image, K, c2w, z, f"yaw{yaw:+.0f}_pitch{pitch:+.0f}"))
    return finish_scene(points, colors, keyframes, name or panorama_path.stem, str(distance_path),
                        max_points, up, "-y", plane_threshold)


def release_panorama(panorama: np.ndarray, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The release's resolution tier: (H, W, 3) uint8 and (H, W) metres resized (bilinear) to
    4096×2048, or 8192×4096 from 6000 px wide, with missing distances set to the largest one."""
    import cv2

    size = (4096, 2048) if panorama.shape[1] < 6000 else (8192, 4096)
    valid = np.isfinite(distance) & (distance > 0)
    if not valid.any():
        raise SceneError("distance map: no valid distance")
    filled = np.where(valid, distance, distance[valid].max()).astype(np.float32)
    if panorama.shape[1::-1] != size:
        panorama = cv2.resize(panorama, size, interpolation=cv2.INTER_LINEAR)
        filled = cv2.resize(filled, size, interpolation=cv2.INTER_LINEAR)
    return panorama, filled


def release_keyframes(panorama: np.ndarray) -> list[Keyframe]:
    """The release's 42 reference views of a panorama: 504² crops (f = 320 px) resized to 512²
    bilinearly, K rescaled as the release does (f·512/504, c·512/504), no stored depth."""
    import cv2

    c = RELEASE_CROP / 2.0
    K504 = np.array([[RELEASE_CROP_F, 0.0, c], [0.0, RELEASE_CROP_F, c], [0.0, 0.0, 1.0]])
    K = K504.copy()
    K[:2] *= RELEASE_VIEW_SIZE / RELEASE_CROP
    keyframes = []
    for yaw, pitch in RELEASE_VIEWS:
        c2w = reference_pose(yaw, pitch)
        crop, _ = render_crop(panorama, None, K504, c2w, RELEASE_CROP, RELEASE_CROP)
        image = cv2.resize(crop, (RELEASE_VIEW_SIZE, RELEASE_VIEW_SIZE), interpolation=cv2.INTER_LINEAR)
        keyframes.append(Keyframe(image, K, c2w, None, f"yaw{yaw:+.0f}_pitch{pitch:+.0f}"))
    return keyframes


def _release_scene(panorama: np.ndarray, distance: np.ndarray, name: str, source: str, up: str,
                   plane_threshold: float) -> SceneAnchor:
    panorama, distance = release_panorama(panorama, distance)
    points, colors = panorama_points(panorama, distance)
    return finish_scene(points, colors, release_keyframes(panorama), name, source, len(points), up, "-y",
                        plane_threshold)
