"""Cleaning and fusing real RGB-D observations before they become anchor points.

Real depth maps carry *flying pixels* (depths between foreground and background where a pixel
straddles a depth edge), noise that grows with range and with the surface's slant, and colours
that disagree between views (misregistered colour/depth cameras, auto-exposure). Three steps:

* ``flying_pixel_mask``: pixels whose 3 x 3 neighbourhood spans a relative depth jump above
  ``max_jump`` lie on a discontinuity; they are dropped (the views that see either side
  head-on supply those surfaces);
* ``observation_confidence``: a weight per pixel in (0, 1], the product of a range term
  ``(z_ref / z)^2`` (Kinect-style depth noise grows with z^2), a viewing-angle term (the cosine
  between the ray and the surface normal from the depth gradient) and an edge-proximity term
  (ramping from 0.1 at a depth edge or hole to 1 at ``edge_px`` pixels away);
* ``fuse_observations``: every point of every view is binned into ``voxel``-sized cells; a cell's
  position is the confidence-weighted mean of its observations and its colour a robust weighted
  mean (iteratively reweighted with a Cauchy kernel of scale ``color_scale`` levels), so that
  a minority of views with an offset colour do not shift the result the way a plain mean does.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from worldfm_ros.scene.anchor import Keyframe
from worldfm_ros.build.backproject import backproject_depth
from worldfm_ros.scene.downsample import _voxel_groups

DEFAULT_MAX_JUMP = 0.04
DEFAULT_FUSE_VOXEL = 0.01
_MIN_EDGE_WEIGHT = 0.1


def flying_pixel_mask(depth: np.ndarray, max_jump: float = DEFAULT_MAX_JUMP) -> np.ndarray:
    """(H, W) bool, True at valid pixels whose 3 x 3 neighbourhood holds a valid depth differing
    from their own by more than ``max_jump`` times their depth.

    depth: (H, W) z-depth in metres, <= 0 or non-finite = no data.
    """
    z = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
    valid = z > 0
    kernel = np.ones((3, 3), np.uint8)
    z_max = cv2.dilate(z, kernel)
    z_min = cv2.erode(np.where(valid, z, np.float32(np.inf)), kernel)
    jump = np.maximum(z_max - z, z - z_min)
    return valid & (jump > max_jump * z)


def _normals_cosine(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """|cos| of the angle between each pixel's viewing ray and the surface normal, (H, W)."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    z = depth.astype(np.float32)
    pts = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=-1)  # (H, W, 3)
    du = np.zeros_like(pts)
    dv = np.zeros_like(pts)
    du[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    dv[1:-1] = pts[2:] - pts[:-2]
    n = np.cross(du, dv)
    norm = np.linalg.norm(n, axis=-1)
    ray = np.linalg.norm(pts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.abs((n * pts).sum(-1)) / (norm * ray)
    return np.nan_to_num(cos, nan=1.0)


def observation_confidence(depth: np.ndarray, K: np.ndarray, edges: np.ndarray | None = None,
                           z_ref: float = 1.0, edge_px: float = 4.0, min_cos: float = 0.1) -> np.ndarray:
    """(H, W) float32 weights in (0, 1] of a depth map's pixels (module docstring); 0 where no data.

    depth: (H, W) z-depth, metres; K: (3, 3) pixels; edges: (H, W) bool depth discontinuities
    (default ``flying_pixel_mask``); z_ref: range (m) up to which the range term is 1.
    """
    valid = np.isfinite(depth) & (depth > 0)
    z = np.where(valid, depth, 0).astype(np.float32)
    if edges is None:
        edges = flying_pixel_mask(z)
    w_range = np.minimum(1.0, (z_ref / np.maximum(z, 1e-6)) ** 2)
    w_angle = np.maximum(_normals_cosine(z, np.asarray(K, np.float64)), min_cos)
    boundary = (~valid | edges).astype(np.uint8)
    if boundary.any():
        dist = cv2.distanceTransform(1 - boundary, cv2.DIST_L2, 3)
        w_edge = np.clip(dist / edge_px, _MIN_EDGE_WEIGHT, 1.0)
    else:
        w_edge = np.ones_like(z)
    return np.where(valid, w_range * w_angle * w_edge, 0).astype(np.float32)


def frame_observations(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray, image: np.ndarray, stride: int = 1,
                       max_jump: float = DEFAULT_MAX_JUMP,
                       max_depth: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One RGB-D frame's observations with its flying pixels dropped (``max_jump`` 0 keeps all).

    depth: (H, W) z-depth, metres; K: (3, 3) pixels; c2w: (4, 4) camera-to-world, OpenCV axes;
    image: (H, W, 3) uint8 RGB; stride: every ``stride``-th pixel along both axes.
    Returns points (N, 3) float32 world, colours (N, 3) uint8 and confidences (N,) float32 > 0.
    """
    edges = flying_pixel_mask(depth, max_jump) if max_jump > 0 else np.zeros(depth.shape, bool)
    clean = np.where(edges, 0.0, depth).astype(np.float32)
    points, colors = backproject_depth(clean, K, c2w, image, stride, max_depth)
    conf = observation_confidence(clean, K, edges)[::stride, ::stride]
    kept = conf > 0
    if max_depth is not None:
        kept &= clean[::stride, ::stride] <= max_depth
    return points, colors, conf[kept]


def fuse_observations(points: np.ndarray, colors: np.ndarray, weights: np.ndarray, voxel: float = DEFAULT_FUSE_VOXEL,
                      color_scale: float = 12.0, iterations: int = 3, return_weights: bool = False):
    """One point per occupied ``voxel`` (metres) cell: weighted mean position, robust colour.

    points: (N, 3) metres; colors: (N, 3) uint8; weights: (N,) > 0 confidences.
    color_scale: Cauchy scale in 0-255 levels of the colour reweighting; iterations: IRLS steps.
    Returns (M, 3) float32 and (M, 3) uint8, ordered by voxel index (deterministic), and with
    ``return_weights`` the (M,) float64 sum of each cell's weights.
    """
    p = np.asarray(points, np.float64)
    c = np.asarray(colors, np.float64)
    w = np.asarray(weights, np.float64)
    if voxel <= 0:
        raise ValueError(f"fusion voxel must be > 0 metres, got {voxel}")
    inverse, count = _voxel_groups(p - p.min(axis=0), voxel)
    m = len(count)

    def weighted_mean(values: np.ndarray, wt: np.ndarray) -> np.ndarray:
        total = np.bincount(inverse, wt, minlength=m)
        return np.stack([np.bincount(inverse, wt * values[:, k], minlength=m) for k in range(values.shape[1])],
                        axis=1) / total[:, None]

    position = weighted_mean(p, w)
    colour = weighted_mean(c, w)
    for _ in range(iterations):
        residual = np.linalg.norm(c - colour[inverse], axis=1)
        colour = weighted_mean(c, w / (1.0 + (residual / color_scale) ** 2))
    out = position.astype(np.float32), np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return (*out, np.bincount(inverse, w, minlength=m)) if return_weights else out


def fuse_frames(frames: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]], keyframes: set[int],
                stride: int = 2, max_jump: float = DEFAULT_MAX_JUMP, max_depth: float | None = None,
                voxel: float = DEFAULT_FUSE_VOXEL,
                chunk: int | None = None) -> tuple[np.ndarray, np.ndarray, list[Keyframe]]:
    """Every frame's cleaned observations, fused (``voxel`` 0: kept as they are), and the keyframes.

    frames: (name, image (H, W, 3) uint8 RGB, z-depth (H, W) metres, K (3, 3) pixels, c2w (4, 4)
    camera-to-world, OpenCV axes) each, consumed one at a time; keyframes: indices of the frames
    that become keyframes (full image and depth). chunk: fuse every ``chunk`` frames as they come
    and then fuse the chunks' cells (weighted by their summed confidence), so that memory is
    bounded by a chunk's observations, not all of them; the robust colour then rejects outliers
    within a chunk only (None: all observations at once, exact). Returns points (N, 3) float32,
    colours (N, 3) uint8 and the keyframes in frame order.
    """
    points, colors, weights, kept = [], [], [], []
    fused: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        p, c, w = np.concatenate(points), np.concatenate(colors), np.concatenate(weights)
        fused.append(fuse_observations(p, c, w, voxel, return_weights=True) if len(p) else (p, c, w))
        points.clear(), colors.clear(), weights.clear()

    for i, (name, image, depth, K, c2w) in enumerate(frames):
        p, c, w = frame_observations(depth, K, c2w, image, stride, max_jump, max_depth)
        points.append(p)
        colors.append(c)
        weights.append(w)
        if i in keyframes:
            kept.append(Keyframe(image, K, c2w, depth, name))
        if chunk and voxel > 0 and len(points) >= chunk:
            flush()
    if fused:
        if points:
            flush()
        p, c, w = (np.concatenate(a) for a in zip(*fused))
        return (*fuse_observations(p, c, w, voxel), kept) if len(p) else (p, c, kept)
    if not points:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), kept
    p, c = np.concatenate(points), np.concatenate(colors)
    if voxel > 0 and len(p):
        p, c = fuse_observations(p, c, np.concatenate(weights), voxel)
    return p, c, kept
