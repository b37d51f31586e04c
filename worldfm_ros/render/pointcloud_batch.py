"""Many cameras of one point cloud in one call on the CPU: the z-buffer of ``render.pointcloud``
as fused numba loops.

The torch renderer spends most of a small frame on its fixed cost: a dozen whole-array kernels
per camera, each a pass over every visible point, plus the per-call overhead of each. Here one
compiled loop visits each visible point of each camera once and keeps the running minimum key
of its pixel, then a second loop takes the square minimum and the colour of every pixel.

Exactness: each point goes through the same IEEE float32 operations, in the same order, as in
``PointCloudRenderer.render_tensors`` (numba does not contract them into fused multiply-adds
without ``fastmath``), rounding is half-to-even (``np.rint``), and the z-buffer key is the same
``depth bits << 32 | point index``, so every image is bit-identical to the torch renderer's;
the tests compare the two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: per-camera float32 constants: w2c rotation (row-major), translation, fx, fy, cx, cy, near,
#: the float32 just above near, the push-out factor of culled points
CONSTS = 19
#: per-camera integers: width, height, splat radius, padding, padded width, padded height,
#: offset of the camera's z-buffer in the shared buffer
DIMS = 7


@njit(cache=True, nogil=True, error_model="numpy")
def zbuffer(xyz: np.ndarray, index: np.ndarray, blocks: np.ndarray, block_start: np.ndarray,
            consts: np.ndarray, dims: np.ndarray, zbuf: np.ndarray) -> None:
    """Scatter-min the keys of the visible points of every camera into its padded z-buffer.

    xyz: (B, 3, S) float32 block coordinates (scene frame, metres); index: (B, S) int64 point index
    of each slot; blocks: visible block ids of all cameras, concatenated; block_start: (C + 1,)
    offsets of each camera's ids; consts: (C, CONSTS) float32; dims: (C, DIMS) int64; zbuf: flat
    int64, each camera's (hp, wp) z-buffer at its offset, filled with the empty key.
    """
    size = xyz.shape[2]
    zc = np.empty(size, np.float32)
    zbits = zc.view(np.int32)
    pixels = np.empty(size, np.int64)
    for c in range(len(block_start) - 1):
        k = consts[c]
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]
        t0, t1, t2, fx, fy, px, py, near, above, push_out = k[9], k[10], k[11], k[12], k[13], k[14], k[15], k[16], k[17], k[18]
        width, height, r, pad, wp = dims[c, 0], dims[c, 1], dims[c, 2], dims[c, 3], dims[c, 4]
        base = dims[c, 6] + pad * wp + pad
        u_lo, u_hi = np.float32(-1 - r), np.float32(width + r)
        v_lo, v_hi = np.float32(-1 - r), np.float32(height + r)
        zero, one = np.float32(0.0), np.float32(1.0)
        for bi in range(block_start[c], block_start[c + 1]):
            b = blocks[bi]
            xs, ys, zs = xyz[b, 0], xyz[b, 1], xyz[b, 2]
            for j in range(size):
                x, y, z = xs[j], ys[j], zs[j]
                cx = x * r00
                cx += y * r01
                cx += z * r02
                cx += t0
                cy = x * r10
                cy += y * r11
                cy += z * r12
                cy += t1
                cz = x * r20
                cz += y * r21
                cz += z * r22
                cz += t2
                zc[j] = cz
                zdiv = max(cz, near)
                behind = min(max(above - cz, zero), one)
                push = behind * push_out
                u = np.rint(cx * fx / zdiv + px) + push
                v = np.rint(cy * fy / zdiv + py) + push
                u = min(max(u, u_lo), u_hi)
                v = min(max(v, v_lo), v_hi)
                pixels[j] = base + np.int64(v) * wp + np.int64(u)
            idx = index[b]
            for j in range(size):
                key = (np.int64(zbits[j]) << 32) | idx[j]
                pix = pixels[j]
                old = zbuf[pix]
                zbuf[pix] = key if key < old else old


@njit(cache=True, nogil=True, error_model="numpy")
def resolve_square(zbuf: np.ndarray, dims: np.ndarray, rgba: np.ndarray, rgb: np.ndarray, depth: np.ndarray,
                   valid: np.ndarray, out_start: np.ndarray) -> None:
    """Each camera's image from its z-buffer: per pixel the minimum key of the (2r + 1)² square
    around it, its depth (0 where empty), validity and the winning point's colour.

    rgba: (N + 1, 4) uint8 colours (row N black); rgb (P, 3) uint8, depth (P,) float32, valid (P,)
    bool: every camera's pixels, row-major, from ``out_start[c]``.
    """
    words = zbuf.view(np.int32)  # little-endian halves of each key: [2i] point index, [2i + 1] depth bits
    depths = zbuf.view(np.float32)
    for c in range(len(out_start)):
        width, height, r, pad, wp = dims[c, 0], dims[c, 1], dims[c, 2], dims[c, 3], dims[c, 4]
        z0, o = dims[c, 6], out_start[c]
        for row in range(height):
            for col in range(width):
                at = z0 + (pad + row - r) * wp + pad + col - r
                best = zbuf[at]
                for dy in range(-r, r + 1):
                    line = z0 + (pad + row + dy) * wp + pad + col
                    for dx in range(-r, r + 1):
                        if zbuf[line + dx] < best:
                            at, best = line + dx, zbuf[line + dx]
                d = depths[2 * at + 1]
                if d == np.inf:
                    d = np.float32(0.0)
                p = o + row * width + col
                depth[p] = d
                valid[p] = d != 0
                winner = words[2 * at]
                rgb[p, 0] = rgba[winner, 0]
                rgb[p, 1] = rgba[winner, 1]
                rgb[p, 2] = rgba[winner, 2]
