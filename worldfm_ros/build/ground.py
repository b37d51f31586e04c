"""Ground-plane alignment: the scene→map transform that puts the floor on the map's xy-plane.

Map frame (REP-103): z up, floor at z = 0, +x along the first keyframe's viewing
direction projected onto the floor, origin below the first keyframe's camera
(below the cloud's centroid when there are no keyframes).

Up direction: when the source knows gravity (a panorama or the official WorldFM
world, whose +Y points down) it is given and kept fixed, and only the floor height
is measured. Otherwise the cameras' average "up" (-y of their OpenCV axes) serves
as a hint and the floor plane's normal becomes up.

The floor is found with RANSAC (open3d ``segment_plane``), peeling off up to
``max_planes`` planes. A plane is a floor candidate when its normal lies within
``max_tilt_deg`` of the up hint (walls are not), it lies below the cameras (ceilings
do not) and almost nothing lies below it (table tops and seats have the floor under
them). Of the candidates the best supported (most inliers) wins. Without any, the
floor is put at the 1st percentile of point heights along the best horizontal
plane's normal (or the hint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from worldfm_ros.errors import SceneError

#: "up" of an OpenCV-style world whose +Y points down (the official WorldFM/panorama world)
OPENCV_WORLD_UP = np.array([0.0, -1.0, 0.0])

_AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class GroundAlignment:
    """Result of :func:`align_ground`.

    map_T_scene: (4, 4) rigid transform, scene frame → map frame.
    up: (3,) unit up direction in the scene frame.
    floor_height: height of the floor along ``up`` in the scene frame, metres.
    method: "plane" (RANSAC floor found) or "percentile" (no floor plane: the floor is
        put at the 1st percentile of point heights).
    inliers: number of floor inliers in the sample the plane was fitted on (0 for "percentile").
    """

    map_T_scene: np.ndarray
    up: np.ndarray
    floor_height: float
    method: str
    inliers: int


def parse_axis(spec: str) -> np.ndarray:
    """A signed axis such as "+z" or "-y" as a (3,) unit vector."""
    s = spec.strip().lower()
    if len(s) != 2 or s[0] not in "+-" or s[1] not in _AXES:
        raise SceneError(f"up axis: expected one of +x -x +y -y +z -z, got {spec!r}")
    v = np.zeros(3)
    v[_AXES[s[1]]] = 1.0 if s[0] == "+" else -1.0
    return v


def camera_up(c2ws: Sequence[np.ndarray]) -> np.ndarray:
    """Mean "up" (-y of the OpenCV camera axes) of camera-to-world poses, unit (3,)."""
    ups = np.array([-np.asarray(T)[:3, 1] for T in c2ws])
    mean = ups.sum(axis=0)
    norm = np.linalg.norm(mean)
    if norm < 1e-9:
        raise SceneError("ground alignment: the cameras' up directions cancel out; give the up axis explicitly")
    return mean / norm


def align_ground(
    points: np.ndarray,
    c2ws: Sequence[np.ndarray] = (),
    gravity_up: np.ndarray | None = None,
    max_tilt_deg: float | None = None,
    distance_threshold: float = 0.02,
    max_planes: int = 6,
    sample: int = 30_000,
    seed: int = 0,
) -> GroundAlignment:
    """Find the floor and build map_T_scene.

    points: (N, 3) scene-frame positions, metres.
    c2ws: keyframe camera-to-scene poses (OpenCV axes); the first one sets map +x and
        the map origin, all of them the up hint when ``gravity_up`` is None.
    gravity_up: known (3,) up direction in the scene frame; kept exactly.
    max_tilt_deg: largest angle between a floor candidate's normal and the up hint
        (default 40° for a camera hint, which tolerates cameras pitched down
        by up to ~40°; 10° for known gravity).
    distance_threshold: RANSAC inlier distance, metres.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3:
        raise SceneError(f"ground alignment: need at least 3 points, got {len(points)}")
    if gravity_up is not None:
        hint = np.asarray(gravity_up, dtype=np.float64)
        hint = hint / np.linalg.norm(hint)
    elif len(c2ws):
        hint = camera_up(c2ws)
    else:
        raise SceneError("ground alignment: no keyframes to tell which way is up; give the up axis explicitly")
    tilt = max_tilt_deg if max_tilt_deg is not None else (10.0 if gravity_up is not None else 40.0)
    centres = np.array([np.asarray(T)[:3, 3] for T in c2ws]) if len(c2ws) else None

    rng = np.random.default_rng(seed)
    subset = points if len(points) <= sample else points[rng.choice(len(points), sample, replace=False)]
    floor, horizontal = _find_floor(subset, hint, tilt, centres, distance_threshold, max_planes, seed)
    if floor is None:
        up = hint if gravity_up is not None or horizontal is None else horizontal
        height = float(np.percentile(points @ up, 1.0))
        method, inliers = "percentile", 0
    else:
        normal, inlier_points = floor
        up = hint if gravity_up is not None else normal
        height = float(np.median(inlier_points @ up))
        method, inliers = "plane", len(inlier_points)

    if centres is not None:
        T0 = np.asarray(c2ws[0], dtype=np.float64)
        anchor = T0[:3, 3]
        forward = _horizontal(T0[:3, 2], up)
        if forward is None:  # looking straight down or up: image-up is the way ahead
            forward = _horizontal(-T0[:3, 1], up)
    else:
        anchor = points.mean(axis=0)
        forward = None
    if forward is None:
        forward = _horizontal(np.eye(3)[int(np.argmin(np.abs(up)))], up)
    left = np.cross(up, forward)
    R = np.stack([forward, left, up])  # rows: map axes in scene coordinates
    origin = anchor - (anchor @ up - height) * up  # foot of the anchor on the floor
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -R @ origin
    return GroundAlignment(T, up, height, method, inliers)


def _horizontal(v: np.ndarray, up: np.ndarray) -> np.ndarray | None:
    """``v`` projected onto the plane normal to ``up``, unit; None when nearly parallel to up."""
    h = v - (v @ up) * up
    n = np.linalg.norm(h)
    return h / n if n > 1e-3 else None


def _find_floor(
    points: np.ndarray,
    hint: np.ndarray,
    max_tilt_deg: float,
    centres: np.ndarray | None,
    distance_threshold: float,
    max_planes: int,
    seed: int,
    max_below: float = 0.02,
) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray | None]:
    """((unit normal pointing up, inlier points) of the floor or None, normal of the largest
    horizontal plane or None). ``max_below``: largest share of points below a floor."""
    import open3d as o3d

    o3d.utility.random.seed(seed)
    cos_tilt = np.cos(np.radians(max_tilt_deg))
    min_inliers = max(50, int(0.01 * len(points)))
    remaining = points
    floors: list[tuple[np.ndarray, np.ndarray]] = []
    horizontal = None
    for _ in range(max_planes):
        if len(remaining) < min_inliers:
            break
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(remaining))
        model, idx = cloud.segment_plane(distance_threshold, 3, 1000)
        if len(idx) < min_inliers:
            break
        normal = np.asarray(model[:3], dtype=np.float64)
        normal /= np.linalg.norm(normal)
        if normal @ hint < 0:
            normal = -normal
        inliers = remaining[idx]
        mask = np.ones(len(remaining), dtype=bool)
        mask[idx] = False
        remaining = remaining[mask]
        if normal @ hint < cos_tilt:
            continue
        horizontal = normal if horizontal is None else horizontal
        level = float(np.median(inliers @ normal))
        if centres is not None and np.mean(centres @ normal) <= level:
            continue  # a ceiling or a shelf above the cameras
        if np.mean(points @ normal < level - 3.0 * distance_threshold) <= max_below:
            floors.append((normal, inliers))
    if not floors:
        return None, horizontal
    return max(floors, key=lambda f: len(f[1])), horizontal
