"""A coloured point cloud as every renderer takes it (numpy, no torch): the one check of its
positions and colours, used by the renderers, the scene anchor, the store and the builders."""

from __future__ import annotations

import numpy as np

from worldfm_ros.errors import SceneError


def check_points(points: np.ndarray, colors: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a coloured cloud, the one check every stage uses (builders, store, scene anchor,
    renderers): (N, 3) finite positions with N > 0 and (N, 3) uint8 colours. Returns them as
    contiguous float32 points and uint8 colours; SceneError naming ``where`` otherwise."""
    p = np.asarray(points)
    c = np.asarray(colors)
    if p.ndim != 2 or p.shape[1] != 3:
        raise SceneError(f"{where}: points must be (N, 3), got shape {p.shape}")
    if len(p) == 0:
        raise SceneError(f"{where}: the point cloud is empty (0 points)")
    p = np.ascontiguousarray(p, dtype=np.float32)
    if not np.all(np.isfinite(p)):
        raise SceneError(f"{where}: point positions contain NaN or inf")
    if c.shape != p.shape:
        raise SceneError(f"{where}: colours shape {c.shape} does not match points shape {p.shape}")
    if c.dtype != np.uint8:
        raise SceneError(f"{where}: colours must be uint8 (0..255), got {c.dtype}")
    return p, np.ascontiguousarray(c)
