"""The steps every scene builder ends with: keyframe choice, point budget, ground alignment."""

from __future__ import annotations

import logging

import numpy as np

from worldfm_ros.errors import SceneError
from worldfm_ros.render.cloud import check_points
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.scene.downsample import downsample_to_budget
from worldfm_ros.build.ground import align_ground, parse_axis

log = logging.getLogger(__name__)

#: default point budget of a built scene
DEFAULT_MAX_POINTS = 2_000_000

#: values of a builder's ``up`` argument besides a signed axis ("+z", "-y", …)
UP_CHOICES = ("auto", "camera", "none")


def pick_keyframes(num_frames: int, count: int | None = None, every: int | None = None) -> list[int]:
    """Indices of the frames that become keyframes.

    every: every ``every``-th frame starting at 0 (wins when given); count: ``count``
    frames evenly spaced from the first to the last (all of them when fewer exist).
    """
    if num_frames <= 0:
        return []
    if every is not None:
        if every < 1:
            raise SceneError(f"keyframe_every: must be >= 1, got {every}")
        return list(range(0, num_frames, every))
    if count is None or count >= num_frames:
        return list(range(num_frames))
    if count < 1:
        raise SceneError(f"num_keyframes: must be >= 1, got {count}")
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, count)})


def finish_scene(
    points: np.ndarray,
    colors: np.ndarray,
    keyframes: list[Keyframe],
    name: str,
    source: str,
    max_points: int = DEFAULT_MAX_POINTS,
    up: str = "auto",
    default_up: str = "camera",
    plane_threshold: float = 0.02,
) -> SceneAnchor:
    """Downsample to ``max_points`` and align the ground; returns the scene anchor.

    points: (N, 3) scene frame, metres; colors: (N, 3) uint8; source: the input's
    name for error messages.
    up: "camera" (cameras' average up as a hint, floor normal becomes up), a signed
        scene axis such as "-y" (known gravity, kept exactly), "none" (map_T_scene =
        identity: the scene frame already is the map frame), or "auto" = ``default_up``.
    plane_threshold: RANSAC floor inlier distance, metres.
    """
    if len(points) == 0:
        raise SceneError(f"{source}: the point cloud is empty (no valid depth or points)")
    points, colors = check_points(points, colors, source)
    points, colors, voxel = downsample_to_budget(points, colors, max_points)
    if voxel > 0:
        log.info("downsampled to %d points with %.4f m voxels", len(points), voxel)
    mode = default_up if up == "auto" else up
    if mode == "none":
        map_T_scene = np.eye(4)
    else:
        c2ws = [kf.c2w for kf in keyframes]
        gravity = None if mode == "camera" else parse_axis(mode)
        ground = align_ground(points, c2ws, gravity_up=gravity, distance_threshold=plane_threshold)
        log.info("ground: %s (%d inliers), up in scene frame %s", ground.method, ground.inliers,
                 np.array2string(ground.up, precision=3))
        map_T_scene = ground.map_T_scene
    return SceneAnchor(points, colors, map_T_scene, keyframes, name)
