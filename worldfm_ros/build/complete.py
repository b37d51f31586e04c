"""Close a world: fit the room's floor, ceiling and walls to its surfaces and texture what was not seen.

The room is fitted in the map frame (REP-103: z up, floor near z = 0):

1. planes: iterative RANSAC (open3d ``segment_plane``) on the world's surface samples; horizontal
   planes give the floor (the lowest large one) and the ceiling (a large one above every camera),
   vertical ones with enough height and length are walls;
2. the room's axes: the walls' normals, folded to a quarter turn (a Manhattan room); each wall
   becomes a line x' = a or y' = b in the room's axes;
3. the floor plan: the lines (plus, on sides no wall was seen, the extent of the capture: its
   points, or the cameras plus a margin) cut the plane into rectangles; a rectangle is inside
   when enough of it holds evidence of the room (surface points above it, the cameras and the
   free space their keyframes looked through). The inside rectangles' outline is the room:
   rectangular, L-shaped or any rectilinear polygon;
4. surfaces: the floor and the ceiling over the whole floor plan (under the table, behind the
   sofa), one wall per edge of the outline from floor to ceiling;
5. texture: every surface is painted from the captured points lying on it, small gaps
   inpainted, the rest synthesised from observed texture of the same surface (or of its kind):
   its detail quilted, its shading continued from the observed light (``build.texture``).

The result is a ``world.layout.RoomLayout`` stored in the scene (``layout:`` in scene.yaml); a
world loaded from such a scene is a ``world.completed.CompletedWorld``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from worldfm_ros.errors import SceneError
from worldfm_ros.world.base import World, points_in_map
from worldfm_ros.world.layout import RoomLayout, Surface, save_layout

log = logging.getLogger(__name__)

LAYOUT_DIR = "layout"


class NotARoom(SceneError):
    """The scene has no floor and walls to close (outdoors, a single object)."""


@dataclass
class CompletionConfig:
    """How a room is fitted and textured (metres unless said).

    cell: texel side (0 = the scene's point spacing, clamped to [0.01, 0.03]);
    grid: floor-plan evidence cell; plane_distance: RANSAC inlier distance;
    max_planes: planes extracted at most; min_plane_points: smallest plane kept, in samples;
    min_wall_height / min_wall_length: extent a vertical plane needs to count as a wall;
    ceiling_height: room height assumed above the floor when no ceiling was seen (raised to clear
    the highest surface and camera); margin: how far beyond the cameras an unseen wall is put;
    inside_fraction: share of a floor-plan rectangle that must hold evidence for it to be inside;
    patch: side of a synthesis patch; shading_sigma: scale of the light (sun stripes, shadows,
    exposure) told apart from the material's pattern; shading_reach: how far the light seen at the
    edge of the observed texels carries into the invented ones;
    max_samples: surface samples the fitting looks at; seed: synthesis seed.
    """

    cell: float = 0.0
    grid: float = 0.05
    plane_distance: float = 0.02
    max_planes: int = 16
    min_plane_points: int = 400
    min_wall_height: float = 0.4
    min_wall_length: float = 0.4
    ceiling_height: float = 2.5
    margin: float = 0.3
    inside_fraction: float = 0.3
    patch: float = 0.24
    shading_sigma: float = 0.06
    shading_reach: float = 0.125
    max_samples: int = 300_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("grid", "plane_distance", "min_wall_height", "min_wall_length", "ceiling_height", "patch",
                     "shading_sigma", "shading_reach"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise SceneError(f"completion.{name}: expected a length > 0 m, got {value!r}")
        if not (math.isfinite(self.cell) and self.cell >= 0):
            raise SceneError(f"completion.cell: expected a texel size >= 0 m (0 = from the scene), got {self.cell!r}")
        if not 0 < self.inside_fraction <= 1:
            raise SceneError(f"completion.inside_fraction: expected a share in (0, 1], got {self.inside_fraction!r}")


@dataclass
class Plane:
    """A RANSAC plane in the map: n · p + d = 0 (n unit), its inlier samples (K, 3)."""

    normal: np.ndarray
    d: float
    inliers: np.ndarray

    @property
    def horizontal(self) -> bool:
        return abs(self.normal[2]) > 0.95

    @property
    def vertical(self) -> bool:
        return abs(self.normal[2]) < 0.1


@dataclass
class RoomFit:
    """What ``fit_room`` found. yaw: room axes' angle (rad) about map z; lines: ([x'...], [y'...])
    sorted cut positions in the room's axes; inside: (len(x)-1, len(y)-1) bool rectangles inside;
    walls_seen: (axis, position) of the fitted walls; assumed: which of floor / ceiling / sides
    were not seen but assumed."""

    floor_z: float
    ceiling_z: float
    yaw: float
    lines: tuple[np.ndarray, np.ndarray]
    inside: np.ndarray
    walls_seen: list[tuple[int, float]]
    assumed: dict = field(default_factory=dict)

    def to_room(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) map xy -> room axes."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.asarray(xy) @ np.array([[c, -s], [s, c]])

    def to_map(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) room axes -> map xy."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.asarray(xy) @ np.array([[c, s], [-s, c]])

    def wall_segments(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The outline's edges as (start, end) room-axes points (2,), counter-clockwise (inside on the left)."""
        xs, ys = self.lines
        segments = []
        for x, y0, y1, sign in _edge_runs(self.inside, xs, ys):  # walls along y' at x' = x
            a, b = np.array([x, y0]), np.array([x, y1])
            segments.append((b, a) if sign > 0 else (a, b))
        for y, x0, x1, sign in _edge_runs(self.inside.T, ys, xs):  # walls along x' at y' = y
            a, b = np.array([x0, y]), np.array([x1, y])
            segments.append((a, b) if sign > 0 else (b, a))
        return segments


def _edge_runs(inside: np.ndarray, lines: np.ndarray, cuts: np.ndarray) -> list[tuple[float, float, float, int]]:
    """Where ``inside`` (len(lines)-1, len(cuts)-1) changes across each of ``lines``: (line, from, to,
    +1 when the inside lies on the line's upper side else -1), consecutive cells merged."""
    padded = np.pad(inside.astype(np.int8), ((1, 1), (0, 0)))
    change = padded[1:] - padded[:-1]  # (len(lines), len(cuts)-1): +1 inside above the line
    runs = []
    for i, row in enumerate(change):
        j = 0
        while j < len(row):
            if row[j] == 0:
                j += 1
                continue
            k = j
            while k < len(row) and row[k] == row[j]:
                k += 1
            runs.append((float(lines[i]), float(cuts[j]), float(cuts[k]), int(row[j])))
            j = k
    return runs


def extract_planes(points: np.ndarray, config: CompletionConfig) -> list[Plane]:
    """Planes of (N, 3) map ``points`` by iterative RANSAC, largest first (open3d, seeded)."""
    import open3d as o3d

    o3d.utility.random.seed(config.seed)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    planes = []
    for _ in range(config.max_planes):
        if len(cloud.points) < config.min_plane_points:
            break
        model, idx = cloud.segment_plane(config.plane_distance, 3, 400)
        if len(idx) < config.min_plane_points:
            break
        n = np.asarray(model[:3], dtype=np.float64)
        norm = np.linalg.norm(n)
        planes.append(Plane(n / norm, float(model[3]) / norm, np.asarray(cloud.points)[idx]))
        cloud = cloud.select_by_index(idx, invert=True)
    return planes


def _room_yaw(walls: list[Plane]) -> float:
    """Angle (rad, in [-pi/4, pi/4)) of the room's axes: circular mean of the walls' normal angles
    folded to a quarter turn, weighted by inliers."""
    z = sum(len(p.inliers) * np.exp(4j * math.atan2(p.normal[1], p.normal[0])) for p in walls)
    return float(np.angle(z) / 4)


def fit_room(points: np.ndarray, cameras: np.ndarray, views: list[np.ndarray] | None = None,
             config: CompletionConfig | None = None) -> RoomFit:
    """The room around (N, 3) map ``points`` (the world's surface samples), seen from (K, 3) map
    ``cameras``. views: per camera, (M, 2) map xy the camera saw (its keyframe depth), whose
    line of sight was free space. NotARoom when no floor or no wall is found."""
    config = config or CompletionConfig()
    rng = np.random.default_rng(config.seed)
    if len(points) > config.max_samples:
        points = points[rng.choice(len(points), config.max_samples, replace=False)]
    if len(points) < config.min_plane_points:
        raise NotARoom(f"not a room: only {len(points)} surface points (need at least {config.min_plane_points})")
    planes = extract_planes(points, config)
    assumed: dict = {}
    low = np.percentile(points[:, 2], 1)
    floors = [p for p in planes if p.horizontal and abs(-p.d / p.normal[2] - low) < 0.15]
    if not floors:
        raise NotARoom("not a room: no floor plane (no large horizontal surface at the bottom of the scene)")
    floor_z = float(np.median(floors[0].inliers[:, 2]))
    cam_top = float(cameras[:, 2].max()) if len(cameras) else floor_z
    top = float(np.percentile(points[:, 2], 99.9))
    ceilings = [p for p in planes if p.horizontal and -p.d / p.normal[2] > max(cam_top, floor_z + 1.5) + 0.1]
    if ceilings:
        ceiling_z = float(np.median(max(ceilings, key=lambda p: len(p.inliers)).inliers[:, 2]))
    else:
        ceiling_z = max(floor_z + config.ceiling_height, top + 0.05, cam_top + 0.3)
        assumed["ceiling"] = f"no ceiling seen: assumed at {ceiling_z - floor_z:.2f} m above the floor"

    band = (points[:, 2] > floor_z + 0.05) & (points[:, 2] < ceiling_z - 0.05)
    candidates = []
    for p in planes:
        if not p.vertical:
            continue
        z = p.inliers[:, 2]
        if np.percentile(z, 95) - np.percentile(z, 5) < config.min_wall_height:
            continue
        along = p.inliers[:, :2] @ np.array([-p.normal[1], p.normal[0]])
        if np.percentile(along, 97) - np.percentile(along, 3) < config.min_wall_length:
            continue
        candidates.append(p)
    if not candidates:
        raise NotARoom(f"not a room: no wall (no vertical plane at least {config.min_wall_height:.2f} m high and "
                       f"{config.min_wall_length:.2f} m long)")
    yaw = _room_yaw(candidates)
    c, s = math.cos(yaw), math.sin(yaw)
    axes = np.array([[c, s], [-s, c]])  # rows: the room's x' and y' in map xy
    walls: list[tuple[int, float, int]] = []
    for p in candidates:
        cos = np.abs(axes @ p.normal[:2])
        axis = int(np.argmax(cos))
        if cos[axis] < math.cos(math.radians(12)):
            continue  # not along the room's axes: an object, or a room this fit does not model
        walls.append((axis, float(np.median(p.inliers[:, :2] @ axes[axis])), len(p.inliers)))

    def room(xy: np.ndarray) -> np.ndarray:
        return xy @ axes.T

    pts_r = room(points[:, :2])
    cams_r = room(cameras[:, :2]) if len(cameras) else np.zeros((0, 2))
    lo_ev = np.minimum(pts_r.min(axis=0), cams_r.min(axis=0) - config.margin if len(cams_r) else np.inf)
    hi_ev = np.maximum(pts_r.max(axis=0), cams_r.max(axis=0) + config.margin if len(cams_r) else -np.inf)
    lines, sides = [], []
    for axis in (0, 1):
        cuts = sorted([(pos, n) for a, pos, n in walls if a == axis
                       and lo_ev[axis] - 0.1 <= pos <= hi_ev[axis] + 0.1])
        merged: list[tuple[float, int]] = []
        for pos, n in cuts:
            if merged and pos - merged[-1][0] < 0.15:
                if n > merged[-1][1]:
                    merged[-1] = (pos, n)
                continue
            merged.append((pos, n))
        positions = [pos for pos, _ in merged]
        for end, bound in (("min", lo_ev[axis]), ("max", hi_ev[axis])):
            near = [x for x in positions if abs(x - bound) < 0.3] or (
                [x for x in positions if x < bound] if end == "min" else [x for x in positions if x > bound])
            if not near:
                positions.append(float(bound))
                sides.append(f"{'xy'[axis]}' {end}")
        lines.append(np.array(sorted(positions)))
    if sides:
        assumed["walls"] = f"no wall seen on side(s) {', '.join(sides)}: closed at the capture's extent"
    xs, ys = lines
    if len(xs) < 2 or len(ys) < 2:
        raise NotARoom("not a room: the walls found do not enclose any floor")

    evidence = _evidence(pts_r, cams_r, [room(v) for v in views or []], xs, ys, config.grid)
    inside = np.zeros((len(xs) - 1, len(ys) - 1), bool)
    g = config.grid
    for i in range(len(xs) - 1):
        for j in range(len(ys) - 1):
            a0, a1 = int(round((xs[i] - xs[0]) / g)), int(round((xs[i + 1] - xs[0]) / g))
            b0, b1 = int(round((ys[j] - ys[0]) / g)), int(round((ys[j + 1] - ys[0]) / g))
            sub = evidence[a0:max(a1, a0 + 1), b0:max(b1, b0 + 1)]
            inside[i, j] = sub.size > 0 and sub.mean() >= config.inside_fraction
    inside = _main_component(inside)
    if not inside.any():
        raise NotARoom("not a room: no part of the floor plan holds enough of the capture")
    seen = [(a, pos) for a, pos, _ in walls]
    return RoomFit(floor_z, float(ceiling_z), yaw, (xs, ys), inside, seen, assumed)


def _evidence(pts: np.ndarray, cams: np.ndarray, views: list[np.ndarray], xs: np.ndarray, ys: np.ndarray,
              grid: float) -> np.ndarray:
    """(X, Y) bool grid over [xs[0], xs[-1]] x [ys[0], ys[-1]] (cells of ``grid`` m, room axes):
    cells under surface points, around the cameras and inside the fans their keyframes saw."""
    import cv2

    nx = max(1, int(math.ceil((xs[-1] - xs[0]) / grid)))
    ny = max(1, int(math.ceil((ys[-1] - ys[0]) / grid)))
    ev = np.zeros((ny, nx), np.uint8)  # image layout: row = y', col = x'

    def cells(xy: np.ndarray) -> np.ndarray:
        return np.floor((xy - [xs[0], ys[0]]) / grid).astype(np.int64)

    ij = cells(pts)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < nx) & (ij[:, 1] >= 0) & (ij[:, 1] < ny)
    ev[ij[ok, 1], ij[ok, 0]] = 1
    for k, cam in enumerate(cams):
        cx, cy = cells(cam[None])[0]
        cv2.circle(ev, (int(cx), int(cy)), max(1, int(0.3 / grid)), 1, -1)
        if k < len(views) and len(views[k]) >= 2:
            fan = np.concatenate([cam[None], views[k]])
            hull = cv2.convexHull(cells(fan).astype(np.int32))
            cv2.fillConvexPoly(ev, hull, 1)
    ev = cv2.morphologyEx(ev, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return ev.T.astype(bool)


def _main_component(inside: np.ndarray) -> np.ndarray:
    """The largest 4-connected group of inside rectangles, with the holes it encloses filled."""
    from scipy import ndimage

    labels, n = ndimage.label(inside)
    if n == 0:
        return inside
    sizes = ndimage.sum(inside, labels, range(1, n + 1))
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


# --------------------------------------------------------------------------------- texturing
def _texel(config: CompletionConfig, spacing: float) -> float:
    return config.cell if config.cell > 0 else float(np.clip(spacing or 0.01, 0.01, 0.03))


def _paint(surface: Surface, points: np.ndarray, colors: np.ndarray, tolerance: float) -> None:
    """Paint ``surface``'s texels from the (N, 3) map points within ``tolerance`` m of its plane."""
    import cv2

    rel = points - surface.origin
    near = np.abs(rel @ surface.normal) < tolerance
    rows, cols = surface.inside.shape
    a = np.floor(rel[near] @ surface.u / surface.cell).astype(np.int64)
    b = np.floor(rel[near] @ surface.v / surface.cell).astype(np.int64)
    ok = (a >= 0) & (a < cols) & (b >= 0) & (b < rows)
    a, b, col = a[ok], b[ok], colors[near][ok].astype(np.float64)
    total = np.zeros((rows, cols, 3))
    count = np.zeros((rows, cols))
    np.add.at(total, (b, a), col)
    np.add.at(count, (b, a), 1)
    hit = count > 0
    texture = np.zeros((rows, cols, 3), np.uint8)
    texture[hit] = np.clip(total[hit] / count[hit, None] + 0.5, 0, 255).astype(np.uint8)
    # gaps between samples (a texel or two) are part of what was seen: inpaint them
    closed = cv2.morphologyEx(hit.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)
    gaps = closed & ~hit & surface.inside
    if gaps.any():
        texture = cv2.inpaint(texture, gaps.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    surface.texture = texture
    surface.observed = (hit | gaps) & surface.inside


def _synthesise(surfaces: list[Surface], config: CompletionConfig) -> None:
    """Fill every surface's unobserved texels (``build.texture``), exemplars from the surface itself
    when it shows a few patches' worth, else from the most observed surface of its kind (walls for
    an unseen ceiling or floor)."""
    from worldfm_ros.build.texture import complete_texture, known_windows

    def richness(s: Surface) -> int:
        return len(known_windows(s.observed, max(4, int(round(config.patch / s.cell)))))

    rich = {id(s): richness(s) for s in surfaces}
    for k, s in enumerate(surfaces):
        patch = max(4, int(round(config.patch / s.cell)))
        exemplar = s
        if rich[id(s)] < 20:
            for kinds in ((s.kind,), ("wall",), ("wall", "floor", "ceiling")):
                pool = [o for o in surfaces if o.kind in kinds and rich[id(o)] >= 20]
                if pool:
                    exemplar = max(pool, key=lambda o: rich[id(o)])
                    break
        s.texture = complete_texture(s.texture, s.observed, exemplar.texture, exemplar.observed, s.inside,
                                     patch=patch, overlap=max(2, patch // 4),
                                     shading_sigma=config.shading_sigma / s.cell,
                                     reach=config.shading_reach / s.cell, seed=config.seed + k)
        s.texture[~s.inside] = 0


def build_layout(fit: RoomFit, points: np.ndarray, colors: np.ndarray, config: CompletionConfig,
                 spacing: float = 0.0) -> RoomLayout:
    """The textured floor, ceiling and walls of ``fit``, painted from (N, 3) map ``points`` and their
    (N, 3) uint8 ``colors`` (``spacing``: the captured surface's sample spacing, metres)."""
    import cv2

    cell = _texel(config, spacing)
    tol = max(2 * config.plane_distance, 3 * spacing)
    xs, ys = fit.lines
    c, s = math.cos(fit.yaw), math.sin(fit.yaw)
    ux, uy = np.array([c, s, 0.0]), np.array([-s, c, 0.0])
    up = np.array([0.0, 0.0, 1.0])
    height = fit.ceiling_z - fit.floor_z

    # the floor plan as texels of the floor/ceiling textures (room axes, origin at (xs[0], ys[0]))
    cols = max(1, int(math.ceil((xs[-1] - xs[0]) / cell)))
    rows = max(1, int(math.ceil((ys[-1] - ys[0]) / cell)))
    plan = np.zeros((rows, cols), bool)
    for i in range(len(xs) - 1):
        for j in range(len(ys) - 1):
            if fit.inside[i, j]:
                a0, a1 = (int(round((xs[i] - xs[0]) / cell)), int(round((xs[i + 1] - xs[0]) / cell)))
                b0, b1 = (int(round((ys[j] - ys[0]) / cell)), int(round((ys[j + 1] - ys[0]) / cell)))
                plan[b0:b1, a0:a1] = True
    corner = xs[0] * ux + ys[0] * uy
    surfaces = []
    for kind, z in (("floor", fit.floor_z), ("ceiling", fit.ceiling_z)):
        surf = Surface(kind, corner + z * up, ux, uy, cell, np.zeros((rows, cols, 3), np.uint8), plan, plan, kind)
        surfaces.append(surf)
    wall_rows = max(1, int(math.ceil(height / cell)))
    for k, (a, b) in enumerate(fit.wall_segments()):
        length = float(np.linalg.norm(b - a))
        if length < cell:
            continue
        u = ((b - a)[0] * ux + (b - a)[1] * uy) / length
        origin = a[0] * ux + a[1] * uy + fit.floor_z * up
        n_cols = max(1, int(math.ceil(length / cell)))
        full = np.ones((wall_rows, n_cols), bool)
        surfaces.append(Surface("wall", origin, u, up, cell, np.zeros((wall_rows, n_cols, 3), np.uint8), full, full,
                                f"wall{k}"))
    for surf in surfaces:
        _paint(surf, points, colors, tol)
    _synthesise(surfaces, config)

    outline = cv2.findContours(plan.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    contour = max(outline, key=cv2.contourArea).reshape(-1, 2).astype(np.float64) * cell
    footprint = fit.to_map(contour + [xs[0], ys[0]])
    if _signed_area(footprint) < 0:
        footprint = footprint[::-1]
    return RoomLayout(surfaces, fit.floor_z, fit.ceiling_z, fit.yaw, footprint)


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def keyframe_views(world: World, stride: int = 8) -> tuple[np.ndarray, list[np.ndarray]]:
    """((K, 3) map camera centres, per keyframe (M, 2) map xy of its depth samples every ``stride`` px)."""
    from worldfm_ros.build.backproject import backproject_pixels

    centres, views = [], []
    for kf in world.keyframes:
        map_T_cam = world.map_T_scene @ kf.c2w
        centres.append(map_T_cam[:3, 3])
        if kf.depth is None:
            views.append(np.zeros((0, 2)))
            continue
        d = kf.depth[::stride, ::stride]
        v, u = np.nonzero(d > 0)
        p = backproject_pixels(u * stride, v * stride, d[v, u].astype(np.float64), kf.K, map_T_cam)
        views.append(p[:, :2])
    return (np.array(centres) if centres else np.zeros((0, 3))), views


def complete_world(world: World, config: CompletionConfig | None = None) -> RoomLayout:
    """The closing layout of ``world`` (any kind); NotARoom when it is not a room. Its ``report``
    says what was fitted, assumed and added."""
    config = config or CompletionConfig()
    t0 = time.perf_counter()
    points, colors = world.surface_points()
    points_map = points_in_map(world, points)
    centres, views = keyframe_views(world)
    fit = fit_room(points_map, centres, views, config)
    layout = build_layout(fit, points_map, colors, config, world.surface_spacing)
    walls = [s for s in layout.surfaces if s.kind == "wall"]
    layout.report = {
        "floor_z": round(fit.floor_z, 4), "ceiling_z": round(fit.ceiling_z, 4),
        "room_yaw_deg": round(math.degrees(fit.yaw), 2),
        "floor_area_m2": round(layout.surfaces[0].area, 3),
        "walls": len(walls), "walls_fitted_to_planes": len(fit.walls_seen),
        "area_m2": round(sum(s.area for s in layout.surfaces), 3),
        "synthetic_area_m2": round(sum(s.area * s.synthetic_fraction for s in layout.surfaces), 3),
        "synthetic_fraction": round(layout.synthetic_fraction, 4),
        "assumed": fit.assumed, "config": asdict(config), "seconds": round(time.perf_counter() - t0, 2),
    }
    return layout


def format_report(layout: RoomLayout) -> str:
    """Lines for a person: what completing the scene fitted and added."""
    r = layout.report
    lines = [f"room: floor z = {r['floor_z']:.3f} m, ceiling z = {r['ceiling_z']:.3f} m, axes at {r['room_yaw_deg']:.1f} deg,"
             f" floor {r['floor_area_m2']:.2f} m2, {r['walls']} walls ({r['walls_fitted_to_planes']} wall planes fitted)",
             f"surfaces: {r['area_m2']:.2f} m2, of which {r['synthetic_area_m2']:.2f} m2 "
             f"({100 * r['synthetic_fraction']:.1f} %) synthesised"]
    lines += [f"assumed: {v}" for v in r.get("assumed", {}).values()]
    return "\n".join(lines)


def complete_scene(source: str | os.PathLike, out: str | os.PathLike, config: CompletionConfig | None = None,
                   force: bool = False) -> RoomLayout:
    """Copy the scene folder ``source`` to ``out`` with its closing layout added (``layout:`` in its
    scene.yaml), written beside ``out`` and renamed into place; ``source`` is changed only when it is
    ``out`` (``scene-build --complete``). NotARoom (nothing written) when it is not a room."""
    import yaml

    from worldfm_ros.scene.store import SCENE_YAML, _read_yaml
    from worldfm_ros.world.store import load_world

    source, out = Path(source), Path(out)
    if not (source / SCENE_YAML).is_file():
        raise SceneError(f"{source}: scene-complete needs a scene folder holding {SCENE_YAML}")
    world = load_world(source)
    base = getattr(world, "base", world)  # completing a completed scene starts again from its capture
    layout = complete_world(base, config)
    if out.exists():
        if not force and out.resolve() != source.resolve():
            raise SceneError(f"{out}: exists; pass --force to replace it")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(LAYOUT_DIR))
    save_layout(layout, tmp / LAYOUT_DIR)
    doc = _read_yaml(tmp / SCENE_YAML)
    doc["layout"] = f"{LAYOUT_DIR}/layout.yaml"
    (tmp / SCENE_YAML).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return layout
