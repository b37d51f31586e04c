"""Procedural rooms with exact geometry: RGB-D frames at any pose, and scenes built from them.

A room is an axis-aligned box (the walls, seen from inside) holding axis-aligned box
obstacles, every surface carrying a procedural texture. Frames are ray-cast
analytically, so depth and colour are exact: the synthetic counterpart of real
posed RGB-D captures, for tests, the bundled default scene and training data.

Frame: the room frame is REP-103-like (x forward, y left, z up, metres, floor at
z = 0), so a scene built here has ``map_T_scene`` = identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from worldfm_ros.camera import LINK_T_OPTICAL, PinholeCamera, check_pose
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.build.backproject import pixel_rays



@dataclass
class Box:
    """An axis-aligned box, corners in metres, with a base colour and texture style."""

    lo: np.ndarray
    hi: np.ndarray
    color: np.ndarray
    style: int = 0


@dataclass
class ProceduralRoom:
    """A textured box room with box obstacles. Build with :func:`random_room`.

    size: (3,) room extent in metres along x, y, z; the room spans [0, size].
    obstacles: boxes inside the room.
    palette: (6, 3) uint8 base colours of the 6 room faces (-x, +x, -y, +y, floor, ceiling).
    seed: seed of the texture noise.
    """

    size: np.ndarray
    obstacles: list[Box] = field(default_factory=list)
    palette: np.ndarray = field(default_factory=lambda: np.full((6, 3), 160, np.uint8))
    seed: int = 0

    def raycast(self, camera: PinholeCamera, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Render the room exactly.

        camera: pinhole model; c2w: (4, 4) camera-to-room, OpenCV axes, metres.
        Returns rgb (H, W, 3) uint8 and depth (H, W) float32 z-depth in metres
        (every pixel hits a surface when the camera is inside the room).
        """
        c2w = check_pose(c2w)
        dirs = pixel_rays(camera.K, camera.width, camera.height).reshape(-1, 3) @ c2w[:3, :3].T  # (P, 3) world, scaled so t = z-depth
        origin = c2w[:3, 3]
        safe = np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)
        inv = 1.0 / safe

        # Leaving the room box: the nearest exit plane along each ray.
        t_lo, t_hi = (0.0 - origin) * inv, (self.size - origin) * inv
        t_exit_axes = np.maximum(t_lo, t_hi)  # (P, 3)
        axis = np.argmin(t_exit_axes, axis=1)
        t = t_exit_axes[np.arange(len(dirs)), axis]
        face = axis * 2 + (dirs[np.arange(len(dirs)), axis] > 0)  # 0..5: -x, +x, -y, +y, floor, ceiling
        obstacle = np.full(len(dirs), -1)
        obstacle_axis = np.zeros(len(dirs), dtype=int)
        for i, box in enumerate(self.obstacles):
            b_lo, b_hi = (box.lo - origin) * inv, (box.hi - origin) * inv
            t_near_axes = np.minimum(b_lo, b_hi)
            t_near = t_near_axes.max(axis=1)
            t_far = np.maximum(b_lo, b_hi).min(axis=1)
            hit = (t_near <= t_far) & (t_near > 1e-6) & (t_near < t)
            t = np.where(hit, t_near, t)
            obstacle = np.where(hit, i, obstacle)
            obstacle_axis = np.where(hit, np.argmax(t_near_axes, axis=1), obstacle_axis)

        points = origin + dirs * t[:, None]
        rgb = self._shade(points, face, obstacle, obstacle_axis)
        return rgb.reshape(camera.height, camera.width, 3), t.reshape(camera.height, camera.width).astype(np.float32)

    def _shade(self, p: np.ndarray, face: np.ndarray, obstacle: np.ndarray, obstacle_axis: np.ndarray) -> np.ndarray:
        """Procedural texture colours (P, 3) uint8 of surface points p (P, 3)."""
        rgb = np.zeros((len(p), 3))
        room = obstacle < 0
        for f in range(6):
            sel = room & (face == f)
            if not np.any(sel):
                continue
            a, b = _face_coords(p[sel], f // 2)
            base = self.palette[f].astype(np.float64)
            if f == 4:  # floor: planks with grain
                plank = np.floor(a / 0.25)
                tone = 0.75 + 0.25 * _hash_noise(plank, np.floor(b / 1.2 + 0.37 * plank), self.seed)
                grain = 0.9 + 0.1 * np.sin(b * 40.0 + 3.0 * _value_noise(a * 4, b * 0.5, self.seed))
                col = base * (tone * grain)[:, None]
                col *= np.where((np.abs(a / 0.25 - np.round(a / 0.25)) < 0.03), 0.5, 1.0)[:, None]
            elif f == 5:  # ceiling: tiles
                grid = (np.abs(a / 0.6 - np.round(a / 0.6)) < 0.02) | (np.abs(b / 0.6 - np.round(b / 0.6)) < 0.02)
                col = base * np.where(grid, 0.7, 1.0)[:, None]
            else:  # walls: smooth noise, a dado rail, posters
                n = _value_noise(a * 1.5, b * 1.5, self.seed + f)
                col = base * (0.8 + 0.3 * n)[:, None]
                col = np.where((np.abs(b - 0.9) < 0.03)[:, None], base * 0.45, col)
                col = self._posters(col, a, b, f)
            rgb[sel] = col
        for i, box in enumerate(self.obstacles):
            sel = obstacle == i
            if not np.any(sel):
                continue
            ax = obstacle_axis[sel]
            a = np.where(ax == 0, p[sel, 1], p[sel, 0])
            b = np.where(ax == 2, p[sel, 1], p[sel, 2])
            check = (np.floor(a / 0.15) + np.floor(b / 0.15)) % 2
            shade = np.array([0.95, 0.8, 1.1])[ax]  # faces of one box differ, like diffuse lighting
            pattern = 0.75 + 0.25 * check if box.style == 0 else 0.8 + 0.2 * np.sin(b * 25.0)
            rgb[sel] = box.color[None, :] * (shade * pattern)[:, None]
        return np.clip(rgb, 0, 255).astype(np.uint8)

    def _posters(self, col: np.ndarray, a: np.ndarray, b: np.ndarray, face: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed * 31 + face)
        for _ in range(2):
            w, h = rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.7)
            a0, b0 = rng.uniform(0.3, 3.0), rng.uniform(1.2, 1.7)
            inside = (a > a0) & (a < a0 + w) & (b > b0) & (b < b0 + h)
            stripes = 0.7 + 0.3 * np.sin((a - a0) * rng.uniform(10, 30))[:, None]
            colour = rng.uniform(40, 230, size=3)
            col = np.where(inside[:, None], colour[None, :] * stripes, col)
        return col


def _face_coords(p: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """In-plane coordinates (a, b) of points on a face perpendicular to ``axis``."""
    if axis == 0:
        return p[:, 1], p[:, 2]
    if axis == 1:
        return p[:, 0], p[:, 2]
    return p[:, 0], p[:, 1]


def _hash_noise(i: np.ndarray, j: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) per integer lattice cell."""
    h = np.sin(i * 127.1 + j * 311.7 + seed * 74.7) * 43758.5453
    return h - np.floor(h)


def _value_noise(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Smooth 2-D value noise in [0, 1)."""
    xi, yi = np.floor(x), np.floor(y)
    fx, fy = x - xi, y - yi
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    n00, n10 = _hash_noise(xi, yi, seed), _hash_noise(xi + 1, yi, seed)
    n01, n11 = _hash_noise(xi, yi + 1, seed), _hash_noise(xi + 1, yi + 1, seed)
    return (n00 * (1 - sx) + n10 * sx) * (1 - sy) + (n01 * (1 - sx) + n11 * sx) * sy


def random_room(seed: int = 0, size: tuple[float, float, float] | None = None, num_obstacles: int = 4,
                clear_radius: float = 1.2) -> ProceduralRoom:
    """A room with random size, colours and obstacles, fully determined by ``seed``.

    Obstacles keep out of the square of half-size ``clear_radius`` metres around the room
    centre, where scenes are captured and robots start.
    """
    rng = np.random.default_rng(seed)
    extent = np.array(size if size is not None else (rng.uniform(5, 8), rng.uniform(4, 6), rng.uniform(2.4, 3.0)))
    palette = rng.integers(60, 230, size=(6, 3)).astype(np.uint8)
    palette[4] = rng.integers(90, 170, size=3)  # floors read as floors: mid tones
    centre = extent[:2] / 2.0
    obstacles = []
    for _ in range(num_obstacles):
        for _attempt in range(50):
            w, d, h = rng.uniform(0.4, 1.2), rng.uniform(0.4, 1.2), rng.uniform(0.4, 1.6)
            lo = np.array([rng.uniform(0.3, extent[0] - 0.3 - w), rng.uniform(0.3, extent[1] - 0.3 - d)])
            hi = lo + (w, d)
            if np.any(hi <= centre - clear_radius) or np.any(lo >= centre + clear_radius):
                obstacles.append(Box(np.array([*lo, 0.0]), np.array([*hi, h]),
                                     rng.integers(40, 240, size=3).astype(np.float64), int(rng.integers(0, 2))))
                break
    return ProceduralRoom(extent, obstacles, palette, seed)


def body_pose(x: float, y: float, yaw: float, height: float = 1.2, pitch: float = 0.0) -> np.ndarray:
    """Camera-to-room (4, 4) of an optical frame at (x, y, height) m looking along ``yaw`` rad
    (counter-clockwise from +x), tilted down by ``pitch`` rad."""
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("ZY", [yaw, pitch]).as_matrix() @ LINK_T_OPTICAL[:3, :3]
    T[:3, 3] = (x, y, height)
    return T


def make_room_scene(
    room: ProceduralRoom,
    camera: PinholeCamera,
    num_views: int = 12,
    num_keyframes: int = 6,
    stride: int = 2,
    height: float = 1.2,
    name: str = "procedural_room",
) -> SceneAnchor:
    """Fuse ray-cast RGB-D views taken around the room centre into a scene anchor.

    Views: ``num_views`` yaws evenly spaced on a small circle around the centre at
    ``height`` m; every ``num_views // num_keyframes``-th view becomes a keyframe
    (image + exact depth). Points are back-projected every ``stride`` pixels.
    """
    from worldfm_ros.build.backproject import backproject_depth

    centre = room.size[:2] / 2.0
    points, colors, keyframes = [], [], []
    every = max(1, num_views // max(1, num_keyframes))
    for k in range(num_views):
        yaw = 2 * np.pi * k / num_views
        offset = 0.3 * np.array([np.cos(yaw + 1.0), np.sin(yaw + 1.0)])
        c2w = body_pose(*(centre + offset), yaw, height=height, pitch=0.15)
        rgb, depth = room.raycast(camera, c2w)
        p, c = backproject_depth(depth, camera.K, c2w, image=rgb, stride=stride)
        points.append(p)
        colors.append(c)
        if k % every == 0 and len(keyframes) < num_keyframes:
            keyframes.append(Keyframe(rgb, camera.K, c2w, depth, name=f"view{k:03d}"))
    return SceneAnchor(np.concatenate(points), np.concatenate(colors), np.eye(4), keyframes, name)


def build_procedural(
    seed: int = 0,
    size: tuple[float, float, float] | None = None,
    num_obstacles: int = 4,
    width: int = 320,
    height: int = 240,
    hfov_deg: float = 90.0,
    num_views: int = 16,
    num_keyframes: int = 8,
    stride: int = 1,
    max_points: int = 2_000_000,
    name: str | None = None,
) -> SceneAnchor:
    """A scene of ``random_room(seed, size, num_obstacles)`` fused from ray-cast views taken by a
    ``width``×``height`` camera of ``hfov_deg``, voxel-downsampled to ``max_points``."""
    from worldfm_ros.scene.downsample import downsample_to_budget

    room = random_room(seed, size, num_obstacles)
    camera = PinholeCamera.from_fov(width, height, hfov_deg)
    scene = make_room_scene(room, camera, num_views, num_keyframes, stride, name=name or f"procedural_room_{seed}")
    if scene.num_points > max_points:
        points, colors, _ = downsample_to_budget(scene.points, scene.colors, max_points)
        scene = SceneAnchor(points, colors, scene.map_T_scene, scene.keyframes, scene.name)
    return scene
