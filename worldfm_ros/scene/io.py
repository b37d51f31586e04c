"""Readers and writers for the raw inputs of a scene: RGB images, depth maps, PLY clouds.

Images come back as (H, W, 3) uint8 RGB; depth maps as (H, W) float32 metres with
0 = no data; clouds as (N, 3) float32 positions + (N, 3) uint8 RGB colours.
Every failure is a :class:`SceneError` naming the file and the expected form; no message
repeats what a file holds. Sizes are checked from file sizes and headers before any data is
decoded (image headers, .npy headers), so a small file cannot make a reader allocate gigabytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from worldfm_ros.camera import check_image_size
from worldfm_ros.errors import SceneError
from worldfm_ros.scene.checks import check_depth

# metres per unit of integer depth maps unless told otherwise: millimetres, the common sensor export
MM_TO_M = 1e-3


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise SceneError when it is not an existing file."""
    p = Path(path)
    if not p.is_file():
        raise SceneError(f"{p}: {what} not found")
    return p


def read_json_object(path: Path) -> dict:
    """The JSON object in the file ``path``; SceneError naming the file when it is not valid JSON or
    not an object."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SceneError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise SceneError(f"{path}: expected a JSON object")
    return doc


def check_file_size(path: Path, max_bytes: int, what: str) -> int:
    """The size of ``path`` in bytes; SceneError when it exceeds ``max_bytes``."""
    size = path.stat().st_size
    if size > max_bytes:
        raise SceneError(f"{path}: {what} is larger than the limit of {max_bytes} bytes")
    return size


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file from its header alone, checked against camera.MAX_PIXELS."""
    from PIL import Image, UnidentifiedImageError

    p = require_file(path, "image")
    try:
        with Image.open(p) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise SceneError(f"{p}: not a readable image") from None
    check_image_size(w, h, f"{p}: image", SceneError)
    return w, h


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a colour image (PNG, JPEG, PPM, …) as (H, W, 3) uint8 RGB; grey is replicated.
    Images larger than camera.MAX_PIXELS are refused from their header, before decoding."""
    import cv2

    p = require_file(path, "image")
    image_size(p)
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SceneError(f"{p}: not a readable image")
    return np.ascontiguousarray(bgr[..., ::-1])


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB losslessly (the format follows the suffix, e.g. .png)."""
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(np.asarray(image)[..., ::-1])):
        raise SceneError(f"{path}: could not write image")


def read_depth(path: str | os.PathLike, scale: float | None = None) -> np.ndarray:
    """Read a depth map as (H, W) float32 metres, 0 = no data.

    Formats: .npy (2-D array), 16-bit .png/.pgm/.tif (and other single-channel images
    OpenCV reads), .exr (the ``OpenEXR`` package, or OpenCV built with OpenEXR).
    scale: metres per stored unit. Default: 0.001 (millimetres) for integer maps,
    1.0 for float maps. In integer maps the dtype's maximum value (65535 for uint16,
    the Kinect's "saturated" code) is treated as no data, as is 0.
    Non-finite or negative values are errors.
    """
    p = require_file(path, "depth map")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        raw = read_npy(p, "depth map")
    elif suffix == ".exr":
        raw = _read_exr(p)
    else:
        import cv2

        raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise SceneError(f"{p}: not a readable depth image")
    raw = np.asarray(raw)
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[..., 0]
    if raw.ndim != 2:
        raise SceneError(f"{p}: depth map must be single-channel (H, W), got shape {raw.shape}")
    if np.issubdtype(raw.dtype, np.integer):
        invalid = (raw <= 0) | (raw == np.iinfo(raw.dtype).max)
        depth = raw.astype(np.float64) * (MM_TO_M if scale is None else scale)
        depth[invalid] = 0.0
    elif np.issubdtype(raw.dtype, np.floating):
        depth = raw.astype(np.float64) * (1.0 if scale is None else scale)
    else:
        raise SceneError(f"{p}: depth map has unsupported dtype {raw.dtype}")
    return check_depth(depth.astype(np.float32), str(p))


def npy_header(f, available: int, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of the .npy stream ``f``; SceneError unless it is a plain
    (non-object) array whose data fits in the ``available`` bytes of the stream.

    numpy allocates the array its header declares before reading the data, so this check comes
    first: a 100-byte file declaring terabytes must not reach np.load.
    """
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = read(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError):
        raise SceneError(f"{where}: not a .npy array (expected a NumPy .npy header)") from None
    if dtype.hasobject:
        raise SceneError(f"{where}: holds Python objects; expected a plain numeric array")
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > available:
        raise SceneError(f"{where}: the header declares more data than the file holds")
    return shape, dtype


def read_npy(path: str | os.PathLike, what: str = "array") -> np.ndarray:
    """A plain numeric array from a .npy file (never unpickled), its header checked first."""
    p = require_file(path, what)
    size = p.stat().st_size
    with open(p, "rb") as f:
        npy_header(f, size, f"{p}: {what}")
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise SceneError(f"{p}: {what} is not a readable .npy array") from None


def _read_exr(p: Path) -> np.ndarray:
    """First depth-like channel of an EXR file (Z, depth, Y, R or the only channel)."""
    try:
        import OpenEXR
    except ImportError:
        OpenEXR = None
    if OpenEXR is not None:
        try:
            with OpenEXR.File(str(p)) as f:
                channels = {name: np.asarray(ch.pixels) for name, ch in f.channels().items()}
        except Exception as exc:  # OpenEXR raises bare RuntimeError/OSError variants
            raise SceneError(f"{p}: not a readable EXR file ({exc})") from None
        for name in ("Z", "depth", "Y", "R"):
            if name in channels:
                return channels[name]
        first = channels[sorted(channels)[0]]
        return first if first.ndim == 2 else first[..., 0]
    # OpenCV only decodes EXR when this is set before its first EXR read
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise SceneError(
            f"{p}: cannot read EXR (install the 'OpenEXR' package, or use an OpenCV built with OpenEXR)"
        )
    return raw if raw.ndim == 2 else raw[..., 2]  # OpenCV gives BGR: channel 2 is R


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray) -> None:
    """Write a binary little-endian PLY: vertex x y z float32, red green blue uchar."""
    from plyfile import PlyData, PlyElement

    points = np.asarray(points, dtype=np.float32)
    colors = np.asarray(colors, dtype=np.uint8)
    vertex = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = points.T
    vertex["red"], vertex["green"], vertex["blue"] = colors.T
    PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<").write(str(path))


# A PLY file is read whole; 2 GiB holds about 140 M coloured float32 points.
MAX_PLY_BYTES = 2 * 1024**3


def read_ply(path: str | os.PathLike, default_color: int = 128,
             max_bytes: int = MAX_PLY_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Read the vertices of a PLY file (ASCII or binary) as positions and colours.

    Colours come from red/green/blue (or r/g/b, diffuse_red/…) properties: integer
    types are taken as 0–255, float types as 0–1. Without colour properties every
    point gets ``default_color`` grey. Returns (N, 3) float32 and (N, 3) uint8.
    Files over ``max_bytes`` are refused before reading.
    """
    from plyfile import PlyData

    p = require_file(path, "PLY file")
    check_file_size(p, max_bytes, "PLY file")
    try:
        ply = PlyData.read(str(p))
    except Exception as exc:  # plyfile raises PlyParseError, ValueError, struct/EOF errors
        # plyfile's own messages quote header lines: name the failure only
        raise SceneError(f"{p}: not a readable PLY file ({type(exc).__name__}; expected a PLY header "
                         "and a vertex element with x, y, z)") from None
    if "vertex" not in ply:
        raise SceneError(f"{p}: PLY file has no 'vertex' element")
    v = ply["vertex"].data
    names = v.dtype.names or ()
    missing = [n for n in ("x", "y", "z") if n not in names]
    if missing:
        raise SceneError(f"{p}: PLY vertex element lacks field(s) {', '.join(missing)}")
    points = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
    colors = np.full(points.shape, default_color, dtype=np.uint8)
    for triple in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue")):
        if all(n in names for n in triple):
            c = np.stack([v[n] for n in triple], axis=1)
            if np.issubdtype(c.dtype, np.floating):
                c = np.clip(np.round(c * 255.0), 0, 255)
            colors = c.astype(np.uint8)
            break
    return points, colors


def read_intrinsics(path: str | os.PathLike) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Read a pinhole K (3, 3) in pixels and, when the file states it, the (width, height).

    Text files: a 3x3 matrix (3 rows of 3 numbers, e.g. 7-Scenes' camera-intrinsics.txt)
    or the 4 numbers ``fx fy cx cy``. JSON files: Open3D's PinholeCameraIntrinsic layout
    (``width``, ``height``, ``intrinsic_matrix`` as 9 numbers, column-major), or the
    keys ``fx``, ``fy``, ``cx``, ``cy`` (+ optional ``width``, ``height``).
    """
    p = require_file(path, "intrinsics file")
    size = None
    if p.suffix.lower() == ".json":
        doc = read_json_object(p)
        try:
            if "intrinsic_matrix" in doc:
                K = np.array(doc["intrinsic_matrix"], dtype=np.float64).reshape(3, 3).T  # column-major
            else:
                K = np.array([[doc["fx"], 0.0, doc["cx"]], [0.0, doc["fy"], doc["cy"]], [0.0, 0.0, 1.0]],
                             dtype=np.float64)
        except KeyError as exc:
            raise SceneError(f"{p}: missing field {exc} (expected intrinsic_matrix or fx, fy, cx, cy)") from None
        except (TypeError, ValueError):
            raise SceneError(f"{p}: intrinsic_matrix must hold 9 numbers") from None
        if "width" in doc and "height" in doc:
            size = (int(doc["width"]), int(doc["height"]))
    else:
        try:
            values = np.loadtxt(p, dtype=np.float64, ndmin=1).reshape(-1)
        except ValueError as exc:
            raise SceneError(f"{p}: expected numbers ({exc})") from None
        if values.size == 9:
            K = values.reshape(3, 3)
        elif values.size == 4:
            fx, fy, cx, cy = values
            K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        else:
            raise SceneError(f"{p}: expected a 3x3 matrix or 'fx fy cx cy', got {values.size} numbers")
    if not np.all(np.isfinite(K)):
        raise SceneError(f"{p}: K contains NaN or inf")
    return K, size


def K_from_values(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(3, 3) intrinsics matrix from focal lengths and principal point in pixels."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def contact_sheet(columns: dict[str, np.ndarray], rows: list[int], width: int = 200) -> np.ndarray:
    """One image (uint8 RGB) with a row per view index in ``rows`` and a column per labelled
    stack of views (label -> (N, H, W, 3) uint8), each view scaled to ``width`` pixels wide,
    the label written on the first row."""
    import cv2

    tiles = []
    for r, i in enumerate(rows):
        row = []
        for label, stack in columns.items():
            h, w = stack[i].shape[:2]
            tile = cv2.resize(stack[i], (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
            if r == 0:
                cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            row.append(tile)
        tiles.append(np.concatenate(row, axis=1))
    return np.concatenate(tiles, axis=0)
