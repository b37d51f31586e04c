"""Splat worlds from a Gaussian-splat file or from a point-cloud scene.

From a file (``.ply``, ``.compressed.ply``, ``.spz``, ``.splat``; ``scene.splat_io``): the
Gaussians keep the file's frame as the scene frame, scaled by ``scale`` to metres. ``up`` names the
file's up axis in it; the presets of ``FRAMES`` say it for the usual exporters:

* ``opencv`` (``-y``): COLMAP / INRIA 3DGS, gsplat's and most reconstruction tools' PLY, ``.splat``;
* ``rub`` (``+y``): SPZ's right-up-back axes (Scaniverse, Polycam, Niantic);
* ``zup`` (``+z``): already z-up, as nerfstudio and many viewers' exports;
* ``upside-down`` (``+y`` on OpenCV-style data): exporters such as World Labs Marble whose PLY comes
  out upside down in OpenCV-based viewers.

The floor is then found as the lowest horizontal plane of the opaque surfaces (``build.ground``)
and becomes the map's z = 0. Keyframes (the frame model's references) are rendered from the
splats at ``num_keyframes`` yaws around the room's centre at ``camera_height``. A warning says when
the result looks upside down (most surface above mid-height, or the cameras below the floor).

From a point-cloud scene (a folder or .npz): every point becomes a flat Gaussian disc on the
surface (normal from its neighbours, open3d), one point spacing wide, so the holes between points
close; frame and keyframes are the scene's own.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from worldfm_ros.camera import PinholeCamera, invert_pose
from worldfm_ros.errors import SceneError
from worldfm_ros.render.gaussians import SH_C0, Gaussians, make_gaussians, rotmat_to_quat, transform_gaussians
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.world.splats import SplatWorld, splat_surface

log = logging.getLogger(__name__)

#: up axis of each named file frame (module docstring)
FRAMES = {"opencv": "-y", "rub": "+y", "zup": "+z", "upside-down": "+y"}
#: the frame a file is taken to be in when none is given, by suffix
DEFAULT_FRAMES = {".ply": "opencv", ".splat": "opencv", ".spz": "rub"}
#: disc thickness of a Gaussian made from a point, as a fraction of its width
DISC_THICKNESS = 0.1
#: a point's Gaussian standard deviation across the surface, in point spacings: wide enough that
#: neighbouring discs overlap into a closed surface, narrow enough to keep edges sharp
DISC_WIDTH = 0.6
#: opacity of a Gaussian made from a point
DISC_OPACITY = 0.95
#: metres above the floor and below the ceiling that ``check_upright`` leaves out (the planes themselves)
UPRIGHT_BAND = 0.05
#: share of the surface between floor and ceiling in the upper half from which a room looks upside down
UPRIGHT_UPPER_SHARE = 0.55


def build_splats(
    source: str | os.PathLike,
    up: str = "auto",
    frame: str | None = None,
    scale: float = 1.0,
    num_keyframes: int = 8,
    keyframe_size: tuple[int, int] = (320, 240),
    keyframe_hfov_deg: float = 90.0,
    camera_height: float = 1.2,
    name: str | None = None,
) -> SplatWorld:
    """A splat world from a splat file or a point-cloud scene (module docstring).

    up: the file's up axis ('+x' ... '-z') or 'auto' (from ``frame``); frame: a key of FRAMES or
    None (by the file's suffix); scale: metres per file unit (> 0).
    """
    source = Path(source)
    if source.is_dir() or source.suffix.lower() in (".npz", ".yaml", ".yml"):
        from worldfm_ros.scene.store import load_scene

        return splats_from_scene(load_scene(source), name)
    from worldfm_ros.scene.splat_io import read_splats

    if not np.isfinite(scale) or scale <= 0:
        raise SceneError(f"scale: expected metres per file unit > 0, got {scale}")
    g = read_splats(source)
    if scale != 1.0:
        g = transform_gaussians(g, np.eye(4), scale)
    axis = _up_axis(up, frame, source)
    from worldfm_ros.build.ground import align_ground, parse_axis

    surface = splat_surface(g)
    points = surface[0]
    if len(points) < 3:
        raise SceneError(f"{source}: fewer than 3 opaque Gaussians: no surface to stand on")
    ground = align_ground(points, gravity_up=parse_axis(axis))
    log.info("ground: %s (%d inliers), up %s", ground.method, ground.inliers, axis)
    world = SplatWorld(g, ground.map_T_scene, [], name or source.stem.split(".")[0], surface=surface)
    world.keyframes = render_keyframes(world, num_keyframes, keyframe_size, keyframe_hfov_deg, camera_height)
    check_upright(world, source)
    return world


def _up_axis(up: str, frame: str | None, source: Path) -> str:
    if up != "auto":
        return up
    if frame is None:
        suffix = source.suffix.lower()
        frame = DEFAULT_FRAMES.get(suffix, "opencv")
    if frame not in FRAMES:
        raise SceneError(f"frame: expected one of {sorted(FRAMES)}, got {frame!r}")
    return FRAMES[frame]


def render_keyframes(world: SplatWorld, count: int, size: tuple[int, int], hfov_deg: float,
                     camera_height: float) -> list[Keyframe]:
    """``count`` views rendered from ``world`` at evenly spaced yaws around the centre of its
    surfaces in the map, ``camera_height`` m above the floor, level; as keyframes (image + depth)."""
    from worldfm_ros.build.procedural import body_pose
    from worldfm_ros.world.base import points_in_map

    if count <= 0:
        return []
    camera = PinholeCamera.from_fov(size[0], size[1], hfov_deg)
    points_map = points_in_map(world, world.surface_points(200_000)[0])
    lo, hi = np.percentile(points_map, 2, axis=0), np.percentile(points_map, 98, axis=0)
    centre = (lo[:2] + hi[:2]) / 2
    height = min(camera_height, max(0.5 * (hi[2] - 0.0), 0.1))
    scene_T_map = invert_pose(world.map_T_scene)
    c2ws = [scene_T_map @ body_pose(centre[0], centre[1], 2 * np.pi * k / count, height=height)
            for k in range(count)]
    views = world.render([camera] * count, c2ws)
    return [Keyframe(v.rgb, camera.K, c2w, v.depth, name=f"yaw{int(round(360 * k / count)):03d}")
            for k, (v, c2w) in enumerate(zip(views, c2ws))]


def check_upright(world: SplatWorld, source) -> bool:
    """Warn (and return False) when ``world`` looks upside down in the map: keyframe cameras below
    the floor, or most of what stands between floor and ceiling in the upper half of the room
    (furniture hanging from a ceiling taken for the floor). Walls are symmetric and say nothing."""
    from worldfm_ros.world.base import points_in_map

    z = points_in_map(world, world.surface_points(200_000)[0])[:, 2]
    top = float(np.percentile(z, 99))
    between = z[(z > UPRIGHT_BAND) & (z < top - UPRIGHT_BAND)]
    upper = float(np.mean(between > top / 2)) if len(between) else 0.0
    cameras_z = [(world.map_T_scene @ kf.c2w)[2, 3] for kf in world.keyframes]
    below = bool(cameras_z) and float(np.median(cameras_z)) < 0
    if below or upper > UPRIGHT_UPPER_SHARE:
        log.warning("%s: the room looks upside down (%.0f %% of what stands between floor and ceiling is in its upper "
                    "half%s); try --up with the other sign or --frame upside-down", source, 100 * upper,
                    ", cameras below the floor" if below else "")
        return False
    return True


def splats_from_points(points: np.ndarray, colors: np.ndarray, spacing: float) -> Gaussians:
    """Flat Gaussian discs on the surface sampled by ``points`` ((N, 3) metres, (N, 3) uint8), each
    ``DISC_WIDTH`` x ``spacing`` (metres between neighbouring points) wide across its normal."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=16))
    normals = np.asarray(pcd.normals)
    helper = np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    t1 = np.cross(normals, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(normals, t1)
    quats = rotmat_to_quat(np.stack([t1, t2, normals], axis=2))
    width = DISC_WIDTH * spacing
    scales = np.tile([width, width, DISC_THICKNESS * width], (len(points), 1))
    sh = ((colors.astype(np.float32) / 255.0 - 0.5) / SH_C0)[:, None, :]
    return make_gaussians(points, quats, scales, np.full(len(points), DISC_OPACITY), sh, "points")


def splats_from_scene(anchor: SceneAnchor, name: str | None = None) -> SplatWorld:
    """The point-cloud scene ``anchor`` as discs (``splats_from_points``), with its frame and keyframes."""
    from worldfm_ros.scene.downsample import point_spacing

    spacing = anchor.point_spacing or point_spacing(anchor.points)
    g = splats_from_points(anchor.points, anchor.colors, spacing)
    return SplatWorld(g, anchor.map_T_scene, anchor.keyframes, name or anchor.name,
                      surface=(anchor.points, anchor.colors))
