"""The Gaussian-splat world: 3D Gaussians (``render.gaussians``) with posed keyframes, drawn by the
CPU rasterizer (``render.splats``) or, on CUDA, by gsplat (``render.splats_cuda``).

A splat scene on disk is a scene folder (``scene.store``) whose scene.yaml says ``kind: splats``
and names its Gaussians (``splats: {file: splats.ply, count, sh_degree}``, an INRIA 3DGS PLY);
its ``points.ply`` holds samples of the splats' opaque surfaces, which collision and the viewer
use and which any point-cloud reader can still open.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import BackendUnavailable, SceneError
from worldfm_ros.render.gaussians import Gaussians, quat_to_rotmat
from worldfm_ros.render.result import RenderResult
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.world.base import RenderStyle, check_views, thin_points

log = logging.getLogger(__name__)

KIND = "splats"
SPLATS_PLY = "splats.ply"
#: opacity from which a splat counts as a surface for collision and the viewer
SURFACE_OPACITY = 0.5
#: most surface samples kept in a splat scene's points.ply
MAX_SURFACE_POINTS = 2_000_000


class SplatWorld:
    """Gaussians in the scene frame, placed in the map by ``map_T_scene`` ((4, 4), scene to map),
    with posed ``keyframes``; rendered on torch ``device`` ('cpu' or 'cuda[:N]').

    surface: ((M, 3) float32 metres, (M, 3) uint8) samples of the opaque surfaces; default
    ``splat_surface(gaussians)``. Rendering changes no state, so one world may serve many threads
    and envs; ``gaussians`` are the given ones in the order of the CPU renderer's culling blocks
    (copied once unless already in it, as a saved splat scene is), never copied per view or env.
    """

    kind = KIND

    def __init__(self, gaussians: Gaussians, map_T_scene: np.ndarray, keyframes: list[Keyframe], name: str = "splats",
                 surface: tuple[np.ndarray, np.ndarray] | None = None, device: str = "cpu") -> None:
        self.map_T_scene = np.asarray(map_T_scene, dtype=np.float64)
        self.keyframes = list(keyframes)
        self.name = name
        self.device = device
        self._surface = surface if surface is not None else splat_surface(gaussians)
        self._renderer = make_splat_renderer(gaussians, device)
        # the CPU renderer holds them in its culling (Morton) order: the world keeps that one set
        self.gaussians = getattr(self._renderer, "gaussians", gaussians)

    @property
    def primitives(self) -> int:
        return len(self.gaussians)

    @property
    def surface_spacing(self) -> float:
        return 0.0  # splats are continuous: nothing for the anti-aliasing filter to close

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        points = self._surface[0]
        if len(points) == 0:
            return self.gaussians.bounds()
        return points.min(axis=0), points.max(axis=0)

    def surface_points(self, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return thin_points(*self._surface, max_points)

    def render(self, cameras: Sequence[PinholeCamera], c2ws: Sequence[np.ndarray],
               style: RenderStyle = RenderStyle()) -> list[RenderResult]:
        check_views(cameras, c2ws)
        return self._renderer.render_batch(list(cameras), list(c2ws))

    @property
    def anchor(self) -> SceneAnchor:
        """The world's point-cloud side: surface samples, keyframes and frame (what ``scene.store`` saves)."""
        points, colors = self._surface
        return SceneAnchor(points, colors, self.map_T_scene, self.keyframes, self.name)

    def describe(self) -> list[str]:
        """Summary lines: Gaussian count, SH degree, memory, extent of the centres."""
        g = self.gaussians
        lo, hi = g.bounds()
        return [f"splat world {self.name!r}: {len(g):,} Gaussians, SH degree {g.sh_degree}, "
                f"{g.nbytes / 2**20:.1f} MiB in memory",
                f"  Gaussian centres, scene frame (m): min [{', '.join(f'{x:+.3f}' for x in lo)}] "
                f"max [{', '.join(f'{x:+.3f}' for x in hi)}]",
                f"  opacity >= {SURFACE_OPACITY}: {np.mean(g.opacities >= SURFACE_OPACITY):.1%}; "
                f"median scale {np.median(g.scales) * 1e3:.1f} mm; surface samples below"]


def make_splat_renderer(gaussians: Gaussians, device: str = "cpu"):
    """The renderer of ``gaussians`` on ``device``: gsplat's CUDA rasterizer on 'cuda[:N]', the
    numba rasterizer on 'cpu'. BackendUnavailable names what is missing for CUDA."""
    if device == "cpu":  # the common case, without importing torch
        from worldfm_ros.render.splats import SplatRenderer

        return SplatRenderer(gaussians)
    from worldfm_ros.devices import parse_device

    dev = parse_device(device)
    if dev.type == "cuda":
        from worldfm_ros.render.splats_cuda import GsplatRenderer

        return GsplatRenderer(gaussians, str(dev))
    if dev.type != "cpu":
        raise BackendUnavailable(f"device: splat rendering runs on 'cpu' or 'cuda[:N]', got {device!r}")
    from worldfm_ros.render.splats import SplatRenderer

    return SplatRenderer(gaussians)


def splat_surface(g: Gaussians, max_points: int = MAX_SURFACE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Samples of the opaque surfaces of ``g``: for every Gaussian of opacity >= SURFACE_OPACITY its
    centre and the four points one standard deviation out along its two longest axes (a splat is
    a surface patch, not a point), at most ``max_points`` (evenly thinned); ((M, 3) float32, (M, 3) uint8)."""
    keep = np.flatnonzero(g.opacities >= SURFACE_OPACITY)
    if len(keep) == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    per = 5
    if len(keep) * per > max_points:
        keep = keep[np.linspace(0, len(keep) - 1, max(max_points // per, 1)).astype(np.int64)]
    sub = g.subset(keep)
    R = quat_to_rotmat(sub.quats)  # (n, 3, 3), columns = the Gaussian's axes
    order = np.argsort(-sub.scales, axis=1)
    rows = np.arange(len(sub))
    samples = [sub.means.astype(np.float64)]
    for rank in (0, 1):
        axis = order[:, rank]
        offset = R[rows, :, axis] * sub.scales[rows, axis][:, None]
        samples += [sub.means + offset, sub.means - offset]
    points = np.concatenate(samples).astype(np.float32)
    colors = np.tile(sub.base_colors(), (per, 1))
    return points, colors


def save_splat_world(world: SplatWorld, path: str | Path) -> Path:
    """Write ``world`` as a splat scene folder (module docstring); returns the folder."""
    from worldfm_ros.scene.splat_io import write_splats
    from worldfm_ros.scene.store import save_scene

    path = Path(path)
    if path.suffix.lower() == ".npz":
        raise SceneError(f"{path}: a splat scene is a folder (splats.ply beside scene.yaml), not a .npz archive")
    path.mkdir(parents=True, exist_ok=True)
    write_splats(path / SPLATS_PLY, world.gaussians)
    g = world.gaussians
    return save_scene(world.anchor, path, extra={
        "kind": KIND, "splats": {"file": SPLATS_PLY, "count": len(g), "sh_degree": g.sh_degree}})


def load_splat_world(path: Path, device: str = "cpu") -> SplatWorld:
    """The splat scene at ``path`` (folder or its scene.yaml). SceneError names the file and field."""
    from worldfm_ros.scene.splat_io import MAX_SPLATS, read_splats
    from worldfm_ros.scene.store import SCENE_YAML, load_scene, scene_field, scene_inside

    yaml_path = path / SCENE_YAML if path.is_dir() else path
    anchor = load_scene(yaml_path)
    y = str(yaml_path)
    entry = scene_field(yaml_path, "splats", dict)
    splat_path = scene_inside(yaml_path, entry.get("file"), f"{y}: splats.file")
    count = entry.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= MAX_SPLATS:
        raise SceneError(f"{y}: splats.count: expected an integer 1..{MAX_SPLATS}")
    gaussians = read_splats(splat_path, max_splats=count)
    if len(gaussians) != count:
        raise SceneError(f"{splat_path}: holds {len(gaussians)} Gaussians but {y} says splats.count = {count}")
    degree = entry.get("sh_degree")
    if degree is not None and degree != gaussians.sh_degree:
        raise SceneError(f"{splat_path}: SH degree {gaussians.sh_degree} but {y} says splats.sh_degree = {degree}")
    return SplatWorld(gaussians, anchor.map_T_scene, anchor.keyframes, anchor.name,
                      surface=(anchor.points, anchor.colors), device=device)
