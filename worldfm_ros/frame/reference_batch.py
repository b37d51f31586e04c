"""The co-visibility counts of ``frame.reference`` for every keyframe at once, as one compiled loop.

``KeyframeSelector`` tests every sample point of every target view against every keyframe; as
numpy that is some twenty whole-array passes per keyframe. Here each point goes once through the
float64 operations of ``reference.covisible``, in the same order (numba does not contract them
into fused multiply-adds without ``fastmath``; rounding is half-to-even, ``np.rint``), so each
point's answer, and therefore each count, is the one ``covisible`` gives; the tests compare them.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def covisible_counts(points: np.ndarray, owner: np.ndarray, num_views: int, c2ws: np.ndarray,
                     intrinsics: np.ndarray, dims: np.ndarray, depths: np.ndarray, rel_tol: float,
                     abs_tol: float, near: float, strict: bool) -> np.ndarray:
    """(V, K) int64: how many of view v's points keyframe k confirms (``reference.covisible``).

    points: (P, 3) float64 scene-frame points (metres); owner: (P,) int64 the view of each;
    c2ws: (K, 4, 4) float64 keyframe camera-to-scene poses (OpenCV axes); intrinsics: (K, 4)
    float64 fx, fy, cx, cy (pixels); dims: (K, 3) int64 width, height and the offset of the
    keyframe's (H, W) z-depth (metres, 0 = no data) in the flat float64 ``depths``.
    """
    counts = np.zeros((num_views, len(c2ws)), np.int64)
    for k in range(len(c2ws)):
        T = c2ws[k]
        fx, fy, cx, cy = intrinsics[k, 0], intrinsics[k, 1], intrinsics[k, 2], intrinsics[k, 3]
        width, height, offset = dims[k, 0], dims[k, 1], dims[k, 2]
        for p in range(len(points)):
            d0, d1, d2 = points[p, 0] - T[0, 3], points[p, 1] - T[1, 3], points[p, 2] - T[2, 3]
            z = d0 * T[0, 2] + d1 * T[1, 2] + d2 * T[2, 2]
            if not z > near:
                continue
            x = d0 * T[0, 0] + d1 * T[1, 0] + d2 * T[2, 0]
            y = d0 * T[0, 1] + d1 * T[1, 1] + d2 * T[2, 1]
            u = np.rint(fx * x / z + cx)
            v = np.rint(fy * y / z + cy)
            if not (u >= 0 and u < width and v >= 0 and v < height):
                continue
            seen = depths[offset + np.int64(v) * width + np.int64(u)]
            if not seen > 0:
                continue
            error, tolerance = abs(z - seen), max(rel_tol * z, abs_tol)
            if (error < tolerance) if strict else (error <= tolerance):
                counts[owner[p], k] += 1
    return counts
