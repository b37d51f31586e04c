"""Spatial blocks of a point cloud for conservative frustum culling.

The renderer's per-point work is proportional to the number of points it
transforms. Grouping the cloud into blocks of nearby points (Morton order), each
with an axis-aligned bounding box, lets a frame skip every block that lies
wholly behind the near plane or wholly outside one side of the view frustum.
The test is conservative: a block is dropped only when every point in it would
be culled by the exact per-point test as well, so culling never changes a
rendered pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Morton code resolution per axis: 3 * 10 bits fit an int64 with room to spare.
MORTON_BITS = 10
# Error bound of one float32 camera coordinate, relative to |R| |p| + |t|: 6 rounded ops
# plus the float32 rounding of the pose, each at most 2**-24 of that magnitude (8 allowed).
COORD_REL_ERR = 8.0 * 2.0**-24


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the low 10 bits of v (int64)."""
    v = v & 0x3FF
    v = (v | (v << 16)) & 0x030000FF
    v = (v | (v << 8)) & 0x0300F00F
    v = (v | (v << 4)) & 0x030C30C3
    v = (v | (v << 2)) & 0x09249249
    return v


def morton_order(points: np.ndarray) -> np.ndarray:
    """Permutation (N,) int64 sorting points (N, 3) along a Z-order curve of their bounding box."""
    lo = points.min(axis=0).astype(np.float64)
    extent = np.maximum(points.max(axis=0) - lo, 1e-9)
    q = ((points - lo) / extent * (2**MORTON_BITS - 1)).astype(np.int64)
    code = _spread_bits(q[:, 0]) | (_spread_bits(q[:, 1]) << 1) | (_spread_bits(q[:, 2]) << 2)
    return np.argsort(code, kind="stable")


@dataclass(frozen=True)
class BlockLayout:
    """Points grouped into ``num_blocks`` blocks of ``block_size`` consecutive (reordered) points.

    order: (num_blocks * block_size,) int64 index of the input point stored in each slot;
        the last block is padded by repeating the cloud's last point (same index, so the
        duplicate can never change a z-buffer minimum).
    lo, hi: (num_blocks, 3) float64 corners of each block's bounding box, input frame, metres.
    scale: max |coordinate| of the cloud in metres (bounds float32 rounding errors).
    """

    order: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    block_size: int
    scale: float

    @property
    def num_blocks(self) -> int:
        return int(len(self.lo))

    @classmethod
    def build(cls, points: np.ndarray, block_size: int) -> "BlockLayout":
        """Group points (N, 3) float32 (N >= 1) into Morton-ordered blocks of block_size."""
        n = len(points)
        order = morton_order(points)
        num_blocks = -(-n // block_size)
        order = np.concatenate([order, np.full(num_blocks * block_size - n, order[-1], np.int64)])
        grouped = points[order].reshape(num_blocks, block_size, 3)
        return cls(order, grouped.min(axis=1).astype(np.float64), grouped.max(axis=1).astype(np.float64), block_size,
                   float(np.abs(points).max()))

    def visible(self, w2c: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                width: int, height: int, near: float, margin_px: float) -> np.ndarray:
        """Indices (K,) int64 of the blocks that may hold a point landing in the image.

        w2c: (4, 4) world-to-camera, OpenCV axes. A block is dropped when its 8 corners
        are all behind ``near``, or all more than ``margin_px`` pixels beyond one image side.
        Both tests hold for the box dilated by the float32 error bound of a transformed
        coordinate: the renderer computes each point's projection exactly (up to a few
        ulps, which the pixel margin absorbs) for a point within that bound of the true one.
        """
        return self.visible_batch(w2c[None], np.array([[fx, fy, cx, cy]]), np.array([[width, height]]), near,
                                  np.array([margin_px]))[0]

    def visible_batch(self, w2cs: np.ndarray, intrinsics: np.ndarray, sizes: np.ndarray, near: float,
                      margins_px: np.ndarray) -> list[np.ndarray]:
        """``visible`` of C cameras in one pass over the blocks: w2cs (C, 4, 4), intrinsics (C, 4)
        fx, fy, cx, cy (pixels), sizes (C, 2) width, height, margins_px (C,). Culling only drops
        blocks whose points cannot reach an image, so which side of the rounding a block on the
        edge of the margin falls does not change a rendered pixel."""
        fx, fy, cx, cy = np.asarray(intrinsics, np.float64).T
        width, height = np.asarray(sizes, np.float64).T
        margin, zero, one = np.asarray(margins_px, np.float64), np.zeros(len(fx)), np.ones(len(fx))
        # Rows: left, right, top, bottom side planes through the camera centre (value > 0 means
        # beyond that side by more than the margin, for any z > 0), then camera z.
        planes = np.stack([
            np.stack([-fx, zero, -0.5 - margin - cx], 1),
            np.stack([fx, zero, -(width - 0.5 + margin - cx)], 1),
            np.stack([zero, -fy, -0.5 - margin - cy], 1),
            np.stack([zero, fy, -(height - 0.5 + margin - cy)], 1),
            np.stack([zero, zero, one], 1),
        ], 1)  # (C, 5, 3)
        # Bound on the float32 error of a transformed coordinate (|R p| + |t| <= sqrt(3) s + |t|).
        err = COORD_REL_ERR * (np.sqrt(3.0) * self.scale + np.abs(w2cs[:, :3, 3]).sum(axis=1))  # (C,)
        tol = err[:, None] * np.abs(planes).sum(axis=2)  # (C, 5) how far the dilation moves each plane value
        g = planes @ w2cs[:, :3]  # (C, 5, 4) each plane as a linear function of world coordinates
        gpos = np.maximum(g[:, :, :3], 0.0).transpose(2, 0, 1).reshape(3, -1)  # (3, C * 5)
        gneg = np.minimum(g[:, :, :3], 0.0).transpose(2, 0, 1).reshape(3, -1)
        # Extremes of a linear function over a box: per axis, the corner the coefficient's sign picks.
        f_min = (self.lo @ gpos + self.hi @ gneg).reshape(-1, len(fx), 5) + g[:, :, 3]  # (B, C, 5)
        f_max = (self.hi @ gpos + self.lo @ gneg).reshape(-1, len(fx), 5) + g[:, :, 3]
        behind = f_max[:, :, 4] < near - tol[:, 4]
        outside = (f_min[:, :, :4] > tol[:, :4]).any(axis=2)
        keep = ~(behind | outside)  # (B, C)
        return [np.flatnonzero(keep[:, c]) for c in range(len(fx))]
