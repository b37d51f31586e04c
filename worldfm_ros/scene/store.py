"""Saving and loading scene anchors, losslessly.

Two layouts hold the same content (format version 1):

Directory (any path not ending in ``.npz``)::

    scene.yaml                 format, version, name, scene_to_map (4x4), point count,
                               keyframe list (name, image, depth, size [W, H], K 3x3, c2w 4x4)
    points.ply                 binary little-endian PLY: x y z float32, red green blue uchar
    keyframes/0000.png         keyframe image, RGB
    keyframes/0000_depth.npy   keyframe z-depth, (H, W) float32 metres, 0 = no data (optional)

Single file (path ending in ``.npz``): a NumPy archive with ``meta`` (JSON text:
format, version, name, keyframe names/sizes), ``points`` (N, 3) float32, ``colors``
(N, 3) uint8, ``scene_to_map`` (4, 4) float64 and, per keyframe i, ``kfNNNN_image``,
``kfNNNN_K``, ``kfNNNN_c2w`` and optionally ``kfNNNN_depth``.

Frames: see :mod:`worldfm_ros.scene.anchor` (points and c2w in the scene frame,
``scene_to_map`` to the ROS map frame). Matrices are written in YAML with Python's
shortest round-trip float repr, so every array loads back bit-exact.

Loading is safe on files from anyone: nothing is unpickled, every file a scene.yaml names
must lie inside the scene's folder, sizes are bounded (MAX_POINTS, MAX_KEYFRAMES,
camera.MAX_PIXELS a keyframe, MAX_KEYFRAME_PIXELS in all, MAX_SCENE_BYTES, MAX_YAML_BYTES) and
checked from headers before data is decoded, and error
messages name the file and the expected form without repeating text read from a file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from worldfm_ros.camera import check_image_size
from worldfm_ros.errors import SceneError, WorldFMError
from worldfm_ros.render.cloud import check_points
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.scene.checks import check_depth, check_K_for_size, check_rigid
from worldfm_ros.scene.io import (check_file_size, image_size, npy_header, read_image, read_npy, read_ply,
                                  require_file, write_image, write_ply)

FORMAT_NAME = "worldfm_scene"
FORMAT_VERSION = 1
SCENE_YAML = "scene.yaml"
POINTS_PLY = "points.ply"
KEYFRAME_DIR = "keyframes"
#: optional: the capture's camera path (TUM, optical frame in the scene frame), what `worldfm demo` drives
TRAJECTORY_TUM = "trajectory.tum"
_OWN_KEYFRAME_FILE = re.compile(r"^\d{4}(_depth\.npy|\.png)$")
_KEYFRAME_ARRAY = re.compile(r"^kf(\d{4})_(image|K|c2w|depth)$")
_SCENE_ARRAYS = ("meta", "points", "colors", "scene_to_map")
# Bounds on what one scene may make a reader allocate (a scene is loaded on request over ROS):
# 20 M points are ~300 MB as float32 + uint8 and render at a few fps on a CPU; the archive
# bound is on the inflated size, which a zip states for each entry before decompression.
MAX_POINTS = 20_000_000
MAX_KEYFRAMES = 1000
MAX_SCENE_BYTES = 2 * 1024**3
MAX_YAML_BYTES = 16 * 1024**2
# Each keyframe is at most an 8K image (camera.MAX_PIXELS, as any image a scene reads); all of
# them together at most what MAX_SCENE_BYTES holds as RGB + float32 depth (7 bytes a pixel):
# about 1000 keyframes of 640x480. A zip member's .npy header states its shape, so an archive's
# keyframes are measured before any is inflated, a directory's from its image headers.
MAX_KEYFRAME_PIXELS = 300_000_000


def save_scene(anchor: SceneAnchor, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``anchor`` to ``path``: a ``.npz`` file, or else a directory (created if needed).

    Saving over an existing scene directory replaces its scene.yaml, points.ply and
    numbered keyframe files. ``extra``: further top-level scene.yaml fields a world kind keeps
    (``kind``, its own files; directories only). Returns the path written.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        if extra:
            raise SceneError(f"{path}: fields {sorted(extra)} need a scene directory, not a .npz archive")
        _save_npz(anchor, path)
    else:
        _save_dir(anchor, path, extra or {})
    return path


def scene_field(yaml_path: str | os.PathLike, key: str, kind: type | tuple[type, ...]) -> Any:
    """Top-level field ``key`` of a scene.yaml, checked against ``kind`` (a world kind's own fields)."""
    yaml_path = Path(yaml_path)
    return _field(_read_yaml(yaml_path), key, str(yaml_path), kind)


def scene_inside(yaml_path: str | os.PathLike, name: Any, where: str) -> Path:
    """The file ``name`` (text) of the scene whose scene.yaml is ``yaml_path``, kept inside its folder."""
    if not isinstance(name, str):
        raise SceneError(f"{where}: expected a file name inside the scene folder")
    return _inside(Path(yaml_path).parent, name, where)


def load_scene(path: str | os.PathLike) -> SceneAnchor:
    """Read a scene saved by :func:`save_scene` (directory, its scene.yaml, or a .npz file).

    Raises SceneError with one line naming the file and field on a missing or
    unreadable file, a corrupt PLY/YAML/archive, an unsupported format version, a
    keyframe count or size mismatch, NaN/inf values, a non-orthonormal rotation, a K
    that does not fit its image size, or an empty point cloud.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return _load_npz(path)
    if path.is_dir():
        return _load_dir(path / SCENE_YAML)
    if path.name == SCENE_YAML or path.suffix.lower() in (".yaml", ".yml"):
        return _load_dir(path)
    raise SceneError(f"{path}: not a scene (expected a directory holding {SCENE_YAML}, or a .npz file)")


def scene_folder(path: str | os.PathLike) -> Path:
    """The real path of the folder that holds a scene (a scene directory's parent, a .npz's
    directory, a scene.yaml's scene directory's parent): where its sibling scenes live."""
    p = Path(os.path.realpath(path))
    if p.name == SCENE_YAML or p.suffix.lower() in (".yaml", ".yml"):
        p = p.parent
    return p.parent


def resolve_in_dirs(path: str | os.PathLike, dirs: list[str | os.PathLike]) -> Path:
    """The real path of ``path`` (links and '..' resolved) when it lies inside one of ``dirs``
    (resolved the same way); SceneError otherwise, naming the allowed directories."""
    real = Path(os.path.realpath(path))
    allowed = [Path(os.path.realpath(d)) for d in dirs if str(d)]
    if not any(real.is_relative_to(d) for d in allowed):
        listed = ", ".join(str(d) for d in allowed) or "none"
        raise SceneError(f"{path}: outside the allowed scene directories ({listed}); expected a scene inside one")
    return real


def _keyframe_files(i: int) -> tuple[str, str]:
    return f"{KEYFRAME_DIR}/{i:04d}.png", f"{KEYFRAME_DIR}/{i:04d}_depth.npy"


def _save_dir(anchor: SceneAnchor, root: Path, extra: dict) -> None:
    import yaml

    if root.exists() and not root.is_dir():
        raise SceneError(f"{root}: exists and is not a directory")
    (root / KEYFRAME_DIR).mkdir(parents=True, exist_ok=True)
    for old in (root / KEYFRAME_DIR).iterdir():
        if _OWN_KEYFRAME_FILE.match(old.name):
            old.unlink()
    write_ply(root / POINTS_PLY, anchor.points, anchor.colors)
    entries = []
    for i, kf in enumerate(anchor.keyframes):
        image_file, depth_file = _keyframe_files(i)
        write_image(root / image_file, kf.image)
        if kf.depth is not None:
            np.save(root / depth_file, kf.depth, allow_pickle=False)
        h, w = kf.image.shape[:2]
        entries.append({
            "name": kf.name,
            "image": image_file,
            "depth": depth_file if kf.depth is not None else None,
            "size": [w, h],
            "K": kf.K.tolist(),
            "c2w": kf.c2w.tolist(),
        })
    doc = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": anchor.name,
        "scene_to_map": anchor.map_T_scene.tolist(),
        "points": {"file": POINTS_PLY, "count": anchor.num_points},
        "num_keyframes": len(entries),
        "keyframes": entries,
        **_render_doc(anchor),
        **extra,
    }
    # scene.yaml last: a directory with a scene.yaml is a complete scene
    with open(root / SCENE_YAML, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=None, width=200)


def _render_doc(anchor: SceneAnchor) -> dict:
    """The optional ``render`` mapping of a scene file: how the scene asks to be splatted."""
    if anchor.splat == "square" and not anchor.point_spacing:
        return {}
    return {"render": {"splat": anchor.splat, "point_spacing": anchor.point_spacing}}


def _render_fields(doc: dict, where: str) -> dict:
    """SceneAnchor's splat and point_spacing from a scene file's optional ``render`` mapping."""
    if "render" not in doc:
        return {}
    render = _field(doc, "render", where, dict)
    out = {}
    if "splat" in render:
        out["splat"] = _field(render, "splat", f"{where}: render", str)
    if "point_spacing" in render:
        out["point_spacing"] = _field(render, "point_spacing", f"{where}: render", (int, float))
    return out


def _anchor(where: str, *args: Any, **fields: Any) -> SceneAnchor:
    try:
        return SceneAnchor(*args, **fields)
    except SceneError as exc:
        raise SceneError(f"{where}: {exc}") from None


def _field(doc: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    """doc[key] checked against ``kind``; ``where`` names the file and enclosing field."""
    if not isinstance(doc, dict) or key not in doc:
        raise SceneError(f"{where}: missing field '{key}'")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise SceneError(f"{where}: field '{key}' has type {type(value).__name__}, expected {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _matrix(value: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    try:
        m = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SceneError(f"{where}: expected a {shape[0]}x{shape[1]} matrix of numbers") from None
    if m.shape != shape:
        raise SceneError(f"{where}: expected a {shape[0]}x{shape[1]} matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise SceneError(f"{where}: matrix contains NaN or inf")
    return m


def _check_version(fmt: Any, version: Any, where: str) -> None:
    # The values found are not repeated: whatever a file holds must not come back in a reply.
    if fmt != FORMAT_NAME:
        raise SceneError(f"{where}: field 'format' is not {FORMAT_NAME!r} (not a worldfm_ros scene)")
    if version != FORMAT_VERSION:
        raise SceneError(f"{where}: format version is not supported (this reader knows version {FORMAT_VERSION})")


def _check_count(value: int, limit: int, where: str) -> int:
    if not 0 <= value <= limit:
        raise SceneError(f"{where}: expected 0..{limit}")
    return value


def _inside(root: Path, name: str, where: str) -> Path:
    """root / name, resolved, when it stays inside ``root``; else SceneError (the name is not
    repeated: it may be anything a peer put in the file)."""
    real_root = Path(os.path.realpath(root))
    path = Path(os.path.realpath(root / name))
    if not path.is_relative_to(real_root):
        raise SceneError(f"{where}: expected a path inside the scene folder {real_root} (relative, no '..' "
                         "or links leading out)")
    return path


def _read_yaml(yaml_path: Path) -> dict:
    """The top-level mapping of a scene.yaml, size-checked; SceneError naming the fault's line."""
    import yaml

    require_file(yaml_path, "scene file")
    check_file_size(yaml_path, MAX_YAML_BYTES, "scene file")
    try:
        with open(yaml_path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise SceneError(f"{yaml_path}: invalid YAML{at} (expected a scene.yaml mapping)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SceneError(f"{yaml_path}: unreadable ({type(exc).__name__}; expected UTF-8 YAML)") from None
    if not isinstance(doc, dict):
        raise SceneError(f"{yaml_path}: expected a mapping at the top level, got {type(doc).__name__}")
    return doc


def _load_dir(yaml_path: Path) -> SceneAnchor:
    doc = _read_yaml(yaml_path)
    root = yaml_path.parent
    y = str(yaml_path)
    _check_version(doc.get("format"), doc.get("version"), y)
    name = str(_field(doc, "name", y, (str, int, float)))
    map_T_scene = check_rigid(_matrix(_field(doc, "scene_to_map", y, list), (4, 4), f"{y}: scene_to_map"),
                               f"{y}: scene_to_map")
    pts = _field(doc, "points", y, dict)
    ply_path = _inside(root, _field(pts, "file", f"{y}: points", str), f"{y}: points.file")
    count = _check_count(_field(pts, "count", f"{y}: points", int), MAX_POINTS, f"{y}: points.count")
    points, colors = read_ply(ply_path, max_bytes=MAX_SCENE_BYTES)
    if len(points) != count:
        raise SceneError(f"{ply_path}: holds {len(points)} vertices but {y} says points.count = {count}")
    points, colors = check_points(points, colors, str(ply_path))
    num = _check_count(_field(doc, "num_keyframes", y, int), MAX_KEYFRAMES, f"{y}: num_keyframes")
    entries = _field(doc, "keyframes", y, list)
    if len(entries) != num:
        raise SceneError(f"{y}: keyframes lists {len(entries)} entries but num_keyframes = {num}")
    keyframes: list[Keyframe] = []
    used = 0
    for i, entry in enumerate(entries):
        keyframes.append(_load_keyframe_entry(entry, i, root, y, MAX_KEYFRAME_PIXELS - used))
        used += keyframes[-1].image.shape[0] * keyframes[-1].image.shape[1]
    return _anchor(y, points, colors, map_T_scene, keyframes, name, **_render_fields(doc, y))


def _load_keyframe_entry(entry: Any, i: int, root: Path, y: str, pixels_left: int) -> Keyframe:
    """Keyframe ``i`` of a scene.yaml; SceneError when its image holds more than ``pixels_left``
    pixels (what MAX_KEYFRAME_PIXELS leaves after the keyframes before it), read from its header."""
    where = f"{y}: keyframes[{i}]"
    image_path = _inside(root, _field(entry, "image", where, str), f"{where}.image")
    w, h = image_size(image_path)
    if w * h > pixels_left:
        raise SceneError(f"{y}: keyframes: expected at most {MAX_KEYFRAME_PIXELS} pixels in all, "
                         f"keyframes[{i}] goes past it")
    image = read_image(image_path)
    size = _field(entry, "size", where, list)
    h, w = image.shape[:2]
    if size != [w, h]:
        raise SceneError(f"{image_path}: image is {w}x{h} but {where}.size says {size}")
    K = check_K_for_size(_matrix(_field(entry, "K", where, list), (3, 3), f"{where}.K"), w, h, f"{where}.K")
    c2w = check_rigid(_matrix(_field(entry, "c2w", where, list), (4, 4), f"{where}.c2w"), f"{where}.c2w")
    depth = None
    depth_file = entry.get("depth")
    if depth_file is not None:
        depth_path = _inside(root, str(depth_file), f"{where}.depth")
        raw = read_npy(depth_path, "keyframe depth")
        if raw.dtype != np.float32:
            raise SceneError(f"{depth_path}: depth dtype is {raw.dtype}, expected float32 metres")
        depth = check_depth(raw, str(depth_path), (h, w))
    return _keyframe(image, K, c2w, depth, str(entry.get("name", "")), where)


def _keyframe(image: np.ndarray, K: np.ndarray, c2w: np.ndarray, depth: np.ndarray | None, name: str,
              where: str) -> Keyframe:
    try:
        return Keyframe(image, K, c2w, depth, name)
    except WorldFMError as exc:
        raise SceneError(f"{where}: {exc}") from None


def _save_npz(anchor: SceneAnchor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": anchor.name,
        "num_keyframes": len(anchor.keyframes),
        "keyframes": [{"name": kf.name, "size": [kf.image.shape[1], kf.image.shape[0]],
                       "depth": kf.depth is not None} for kf in anchor.keyframes],
        **_render_doc(anchor),
    }
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps(meta)),
        "points": anchor.points,
        "colors": anchor.colors,
        "scene_to_map": anchor.map_T_scene,
    }
    for i, kf in enumerate(anchor.keyframes):
        arrays[f"kf{i:04d}_image"] = kf.image
        arrays[f"kf{i:04d}_K"] = kf.K
        arrays[f"kf{i:04d}_c2w"] = kf.c2w
        if kf.depth is not None:
            arrays[f"kf{i:04d}_depth"] = kf.depth
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _unexpected_array(key: str, num_keyframes: int) -> bool:
    m = _KEYFRAME_ARRAY.match(key)
    return int(m.group(1)) >= num_keyframes if m else key not in _SCENE_ARRAYS


def _check_npz_sizes(path: Path) -> None:
    """Refuse, before inflating anything, an archive whose entries inflate past MAX_SCENE_BYTES,
    whose .npy headers declare more data than their entry holds (numpy allocates from the header),
    or whose keyframe images or depth maps are larger than camera.MAX_PIXELS each or, counted once
    per keyframe, MAX_KEYFRAME_PIXELS in all."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > len(_SCENE_ARRAYS) + 4 * MAX_KEYFRAMES:
            raise SceneError(f"{path}: more archive entries than a scene of {MAX_KEYFRAMES} keyframes has")
        if sum(i.file_size for i in infos) > MAX_SCENE_BYTES:
            raise SceneError(f"{path}: the archive inflates to more than the limit of {MAX_SCENE_BYTES} bytes")
        pixels: dict[int, int] = {}  # per keyframe: the larger of its image and depth
        for info in infos:
            with zf.open(info) as f:
                shape, _ = npy_header(f, info.file_size, f"{path}: an archive entry")
            if info.filename == "points.npy" and shape and shape[0] > MAX_POINTS:
                raise SceneError(f"{path}: array 'points': expected at most {MAX_POINTS} points")
            m = _KEYFRAME_ARRAY.match(info.filename.removesuffix(".npy"))
            if m and m.group(2) in ("image", "depth") and len(shape) >= 2:
                check_image_size(shape[1], shape[0], f"{path}: array '{m.group(0)}'", SceneError)
                index = int(m.group(1))
                pixels[index] = max(pixels.get(index, 0), shape[0] * shape[1])
        if sum(pixels.values()) > MAX_KEYFRAME_PIXELS:
            raise SceneError(f"{path}: keyframes: expected at most {MAX_KEYFRAME_PIXELS} pixels in all, "
                             f"the archive holds {sum(pixels.values())}")


def _load_npz(path: Path) -> SceneAnchor:
    import zipfile

    require_file(path, "scene file")
    try:
        _check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except SceneError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise SceneError(f"{path}: not a readable .npz scene ({type(exc).__name__}; expected a NumPy .npz "
                         "archive of plain arrays)") from None
    p = str(path)

    def get(key: str, dtype: type, shape: tuple[int | None, ...]) -> np.ndarray:
        if key not in arrays:
            raise SceneError(f"{p}: array '{key}' is missing")
        a = arrays[key]
        if a.dtype != dtype or a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
            want = "x".join("N" if s is None else str(s) for s in shape)
            raise SceneError(f"{p}: array '{key}' is {a.dtype} {a.shape}, expected {np.dtype(dtype)} ({want})")
        return a

    if "meta" not in arrays:
        raise SceneError(f"{p}: array 'meta' is missing")
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError:
        raise SceneError(f"{p}: array 'meta' is not valid JSON text") from None
    if not isinstance(meta, dict):
        raise SceneError(f"{p}: 'meta' must be a JSON object")
    _check_version(meta.get("format"), meta.get("version"), f"{p}: meta")
    name = str(_field(meta, "name", f"{p}: meta", (str, int, float)))
    map_T_scene = check_rigid(get("scene_to_map", np.float64, (4, 4)), f"{p}: scene_to_map")
    points, colors = check_points(get("points", np.float32, (None, 3)), get("colors", np.uint8, (None, 3)),
                                  f"{p}: points")
    num = _check_count(_field(meta, "num_keyframes", f"{p}: meta", int), MAX_KEYFRAMES, f"{p}: meta.num_keyframes")
    infos = _field(meta, "keyframes", f"{p}: meta", list)
    if len(infos) != num:
        raise SceneError(f"{p}: meta.keyframes lists {len(infos)} entries but num_keyframes = {num}")
    stray = sorted(k for k in arrays if _unexpected_array(k, num))
    if stray:
        # only names of the format's own form are repeated
        named = f"'{stray[0]}'" if _KEYFRAME_ARRAY.match(stray[0]) else "not of the format"
        raise SceneError(f"{p}: unexpected array {named} (meta says num_keyframes = {num})")
    keyframes = []
    for i, info in enumerate(infos):
        where = f"{p}: keyframes[{i}]"
        image = get(f"kf{i:04d}_image", np.uint8, (None, None, 3))
        h, w = image.shape[:2]
        size = _field(info, "size", where, list)
        if size != [w, h]:
            raise SceneError(f"{where}: image is {w}x{h} but meta size says {size}")
        K = check_K_for_size(get(f"kf{i:04d}_K", np.float64, (3, 3)), w, h, f"{where}.K")
        c2w = check_rigid(get(f"kf{i:04d}_c2w", np.float64, (4, 4)), f"{where}.c2w")
        depth = None
        if _field(info, "depth", where, bool):
            depth = check_depth(get(f"kf{i:04d}_depth", np.float32, (h, w)), f"{where}.depth", (h, w))
        keyframes.append(_keyframe(image, K, c2w, depth, str(info.get("name", "")), where))
    return _anchor(f"{p}: meta", points, colors, map_T_scene, keyframes, name, **_render_fields(meta, f"{p}: meta"))
