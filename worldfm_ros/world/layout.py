"""A room's layout: textured planar surfaces (floor, ceiling, walls) that close a world.

Each ``Surface`` is a planar patch in the **map** frame (REP-103, z up): an origin, two
orthonormal in-plane axes ``u`` and ``v``, a size along them (metres) and a texture image whose
pixel (row r, column c) covers ``u`` in [c, c+1) * cell and ``v`` in [r, r+1) * cell. Its mask says
which texels are part of the surface (a floor polygon inside its bounding rectangle) and which
were *observed* (painted from captured points) rather than synthesised. A ``RoomLayout`` renders by
ray-plane intersection, so every ray from inside a closed room hits a surface, with exact depth.

On disk a layout is ``layout/layout.yaml`` inside a scene folder (named by the scene.yaml field
``layout``) plus one RGBA PNG per surface: alpha 255 = observed texel, 128 = synthesised, 0 = not
part of the surface. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worldfm_ros.errors import SceneError
from worldfm_ros.render.result import DEFAULT_NEAR

LAYOUT_FORMAT = "worldfm_layout"
LAYOUT_VERSION = 1
SURFACE_KINDS = ("floor", "ceiling", "wall")
ALPHA_OBSERVED, ALPHA_SYNTHETIC = 255, 128
#: finest mip level's texel footprint per pixel footprint: coarser levels are used beyond it
MIP_BIAS = 1.0


@dataclass
class Surface:
    """A textured planar patch in the map frame.

    kind: one of SURFACE_KINDS; origin: (3,) map point of texel (0, 0)'s corner, metres;
    u, v: (3,) orthonormal in-plane axes; cell: texel side, metres;
    texture: (R, C, 3) uint8 RGB; inside: (R, C) bool, texels that belong to the surface;
    observed: (R, C) bool, texels painted from the capture (the rest of ``inside`` is synthetic).
    """

    kind: str
    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    cell: float
    texture: np.ndarray
    inside: np.ndarray
    observed: np.ndarray
    name: str = ""
    _mips: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"layout surface {self.name!r}"
        if self.kind not in SURFACE_KINDS:
            raise SceneError(f"{where}: kind: expected one of {SURFACE_KINDS}, got {self.kind!r}")
        self.origin, self.u, self.v = (np.asarray(a, dtype=np.float64).reshape(3) for a in (self.origin, self.u, self.v))
        if not all(np.all(np.isfinite(a)) for a in (self.origin, self.u, self.v)):
            raise SceneError(f"{where}: origin, u and v must be finite")
        if abs(np.linalg.norm(self.u) - 1) > 1e-4 or abs(np.linalg.norm(self.v) - 1) > 1e-4 or abs(self.u @ self.v) > 1e-4:
            raise SceneError(f"{where}: u and v must be orthonormal")
        if not (isinstance(self.cell, (int, float)) and math.isfinite(self.cell) and self.cell > 0):
            raise SceneError(f"{where}: cell: expected a texel size > 0 m, got {self.cell!r}")
        self.texture = np.ascontiguousarray(self.texture, dtype=np.uint8)
        if self.texture.ndim != 3 or self.texture.shape[2] != 3 or min(self.texture.shape[:2]) < 1:
            raise SceneError(f"{where}: texture must be (R, C, 3) uint8, got {self.texture.shape}")
        for name in ("inside", "observed"):
            mask = np.asarray(getattr(self, name), dtype=bool)
            if mask.shape != self.texture.shape[:2]:
                raise SceneError(f"{where}: {name} mask {mask.shape} does not match the texture {self.texture.shape[:2]}")
            setattr(self, name, mask)
        self.observed = self.observed & self.inside

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.u, self.v)

    @property
    def size(self) -> tuple[float, float]:
        """(extent along u, extent along v), metres."""
        return self.texture.shape[1] * self.cell, self.texture.shape[0] * self.cell

    @property
    def area(self) -> float:
        """Square metres of the surface (texels inside)."""
        return float(self.inside.sum()) * self.cell ** 2

    @property
    def synthetic_fraction(self) -> float:
        """Share of the surface's area that was synthesised, [0, 1]."""
        n = int(self.inside.sum())
        return 1.0 - float(self.observed.sum()) / n if n else 0.0

    def mips(self) -> list[np.ndarray]:
        """Texture pyramid (level 0 = the texture), float32, built once."""
        if not self._mips:
            import cv2

            level = self.texture.astype(np.float32)
            self._mips.append(level)
            while min(level.shape[:2]) >= 8:
                level = cv2.pyrDown(level)
                self._mips.append(level)
        return self._mips

    def points(self, spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples every ``spacing`` metres over the surface: ((N, 3) float32 map points, (N, 3) uint8
        colours, (N,) bool observed)."""
        step = max(1, int(round(spacing / self.cell)))
        r, c = np.nonzero(self.inside[::step, ::step])
        r, c = r * step, c * step
        p = self.origin + np.outer((c + 0.5) * self.cell, self.u) + np.outer((r + 0.5) * self.cell, self.v)
        return p.astype(np.float32), self.texture[r, c], self.observed[r, c]


@dataclass
class LayoutRender:
    """The layout seen by one camera, (H, W) arrays: rgb uint8 (H, W, 3), depth float32 z-depth in
    metres (0 = no surface), valid bool, observed bool (texel painted from the capture)."""

    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    observed: np.ndarray


@dataclass
class RoomLayout:
    """The closed room: ``surfaces`` in the map frame plus what fitting found.

    floor_z, ceiling_z: heights in the map, metres; yaw: the room's axes' angle about z, radians;
    footprint: (M, 2) polygon (map xy, metres, counter-clockwise) of the room's floor;
    report: what was fitted and added (written to layout.yaml, printed by scene-complete).
    """

    surfaces: list[Surface]
    floor_z: float
    ceiling_z: float
    yaw: float
    footprint: np.ndarray
    report: dict = field(default_factory=dict)

    def contains(self, xy: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(N,) bool: which map points ``xy`` (N, 2) lie inside the footprint, at least ``margin`` m
        from its edges."""
        import cv2

        poly = self.footprint.astype(np.float32).reshape(-1, 1, 2)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), True) >= margin for x, y in xy])

    def render(self, K: np.ndarray, width: int, height: int, map_T_cam: np.ndarray,
               near: float = DEFAULT_NEAR) -> LayoutRender:
        """The layout seen by a pinhole camera K ((3, 3) pixels, image ``width`` x ``height``) at
        ``map_T_cam`` ((4, 4) camera-to-map, OpenCV axes, metres). Texels are filtered by a mip
        level chosen per pixel from its footprint on the surface."""
        import cv2

        R, c = map_T_cam[:3, :3], map_T_cam[:3, 3]
        u, v = np.meshgrid(np.arange(width, dtype=np.float64) + 0.0, np.arange(height, dtype=np.float64))
        rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
        d = rays_cam.reshape(-1, 3) @ R.T  # (P, 3) map direction whose optical-axis component is 1
        n_px = d.shape[0]
        best = np.full(n_px, np.inf)
        which = np.full(n_px, -1, dtype=np.int64)
        coords = np.zeros((n_px, 2))
        for s_i, s in enumerate(self.surfaces):
            n = s.normal
            denom = d @ n
            with np.errstate(divide="ignore", invalid="ignore"):
                t = ((s.origin - c) @ n) / denom
            hit = np.isfinite(t) & (t > near) & (t < best)
            if not hit.any():
                continue
            idx = np.nonzero(hit)[0]
            rel = c + t[idx, None] * d[idx] - s.origin
            a, b = rel @ s.u / s.cell, rel @ s.v / s.cell
            rows, cols = s.inside.shape
            ia, ib = np.floor(a).astype(np.int64), np.floor(b).astype(np.int64)
            ok = (ia >= 0) & (ia < cols) & (ib >= 0) & (ib < rows)
            ok[ok] = s.inside[ib[ok], ia[ok]]
            idx = idx[ok]
            best[idx] = t[idx]
            which[idx] = s_i
            coords[idx] = np.stack([a[ok], b[ok]], axis=1)
        rgb = np.zeros((n_px, 3), dtype=np.uint8)
        observed = np.zeros(n_px, dtype=bool)
        pixel_angle = 1.0 / float(K[0, 0])
        for s_i, s in enumerate(self.surfaces):
            idx = np.nonzero(which == s_i)[0]
            if not len(idx):
                continue
            a, b = coords[idx, 0], coords[idx, 1]
            observed[idx] = s.observed[np.clip(b.astype(np.int64), 0, s.inside.shape[0] - 1),
                                       np.clip(a.astype(np.int64), 0, s.inside.shape[1] - 1)]
            # texel footprint of a pixel at this distance, foreshortened by the view angle
            cos = np.abs(d[idx] @ s.normal) / np.linalg.norm(d[idx], axis=1)
            footprint = best[idx] * np.linalg.norm(d[idx], axis=1) * pixel_angle / np.maximum(cos, 0.2) / s.cell
            mips = s.mips()
            level = np.clip(np.floor(np.log2(np.maximum(footprint / MIP_BIAS, 1.0))), 0, len(mips) - 1).astype(int)
            for lv in np.unique(level):
                sel = level == lv
                scale = 0.5 ** lv
                sample = _sample(mips[lv], a[sel] * scale - 0.5, b[sel] * scale - 0.5)
                rgb[idx[sel]] = np.clip(sample + 0.5, 0, 255).astype(np.uint8)
        valid = which >= 0
        depth = np.where(valid, best, 0.0).astype(np.float32)
        shape = (height, width)
        return LayoutRender(rgb.reshape(height, width, 3), depth.reshape(shape), valid.reshape(shape),
                            observed.reshape(shape))

    def points(self, spacing: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples of every surface every ``spacing`` metres: (map points (N, 3) float32, colours
        (N, 3) uint8, observed (N,) bool)."""
        parts = [s.points(spacing) for s in self.surfaces]
        if not parts:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, bool)
        return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]

    @property
    def synthetic_fraction(self) -> float:
        """Share of the layout's area that was synthesised, [0, 1]."""
        total = sum(s.area for s in self.surfaces)
        return sum(s.area * s.synthetic_fraction for s in self.surfaces) / total if total else 0.0


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, 3) of ``image`` (H, W, 3) float32 at texel-centre coordinates (x, y) (N,)."""
    import cv2

    n = len(x)
    width = 1024  # remap's maps must stay under 32767 on a side
    rows = -(-n // width)
    mx = np.zeros(rows * width, np.float32)
    my = np.zeros(rows * width, np.float32)
    mx[:n], my[:n] = x, y
    out = cv2.remap(image, mx.reshape(rows, width), my.reshape(rows, width), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n]


# ---------------------------------------------------------------------------------------- files
def save_layout(layout: RoomLayout, folder: str | os.PathLike) -> Path:
    """Write ``layout`` into ``folder`` (created): layout.yaml and one RGBA PNG per surface."""
    import cv2
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, s in enumerate(layout.surfaces):
        name = f"{i:02d}_{s.kind}.png"
        alpha = np.where(s.observed, ALPHA_OBSERVED, np.where(s.inside, ALPHA_SYNTHETIC, 0)).astype(np.uint8)
        rgba = np.dstack([s.texture[..., ::-1], alpha])
        if not cv2.imwrite(str(folder / name), rgba):
            raise SceneError(f"{folder / name}: could not write the texture")
        entries.append({"name": s.name or f"{s.kind}{i}", "kind": s.kind, "texture": name,
                        "origin": [float(x) for x in s.origin], "u": [float(x) for x in s.u],
                        "v": [float(x) for x in s.v], "cell": float(s.cell)})
    doc = {"format": LAYOUT_FORMAT, "version": LAYOUT_VERSION, "floor_z": float(layout.floor_z),
           "ceiling_z": float(layout.ceiling_z), "yaw": float(layout.yaw),
           "footprint": [[float(x), float(y)] for x, y in layout.footprint], "surfaces": entries,
           "report": _plain(layout.report)}
    tmp = folder / "layout.yaml.tmp"
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    os.replace(tmp, folder / "layout.yaml")
    return folder / "layout.yaml"


def load_layout(yaml_path: str | os.PathLike) -> RoomLayout:
    """Read a layout written by ``save_layout``; SceneError naming the file and field on a fault."""
    import cv2
    import yaml

    from worldfm_ros.scene.store import scene_inside

    yaml_path = Path(yaml_path)
    y = str(yaml_path)
    try:
        doc = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SceneError(f"{y}: unreadable layout ({type(exc).__name__}; expected a {LAYOUT_FORMAT} YAML)") from None
    if not isinstance(doc, dict) or doc.get("format") != LAYOUT_FORMAT:
        raise SceneError(f"{y}: format: expected {LAYOUT_FORMAT!r}")
    if doc.get("version") != LAYOUT_VERSION:
        raise SceneError(f"{y}: version: expected {LAYOUT_VERSION}, got {doc.get('version')!r}")
    surfaces = []
    for i, e in enumerate(_get(doc, "surfaces", list, y)):
        where = f"{y}: surfaces[{i}]"
        if not isinstance(e, dict):
            raise SceneError(f"{where}: expected a mapping")
        png = scene_inside(yaml_path, e.get("texture"), f"{where}.texture")
        rgba = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise SceneError(f"{png}: expected an 8-bit RGBA PNG texture")
        alpha = rgba[..., 3]
        try:
            surfaces.append(Surface(kind=e.get("kind"), origin=_vec(e, "origin", where), u=_vec(e, "u", where),
                                    v=_vec(e, "v", where), cell=e.get("cell"), texture=rgba[..., 2::-1],
                                    inside=alpha > 0, observed=alpha == ALPHA_OBSERVED, name=str(e.get("name", ""))))
        except SceneError as exc:
            raise SceneError(f"{where}: {exc}") from None
    footprint = np.asarray(_get(doc, "footprint", list, y), dtype=np.float64)
    if footprint.ndim != 2 or footprint.shape[1] != 2 or len(footprint) < 3 or not np.all(np.isfinite(footprint)):
        raise SceneError(f"{y}: footprint: expected a list of at least 3 [x, y] points")
    return RoomLayout(surfaces, float(_get(doc, "floor_z", (int, float), y)), float(_get(doc, "ceiling_z", (int, float), y)),
                      float(_get(doc, "yaw", (int, float), y)), footprint, dict(doc.get("report") or {}))


def _get(doc: dict, key: str, kind, where: str):
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SceneError(f"{where}: {key}: missing or of the wrong type")
    return value


def _vec(entry: dict, key: str, where: str) -> np.ndarray:
    value = np.asarray(entry.get(key, []), dtype=np.float64)
    if value.shape != (3,):
        raise SceneError(f"{where}.{key}: expected 3 numbers")
    return value


def _plain(value):
    """``value`` with numpy scalars and arrays turned into YAML-safe Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
