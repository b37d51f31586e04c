"""Input validation shared by the scene store and the builders.

Each check raises :class:`SceneError` with one line naming the file/field (``where``)
and what was expected.
"""

from __future__ import annotations

import numpy as np

from worldfm_ros.camera import check_pose
from worldfm_ros.errors import CameraError, SceneError


def check_K_for_size(K: np.ndarray, width: int, height: int, where: str) -> np.ndarray:
    """Validate a (3, 3) pinhole K in pixels for a ``width`` x ``height`` image.

    The principal point must lie on the image (within half a pixel of its border):
    a K written for another resolution (e.g. the 512² canvas used on a 64×48 image)
    fails here. Returns K as float64.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise SceneError(f"{where}: K must be a finite 3x3 matrix, got shape {K.shape}")
    if K[0, 1] != 0 or K[1, 0] != 0 or np.any(K[2] != [0.0, 0.0, 1.0]) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise SceneError(f"{where}: K must be [[fx,0,cx],[0,fy,cy],[0,0,1]] with fx, fy > 0, got {K.tolist()}")
    cx, cy = K[0, 2], K[1, 2]
    if not (-0.5 <= cx <= width - 0.5 and -0.5 <= cy <= height - 0.5):
        raise SceneError(
            f"{where}: K principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} image "
            "(K is for another image size?)"
        )
    return K


def check_rigid(T: np.ndarray, where: str, atol: float = 1e-4) -> np.ndarray:
    """Validate a rigid (4, 4) (or (3, 4)) transform; returns it as (4, 4) float64.

    :func:`worldfm_ros.camera.check_pose` with its error raised as a SceneError naming ``where``.
    """
    try:
        return check_pose(T, where, atol)
    except CameraError as exc:
        raise SceneError(str(exc)) from None


def orthonormalize_pose(T: np.ndarray, where: str, tol: float = 1e-2) -> np.ndarray:
    """Snap a nearly rigid (4, 4) pose to the nearest rotation (SVD).

    Datasets print poses with few digits (7-Scenes: |RᵀR - I| up to 4e-4), more than
    the 1e-4 that a stored scene accepts; errors above ``tol`` are real errors.
    """
    from scipy.spatial.transform import Rotation

    T = np.asarray(T, dtype=np.float64)
    if T.shape == (3, 4):
        T = np.vstack([T, [0.0, 0.0, 0.0, 1.0]])
    check_rigid(T, where, atol=tol)
    out = T.copy()
    out[:3, :3] = Rotation.from_matrix(T[:3, :3]).as_matrix()
    out[3] = [0.0, 0.0, 0.0, 1.0]
    return out


def check_depth(depth: np.ndarray, where: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Validate a z-depth map in metres: finite, >= 0 (0 = no data), optionally of (H, W) ``size``.

    Returns it as float32.
    """
    d = np.asarray(depth)
    if d.ndim != 2:
        raise SceneError(f"{where}: depth must be a 2-D (H, W) map, got shape {d.shape}")
    if size is not None and d.shape != tuple(size):
        raise SceneError(f"{where}: depth size {d.shape[1]}x{d.shape[0]} does not match image size {size[1]}x{size[0]}")
    d = d.astype(np.float32, copy=False)
    bad = ~np.isfinite(d)
    if np.any(bad):
        raise SceneError(f"{where}: depth contains {int(bad.sum())} NaN/inf pixels (expected finite metres, 0 = no data)")
    if np.any(d < 0):
        raise SceneError(f"{where}: depth contains negative values (expected metres >= 0, 0 = no data)")
    return d

