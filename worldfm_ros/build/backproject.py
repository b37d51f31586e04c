"""Depth map → 3D points: the one back-projection every stage shares.

Convention (the renderer projects with exactly its inverse): OpenCV camera axes
(x right, y down, z forward); pixel (u, v) has its centre at integer coordinates;
depth is z-depth along the optical axis in metres, 0 (or less) = no data;

    X_c = ((u - cx) / fx * z, (v - cy) / fy * z, z),    X_w = c2w @ [X_c; 1].
"""

from __future__ import annotations

import numpy as np


def pixel_rays(K: np.ndarray, width: int, height: int, stride: int = 1) -> np.ndarray:
    """Camera-frame rays with unit z for the pixel grid ``v = 0, stride, …``, ``u = 0, stride, …``.

    K: (3, 3) intrinsics in pixels. Returns (H', W', 3) float64 rays (x/z, y/z, 1).
    """
    K = np.asarray(K, dtype=np.float64)
    u = np.arange(0, width, stride, dtype=np.float64)
    v = np.arange(0, height, stride, dtype=np.float64)
    x = (u - K[0, 2]) / K[0, 0]  # (W',)
    y = (v - K[1, 2]) / K[1, 1]  # (H',)
    rays = np.empty((len(v), len(u), 3))
    rays[..., 0] = x[None, :]
    rays[..., 1] = y[:, None]
    rays[..., 2] = 1.0
    return rays


def backproject_pixels(u: np.ndarray, v: np.ndarray, z: np.ndarray, K: np.ndarray,
                       c2w: np.ndarray | None = None) -> np.ndarray:
    """Points of pixels (u, v) at z-depth z (any equal shapes S, pixels and metres), as S + (3,)
    float64: in the camera frame (OpenCV axes), or in the world frame of ``c2w`` (4, 4) when given."""
    K = np.asarray(K, dtype=np.float64)
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=-1)
    if c2w is None:
        return cam
    T = np.asarray(c2w, dtype=np.float64)
    return cam @ T[:3, :3].T + T[:3, 3]


def backproject_depth(
    depth: np.ndarray,
    K: np.ndarray,
    c2w: np.ndarray,
    image: np.ndarray | None = None,
    stride: int = 1,
    max_depth: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Lift every valid pixel of a z-depth map into the world frame.

    depth: (H, W) z-depth in metres; pixels with depth <= 0, non-finite depth or depth
        > max_depth are skipped.
    K: (3, 3) intrinsics in pixels for this (H, W).
    c2w: (4, 4) camera-to-world, OpenCV camera axes, metres.
    image: optional (H, W, 3) uint8 RGB giving each point its colour.
    stride: keep every ``stride``-th pixel along both axes, starting at (0, 0).
    Returns points (N, 3) float32 in the world frame, in row-major pixel order, and
    colours (N, 3) uint8 (None when no image is given).
    """
    depth = np.asarray(depth)
    h, w = depth.shape
    if image is not None and np.asarray(image).shape[:2] != (h, w):
        raise ValueError(f"image shape {np.asarray(image).shape[:2]} does not match depth shape {(h, w)}")
    z = depth[::stride, ::stride].astype(np.float64)  # (H', W')
    valid = np.isfinite(z) & (z > 0)
    if max_depth is not None:
        valid &= z <= max_depth
    rays = pixel_rays(K, w, h, stride)[valid]  # (N, 3)
    cam = rays * z[valid][:, None]  # (N, 3) camera frame
    T = np.asarray(c2w, dtype=np.float64)
    points = (cam @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
    colors = None
    if image is not None:
        colors = np.ascontiguousarray(np.asarray(image)[::stride, ::stride][valid], dtype=np.uint8)
    return points, colors
