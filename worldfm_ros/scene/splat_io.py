"""Reading and writing Gaussian-splat files.

Formats (by suffix):

* ``.ply`` — the INRIA 3DGS layout (x y z, optional nx ny nz, f_dc_0..2, f_rest_* for SH degree
  0..3 stored channel by channel, opacity as a logit, scale_0..2 as logs, rot_0..3 as w x y z), as
  written by 3DGS, gsplat, nerfstudio's splatfacto and World Labs Marble; and the compressed PLY
  of SuperSplat / PlayCanvas (``*.compressed.ply``). Read by gsply.
* ``.spz`` — Niantic's SPZ (Scaniverse, Polycam, Marble), read by gsply.
* ``.splat`` — antimatter15's 32-byte records: position 3 x float32, scale 3 x float32 (linear),
  RGBA uint8 (A = opacity), rotation 4 x uint8 as (q * 128 + 128), order w x y z.

Every reader returns activated ``Gaussians`` in the file's own frame and units. Sizes are checked
from headers before data is decoded; a fault is one SceneError line naming the file and field.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from worldfm_ros.errors import SceneError, library_reason
from worldfm_ros.render.gaussians import MAX_SH_DEGREE, SH_C0, Gaussians, make_gaussians, sh_coefficients
from worldfm_ros.scene.io import check_file_size, require_file

#: most Gaussians a splat file may hold
MAX_SPLATS = 20_000_000
#: largest splat file read, bytes
MAX_SPLAT_BYTES = 8 * 1024**3
SPLAT_SUFFIXES = (".ply", ".spz", ".splat")
_SPLAT_RECORD = np.dtype([("xyz", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def read_splats(path: str | os.PathLike, max_splats: int = MAX_SPLATS) -> Gaussians:
    """The Gaussians of a splat file (``.ply``, ``.compressed.ply``, ``.spz`` or ``.splat``)."""
    path = require_file(path, "splat file")
    check_file_size(path, MAX_SPLAT_BYTES, "splat file")
    suffix = path.suffix.lower()
    if suffix == ".splat":
        return _read_dot_splat(path, max_splats)
    if suffix == ".ply":
        count = _check_ply_header(path)
        _check_count(count, max_splats, path)
        import gsply

        reader = gsply.plyread
    elif suffix == ".spz":
        _check_count(_spz_count(path), max_splats, path)
        import gsply

        reader = gsply.read_spz
    else:
        raise SceneError(f"{path}: unknown splat file type (expected one of {', '.join(SPLAT_SUFFIXES)})")
    try:
        data = reader(path)
    except (ValueError, KeyError, IndexError, OSError, EOFError, struct.error) as exc:
        raise SceneError(f"{path}: not a readable Gaussian-splat file ({library_reason(exc)})") from None
    return _from_gsdata(data, str(path))


def write_splats(path: str | os.PathLike, g: Gaussians) -> Path:
    """Write ``g`` as an INRIA 3DGS PLY (binary little-endian, no normals); returns the path."""
    import gsply

    path = Path(path)
    sh_rest = g.sh[:, 1:, :] if g.sh.shape[1] > 1 else None
    opac = np.clip(g.opacities.astype(np.float64), 1e-7, 1 - 1e-7)
    gsply.plywrite(path, g.means, np.log(g.scales), g.quats, np.log(opac / (1 - opac)).astype(np.float32),
                   g.sh[:, 0, :], sh_rest)
    return path


def _check_count(count: int | None, limit: int, path: Path) -> None:
    if count is not None and count > limit:
        raise SceneError(f"{path}: holds {count} Gaussians, more than the limit of {limit}")


#: properties an uncompressed 3DGS PLY vertex must have (besides f_rest_*)
_PLY_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                 "rot_0", "rot_1", "rot_2", "rot_3")


def _check_ply_header(path: Path) -> int | None:
    """The vertex count of a 3DGS PLY from its header alone (None when it does not say); SceneError
    naming the property when an uncompressed file lacks one or has an f_rest count of no SH degree."""
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    if not head.startswith(b"ply"):
        raise SceneError(f"{path}: not a PLY file (expected the 'ply' magic line)")
    end = head.find(b"end_header")
    if end < 0:
        raise SceneError(f"{path}: PLY header has no end_header in its first 64 KiB")
    elements: dict[str, tuple[int, list[str]]] = {}
    current = None
    for line in head[:end].decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "element":
            try:
                elements[parts[1]] = (int(parts[2]), [])
            except ValueError:
                raise SceneError(f"{path}: PLY header 'element {parts[1]}' count is not an integer") from None
            current = parts[1]
        elif len(parts) >= 3 and parts[0] == "property" and current is not None:
            elements[current][1].append(parts[-1])
    if "vertex" not in elements:
        raise SceneError(f"{path}: PLY header has no 'element vertex' (expected Gaussians)")
    count, props = elements["vertex"]
    if "chunk" in elements:
        return count  # SuperSplat / PlayCanvas compressed layout: its reader checks the packed fields
    missing = [p for p in _PLY_REQUIRED if p not in props]
    if missing:
        raise SceneError(f"{path}: vertex property '{missing[0]}' missing (a 3DGS PLY needs {' '.join(_PLY_REQUIRED)})")
    rest = sum(p.startswith("f_rest_") for p in props)
    if rest not in (3 * (sh_coefficients(d) - 1) for d in range(MAX_SH_DEGREE + 1)):
        raise SceneError(f"{path}: {rest} f_rest_* properties match no SH degree 0..{MAX_SH_DEGREE} "
                         "(expected 0, 9, 24 or 45)")
    return count


def _spz_count(path: Path) -> int | None:
    """numPoints of a gzip SPZ (v1-v3) header; None for other containers (their reader checks them)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != b"\x1f\x8b":
        return None
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(16)
    except (OSError, EOFError):
        raise SceneError(f"{path}: corrupt gzip stream (expected an SPZ file)") from None
    if len(header) < 16:
        raise SceneError(f"{path}: truncated SPZ header (expected 16 bytes)")
    return struct.unpack("<I", header[8:12])[0]


def _from_gsdata(data, source: str) -> Gaussians:
    """Activated Gaussians from gsply's PLY-convention data (log scales, logit opacities)."""
    means = np.asarray(data.means)
    n = len(means)
    sh0 = np.asarray(data.sh0, dtype=np.float32).reshape(n, 1, 3)
    shN = data.shN
    if shN is not None and np.asarray(shN).size:
        shN = np.asarray(shN, dtype=np.float32).reshape(n, -1, 3)
        sh = np.concatenate([sh0, shN], axis=1)
    else:
        sh = sh0
    # float32 in place: a 2 M-splat file's arrays are not copied again (exp overflows to inf, which
    # make_gaussians reports)
    with np.errstate(over="ignore"):
        scales = np.exp(np.asarray(data.scales, dtype=np.float32))
        opacities = np.asarray(data.opacities, dtype=np.float32)
        opacities = 1.0 / (1.0 + np.exp(-opacities))
    return make_gaussians(means, data.quats, scales, opacities, sh, source)


def _read_dot_splat(path: Path, max_splats: int) -> Gaussians:
    size = path.stat().st_size
    if size == 0 or size % _SPLAT_RECORD.itemsize:
        raise SceneError(f"{path}: {size} bytes is no whole number of 32-byte .splat records")
    _check_count(size // _SPLAT_RECORD.itemsize, max_splats, path)
    rec = np.fromfile(path, dtype=_SPLAT_RECORD)
    rgba = rec["rgba"].astype(np.float32) / 255.0
    quats = (rec["rot"].astype(np.float32) - 128.0) / 128.0
    return make_gaussians(rec["xyz"], quats, rec["scale"], rgba[:, 3], ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :],
                          str(path))


def write_dot_splat(path: str | os.PathLike, g: Gaussians) -> Path:
    """Write ``g`` as a ``.splat`` file (view-dependent colour is dropped: the format has none)."""
    rec = np.zeros(len(g), dtype=_SPLAT_RECORD)
    rec["xyz"] = g.means
    rec["scale"] = g.scales
    rgb = np.clip(g.sh[:, 0, :] * SH_C0 + 0.5, 0, 1)
    rec["rgba"] = np.rint(np.column_stack([rgb, g.opacities]) * 255).astype(np.uint8)
    rec["rot"] = np.clip(np.rint(g.quats * 128 + 128), 0, 255).astype(np.uint8)
    path = Path(path)
    rec.tofile(path)
    return path
