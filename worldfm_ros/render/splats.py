"""Tile-based Gaussian-splat rasterizer on the CPU (numba), after 3DGS (Kerbl et al. 2023) and gsplat.

Per view, three passes:

1. **project** (parallel over blocks of Gaussians; whole blocks that cannot reach the image are
   culled first, ``SplatRenderer.visible_blocks``): centre to the camera (OpenCV axes: x right, y down,
   z forward), 3D covariance R S S^T R^T moved to the camera, EWA projection J Sigma J^T through the
   pinhole Jacobian (with gsplat's clamp of x/z, y/z to 1.3 x the field of view), plus a 0.3 px^2
   low-pass (gsplat's ``eps2d``), inverted to the conic; the colour along the ray from the camera
   centre from the SH coefficients; culled below the near plane, outside the image, or so faint
   that no pixel could reach 1/255.
2. **bin**: visible Gaussians sorted front to back by centre depth (a radix sort; equal depths in
   Gaussian order), then listed per 16 x 16 tile they may touch (a parallel counting sort, so each
   tile's list stays in depth order).
3. **rasterize** (parallel over tiles, handed out dynamically): per pixel, front-to-back alpha compositing
   alpha_i = min(0.999, o_i exp(-1/2 d^T conic d)), skipping alpha < 1/255, stopping before the
   transmittance falls to 1e-4 (gsplat's and 3DGS's rule).

Pixel convention: pixel (u, v) has its centre at (u, v), as OpenCV and ``CameraInfo`` put it (gsplat
puts it at (u + 0.5, v + 0.5): shift cx, cy by 0.5 to compare). Depth is the *expected* z-depth
sum_i w_i z_i / sum_i w_i of the composited centres (gsplat's "ED"), metres; a pixel is valid where
the accumulated opacity reaches ``VALID_ALPHA``. Colours are composited over black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numba import njit, parallel_chunksize, prange

from worldfm_ros.camera import PinholeCamera, check_pose, invert_pose
from worldfm_ros.render.blocks import BlockLayout
from worldfm_ros.render.gaussians import Gaussians
from worldfm_ros.render.result import RenderResult
from worldfm_ros.render.sh import sh_basis_into

TILE = 16
#: gsplat's screen-space low-pass, px^2, added to every projected covariance
EPS2D = 0.3
#: nearest centre depth drawn, metres (gsplat's default; nearer centres blow up under the linearised projection)
SPLAT_NEAR = 0.01
SPLAT_FAR = 1e10
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4
#: accumulated opacity from which a pixel counts as surface (RenderResult.valid)
VALID_ALPHA = 0.5
#: support of a splat on screen, in standard deviations along x and y (gsplat's 3.33)
RADIUS_SIGMAS = 3.33
#: Gaussians per block of the frustum culling: at least this many, and at most MAX_BLOCKS blocks
MIN_BLOCK_SIZE = 256
MAX_BLOCKS = 8192
# work items of the parallel binning (each has a count per tile)
_BIN_CHUNKS = 16
# tiles per work item of the compositing, handed out as threads come free (tiles differ in cost)
_TILE_CHUNK = 4
# the compositing's constants as float32, so that numba keeps its arithmetic in float32
_F32 = np.float32
_F32_ALPHA_MIN, _F32_ALPHA_MAX, _F32_T_MIN = _F32(ALPHA_MIN), _F32(ALPHA_MAX), _F32(T_MIN)
_F32_HALF, _F32_ONE, _F32_ZERO = _F32(0.5), _F32(1.0), _F32(0.0)


@dataclass
class SplatImage:
    """One rasterized view, float32 (H, W) arrays: rgb (H, W, 3) in [0, 1] composited over black,
    alpha the accumulated opacity in [0, 1], depth the expected z-depth in metres (0 where alpha = 0)."""

    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray

    def result(self, valid_alpha: float = VALID_ALPHA) -> RenderResult:
        """As a RenderResult: uint8 colour, depth and validity where alpha >= ``valid_alpha``."""
        valid = self.alpha >= valid_alpha
        rgb = np.clip(self.rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return RenderResult(rgb, np.where(valid, self.depth, np.float32(0)), valid, alpha=self.alpha)


@dataclass
class Projected:
    """Pass 1's output for the M Gaussians of the blocks that frustum culling kept, in block order
    (rows of culled ones are undefined but for radius 0).

    index: (M,) int64 the Gaussian of each row; xy: (M, 2) float32 pixel centre; conic: (M, 3)
    float32 (a, b, c) of the inverse 2D covariance [[a, b], [b, c]], px^-2; depth: (M,) float32
    camera z, metres; radius: (M, 2) int32 support half-size in pixels, 0 = culled; color: (M, 3)
    float32 RGB along the view ray, >= 0; opacity: (M,) float32 the Gaussian's opacity.
    """

    index: np.ndarray
    xy: np.ndarray
    conic: np.ndarray
    depth: np.ndarray
    radius: np.ndarray
    color: np.ndarray
    opacity: np.ndarray

    @property
    def drawn(self) -> np.ndarray:
        """(D,) int64 rows of the Gaussians that reach the image (radius > 0)."""
        return np.flatnonzero(self.radius[:, 0] > 0)


@njit(parallel=True, cache=True)
def _project(means, quats, scales, opac, sh, degree, order, blocks, block_size, w2c, campos, fx, fy, cx, cy, width,
             height, near, far, eps2d, index, xy, conic, depth, radius, color, opacity):
    """Pass 1 of the Gaussians (stored in slot order) of the blocks ``blocks`` (K,) of ``block_size``
    slots: block k's j-th Gaussian goes to output row k * block_size + j, with ``order`` of its slot
    as its ``index``."""
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    r00, r01, r02, t0 = w2c[0, 0], w2c[0, 1], w2c[0, 2], w2c[0, 3]
    r10, r11, r12, t1 = w2c[1, 0], w2c[1, 1], w2c[1, 2], w2c[1, 3]
    r20, r21, r22, t2 = w2c[2, 0], w2c[2, 1], w2c[2, 2], w2c[2, 3]
    nk = (degree + 1) * (degree + 1)
    log_alpha_min = math.log(ALPHA_MIN)
    n = means.shape[0]
    for blk in prange(blocks.shape[0]):
        basis = np.empty(16)
        first = blocks[blk] * block_size
        for j in range(block_size):
            s = blk * block_size + j
            radius[s, 0] = 0
            radius[s, 1] = 0
            i = first + j  # the Gaussians are stored in slot order
            if i >= n:
                continue  # the last block's padding
            index[s] = order[i]
            o = opac[i]
            if o < ALPHA_MIN:
                continue
            mx, my, mz = means[i, 0], means[i, 1], means[i, 2]
            x = r00 * mx + r01 * my + r02 * mz + t0
            y = r10 * mx + r11 * my + r12 * mz + t1
            z = r20 * mx + r21 * my + r22 * mz + t2
            if z <= near or z >= far:
                continue
            qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
            sx, sy, sz = scales[i, 0], scales[i, 1], scales[i, 2]
            # M = R_g S, columns scaled
            m00 = (1 - 2 * (qy * qy + qz * qz)) * sx
            m01 = 2 * (qx * qy - qw * qz) * sy
            m02 = 2 * (qx * qz + qw * qy) * sz
            m10 = 2 * (qx * qy + qw * qz) * sx
            m11 = (1 - 2 * (qx * qx + qz * qz)) * sy
            m12 = 2 * (qy * qz - qw * qx) * sz
            m20 = 2 * (qx * qz - qw * qy) * sx
            m21 = 2 * (qy * qz + qw * qx) * sy
            m22 = (1 - 2 * (qx * qx + qy * qy)) * sz
            # C = W M (camera frame), Sigma_c = C C^T
            c00 = r00 * m00 + r01 * m10 + r02 * m20
            c01 = r00 * m01 + r01 * m11 + r02 * m21
            c02 = r00 * m02 + r01 * m12 + r02 * m22
            c10 = r10 * m00 + r11 * m10 + r12 * m20
            c11 = r10 * m01 + r11 * m11 + r12 * m21
            c12 = r10 * m02 + r11 * m12 + r12 * m22
            c20 = r20 * m00 + r21 * m10 + r22 * m20
            c21 = r20 * m01 + r21 * m11 + r22 * m21
            c22 = r20 * m02 + r21 * m12 + r22 * m22
            s00 = c00 * c00 + c01 * c01 + c02 * c02
            s01 = c00 * c10 + c01 * c11 + c02 * c12
            s02 = c00 * c20 + c01 * c21 + c02 * c22
            s11 = c10 * c10 + c11 * c11 + c12 * c12
            s12 = c10 * c20 + c11 * c21 + c12 * c22
            s22 = c20 * c20 + c21 * c21 + c22 * c22
            tx = z * min(max(x / z, -lim_x_neg), lim_x_pos)
            ty = z * min(max(y / z, -lim_y_neg), lim_y_pos)
            j00 = fx / z
            j02 = -fx * tx / (z * z)
            j11 = fy / z
            j12 = -fy * ty / (z * z)
            a = j00 * (j00 * s00 + j02 * s02) + j02 * (j00 * s02 + j02 * s22) + eps2d
            b = j00 * (j11 * s01 + j12 * s02) + j02 * (j11 * s12 + j12 * s22)
            c = j11 * (j11 * s11 + j12 * s12) + j12 * (j11 * s12 + j12 * s22) + eps2d
            det = a * c - b * b
            if det <= 0.0:
                continue
            u = fx * x / z + cx
            v = fy * y / z + cy
            # beyond sqrt(2 ln(255 o)) standard deviations no pixel reaches 1/255: the support shrinks with opacity
            extent = min(RADIUS_SIGMAS, math.sqrt(max(2.0 * (math.log(o) - log_alpha_min), 0.0)))
            rx = math.ceil(extent * math.sqrt(a))
            ry = math.ceil(extent * math.sqrt(c))
            if rx <= 0 or ry <= 0 or u + rx <= 0 or u - rx >= width or v + ry <= 0 or v - ry >= height:
                continue
            inv = 1.0 / det
            xy[s, 0] = u
            xy[s, 1] = v
            conic[s, 0] = c * inv
            conic[s, 1] = -b * inv
            conic[s, 2] = a * inv
            depth[s] = z
            opacity[s] = o
            radius[s, 0] = rx
            radius[s, 1] = ry
            dx, dy, dz = mx - campos[0], my - campos[1], mz - campos[2]
            norm = math.sqrt(dx * dx + dy * dy + dz * dz)
            if norm > 0:
                dx, dy, dz = dx / norm, dy / norm, dz / norm
            sh_basis_into(degree, dx, dy, dz, basis)
            for ch in range(3):
                acc = 0.0
                for k in range(nk):
                    acc += basis[k] * sh[i, k, ch]
                color[s, ch] = max(acc + 0.5, 0.0)


@njit(cache=True, inline="always")
def _tile_rect(xy, radius, g, tiles_x, tiles_y):
    """Tiles [x0, x1) x [y0, y1) that Gaussian g's support rectangle touches."""
    x0 = max(int(math.floor((xy[g, 0] - radius[g, 0]) / TILE)), 0)
    x1 = min(int(math.floor((xy[g, 0] + radius[g, 0]) / TILE)) + 1, tiles_x)
    y0 = max(int(math.floor((xy[g, 1] - radius[g, 1]) / TILE)), 0)
    y1 = min(int(math.floor((xy[g, 1] + radius[g, 1]) / TILE)) + 1, tiles_y)
    return x0, x1, y0, y1


@njit(cache=True, inline="always")
def tile_pixels(t, tiles_x, width, height):
    """Pixels [px0, px1) x [py0, py1) of tile t (row-major, ``tiles_x`` tiles a row)."""
    px0, py0 = (t % tiles_x) * TILE, (t // tiles_x) * TILE
    return px0, min(px0 + TILE, width), py0, min(py0 + TILE, height)


@njit(cache=True, inline="always")
def support_in_tile(xy, radius, i, px0, px1, py0, py1):
    """Pixels [x0, x1) x [y0, y1) of the tile [px0, px1) x [py0, py1) inside Gaussian i's support."""
    u, v = xy[i, 0], xy[i, 1]
    x0 = max(px0, int(math.ceil(u - radius[i, 0])))
    x1 = min(px1, int(math.floor(u + radius[i, 0])) + 1)
    y0 = max(py0, int(math.ceil(v - radius[i, 1])))
    y1 = min(py1, int(math.floor(v + radius[i, 1])) + 1)
    return x0, x1, y0, y1


@njit(parallel=True, cache=True)
def _bin(order, xy, radius, tiles_x, tiles_y):
    """Tile lists: ``offsets`` (tiles + 1,) into ``ids``, each tile's Gaussians in ``order``.

    Parallel over chunks of ``order``: each chunk counts its entries per tile, a prefix sum over
    (tile, chunk) gives every chunk its place in each tile's list, and the chunks scatter there:
    the lists are those of one pass over ``order``, whatever the thread count."""
    n, tiles = order.shape[0], tiles_x * tiles_y
    chunks = max(1, min(_BIN_CHUNKS, n // 1024))
    counts = np.zeros((chunks, tiles), np.int64)
    for c in prange(chunks):
        for k in range(c * n // chunks, (c + 1) * n // chunks):
            x0, x1, y0, y1 = _tile_rect(xy, radius, order[k], tiles_x, tiles_y)
            for ty in range(y0, y1):
                for tx in range(x0, x1):
                    counts[c, ty * tiles_x + tx] += 1
    offsets = np.empty(tiles + 1, np.int64)
    total = 0
    for t in range(tiles):
        offsets[t] = total
        for c in range(chunks):
            here = counts[c, t]
            counts[c, t] = total  # from here on: where chunk c writes its next entry of tile t
            total += here
    offsets[tiles] = total
    ids = np.empty(total, np.int32)
    for c in prange(chunks):
        for k in range(c * n // chunks, (c + 1) * n // chunks):
            g = order[k]
            x0, x1, y0, y1 = _tile_rect(xy, radius, g, tiles_x, tiles_y)
            for ty in range(y0, y1):
                for tx in range(x0, x1):
                    t = ty * tiles_x + tx
                    ids[counts[c, t]] = g
                    counts[c, t] += 1
    return offsets, ids


@njit(cache=True)
def _depth_order(rows, depth, index):
    """``rows`` sorted front to back by ``depth`` (> 0), equal depths by ``index`` (the Gaussian):
    the order of a stable sort of the Gaussians by depth. A least-significant-digit radix sort on
    the float32 bit patterns (monotone for positive floats), 11 bits a pass."""
    m = rows.shape[0]
    bits = depth.view(np.uint32)
    keys = np.empty(m, np.uint32)
    for j in range(m):
        keys[j] = bits[rows[j]]
    vals, keys2, vals2 = rows.copy(), np.empty(m, np.uint32), np.empty(m, rows.dtype)
    for shift in (0, 11, 22):
        pos = np.zeros(2049, np.int64)
        for j in range(m):
            pos[((keys[j] >> shift) & 2047) + 1] += 1
        for d in range(2048):
            pos[d + 1] += pos[d]
        for j in range(m):
            d = (keys[j] >> shift) & 2047
            keys2[pos[d]] = keys[j]
            vals2[pos[d]] = vals[j]
            pos[d] += 1
        keys, keys2, vals, vals2 = keys2, keys, vals2, vals
    # runs of equal depth (rare: exact float32 ties) in Gaussian order
    j = 0
    while j < m:
        e = j + 1
        while e < m and keys[e] == keys[j]:
            e += 1
        if e - j > 1:
            run = vals[j:e].copy()
            vals[j:e] = run[np.argsort(index[run], kind="mergesort")]
        j = e
    return vals


@njit(parallel=True, cache=True, fastmath=True)
def composite_tiles(offsets, ids, xy, conic, radius, opac, color, depth, width, height, tiles_x, out_rgb, out_alpha,
                    out_depth, out_last, out_trans):
    """Pass 3 (parallel over tiles) into the (H, W) outputs; also writes, per pixel, ``out_last`` (the
    tile-list position + 1 of the last Gaussian composited, 0 = none) and ``out_trans`` (the
    transmittance left after it), which the backward pass of ``build.fit.raster`` walks back from.
    float32 throughout (the inputs' and outputs' type): a quarter faster than float64 here."""
    for t in prange(offsets.shape[0] - 1):
        start, end = offsets[t], offsets[t + 1]
        if start == end:
            continue
        px0, px1, py0, py1 = tile_pixels(t, tiles_x, width, height)
        # the tile's pixels, composited Gaussian by Gaussian (front to back) over each one's own
        # support rectangle only: far fewer tests than every pixel against every Gaussian of the tile.
        # Per pixel one 32-byte row: transmittance, r, g, b, accumulated opacity, weighted depth, and
        # the transmittance before the Gaussian that finished the pixel
        acc = np.zeros((TILE, TILE, 8), np.float32)
        last = np.zeros((TILE, TILE), np.int32)
        for yy in range(TILE):
            for xx in range(TILE):
                acc[yy, xx, 0] = _F32_ONE
        live = (px1 - px0) * (py1 - py0)
        for k in range(start, end):
            i = ids[k]
            u, v = xy[i, 0], xy[i, 1]
            x0, x1, y0, y1 = support_in_tile(xy, radius, i, px0, px1, py0, py1)
            ca, cb, cc = conic[i, 0], conic[i, 1], conic[i, 2]
            o = opac[i]
            # alpha = o exp(-sigma) < 1/255 exactly when sigma > ln(255 o): no exponential for those
            sigma_max = _F32(math.log(o / _F32_ALPHA_MIN))
            cr, cg, cbl, z = color[i, 0], color[i, 1], color[i, 2], depth[i]
            for py in range(y0, y1):
                dy = v - _F32(py)
                hy = _F32_HALF * cc * dy * dy
                by = cb * dy
                for px in range(x0, x1):
                    a = acc[py - py0, px - px0]
                    T = a[0]
                    if T <= _F32_ZERO:
                        continue
                    dx = u - _F32(px)
                    sigma = _F32_HALF * ca * dx * dx + hy + by * dx
                    if sigma < _F32_ZERO or sigma > sigma_max:
                        continue
                    alpha = min(_F32_ALPHA_MAX, o * math.exp(-sigma))
                    if alpha < _F32_ALPHA_MIN:
                        continue
                    next_t = T * (_F32_ONE - alpha)
                    if next_t <= _F32_T_MIN:
                        a[6] = T
                        a[0] = _F32_ZERO  # done: later Gaussians add nothing here
                        live -= 1
                        continue
                    w = alpha * T
                    a[1] += w * cr
                    a[2] += w * cg
                    a[3] += w * cbl
                    a[4] += w
                    a[5] += w * z
                    a[0] = next_t
                    last[py - py0, px - px0] = k + 1
            if live == 0:
                break
        for py in range(py0, py1):
            for px in range(px0, px1):
                a = acc[py - py0, px - px0]
                w = a[4]
                out_rgb[py, px, 0] = a[1]
                out_rgb[py, px, 1] = a[2]
                out_rgb[py, px, 2] = a[3]
                out_alpha[py, px] = w
                out_depth[py, px] = a[5] / w if w > _F32_ZERO else _F32_ZERO
                out_last[py, px] = last[py - py0, px - px0]
                # a finished pixel keeps the transmittance from before the Gaussian that finished it
                out_trans[py, px] = a[6] if a[0] == _F32_ZERO else a[0]


class SplatRenderer:
    """Renders ``Gaussians`` (scene frame) at pinhole cameras, on the CPU.

    The renderer holds the Gaussians in the Morton order of their centres (``gaussians``), grouped
    in blocks of consecutive ones for frustum culling: a block is skipped when no Gaussian in it can
    reach the image (its box grown by its largest support), so culling changes no pixel. Gaussians
    already in that order (a splat world's, a saved scene's) are read, never copied: several
    renderers (and processes forked from one) share one set; others are copied once, in order.
    ``Projected.index`` counts in the order given. ``render`` is safe to call from several threads.
    """

    def __init__(self, gaussians: Gaussians, near: float = SPLAT_NEAR) -> None:
        self.near = float(near)
        n = len(gaussians)
        self._blocks = BlockLayout.build(gaussians.means, max(MIN_BLOCK_SIZE, -(-n // MAX_BLOCKS)))
        self._order = self._blocks.order  # (blocks * block_size,) the given index of each slot
        if np.array_equal(self._order[:n], np.arange(n)):
            self.gaussians = gaussians
        else:
            self.gaussians = gaussians.subset(self._order[:n])
        # (blocks, 1) the largest standard deviation in each block, metres (padding repeats the last)
        sigma = self.gaussians.scales.max(axis=1).astype(np.float64)
        sigma = np.concatenate([sigma, np.full(len(self._order) - n, sigma[-1])])
        self._block_sigma = sigma.reshape(self._blocks.num_blocks, -1).max(axis=1, keepdims=True)

    def visible_blocks(self, camera: PinholeCamera, w2c: np.ndarray) -> np.ndarray:
        """(K,) int64 blocks that may hold a Gaussian reaching the image at ``w2c`` ((4, 4) world-to-camera).

        A Gaussian at depth z of largest standard deviation s has a support half-size of at most
        RADIUS_SIGMAS (|J row| s + sqrt(EPS2D)) + 1 px, with |J row| <= f / z sqrt(1 + lim^2) under
        the projection's clamp of x/z, y/z to lim: a block's box grown by RADIUS_SIGMAS sqrt(1 + lim^2) s
        (metres) and a margin of RADIUS_SIGMAS sqrt(EPS2D) + 1 px holds every centre that can reach in.
        """
        fx, fy, cx, cy, w, h = camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height
        lim = max((w - cx) / fx, cx / fx) + 0.3 * (0.5 * w / fx), max((h - cy) / fy, cy / fy) + 0.3 * (0.5 * h / fy)
        grow = self._block_sigma * (RADIUS_SIGMAS * math.sqrt(1.0 + max(lim) ** 2))
        grown = replace(self._blocks, lo=self._blocks.lo - grow, hi=self._blocks.hi + grow)
        return grown.visible(w2c, fx, fy, cx, cy, w, h, self.near, RADIUS_SIGMAS * math.sqrt(EPS2D) + 1.0)

    def project(self, camera: PinholeCamera, c2w: np.ndarray) -> Projected:
        """Pass 1 at ``camera`` placed by ``c2w`` ((4, 4) camera-to-scene, OpenCV axes, metres)."""
        g = self.gaussians
        c2w = check_pose(c2w, "c2w")
        w2c = invert_pose(c2w)
        blocks = self.visible_blocks(camera, w2c)
        bs = self._blocks.block_size
        m = len(blocks) * bs
        out = Projected(np.empty(m, np.int64), np.empty((m, 2), np.float32), np.empty((m, 3), np.float32),
                        np.empty(m, np.float32), np.empty((m, 2), np.int32), np.empty((m, 3), np.float32),
                        np.empty(m, np.float32))
        _project(g.means, g.quats, g.scales, g.opacities, g.sh, g.sh_degree, self._order, blocks, bs, w2c,
                 np.ascontiguousarray(c2w[:3, 3]), camera.fx, camera.fy, camera.cx, camera.cy, camera.width,
                 camera.height, self.near, SPLAT_FAR, EPS2D, out.index, out.xy, out.conic, out.depth, out.radius,
                 out.color, out.opacity)
        return out

    def bin(self, camera: PinholeCamera, proj: Projected) -> tuple[np.ndarray, np.ndarray]:
        """Pass 2: (offsets (tiles + 1,), ids) of the drawn rows of ``proj`` per tile, front to back
        (equal depths in Gaussian order)."""
        order = _depth_order(proj.drawn, proj.depth, proj.index)
        return _bin(order, proj.xy, proj.radius, -(-camera.width // TILE), -(-camera.height // TILE))

    def composite(self, camera: PinholeCamera, proj: Projected, tiles: tuple[np.ndarray, np.ndarray]) -> SplatImage:
        """Pass 3 over the tile lists of ``bin``."""
        w, h = camera.width, camera.height
        image = SplatImage(np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32), np.zeros((h, w), np.float32))
        with parallel_chunksize(_TILE_CHUNK):
            composite_tiles(tiles[0], tiles[1], proj.xy, proj.conic, proj.radius, proj.opacity, proj.color,
                            proj.depth, w, h, -(-w // TILE), image.rgb, image.alpha, image.depth,
                            np.zeros((h, w), np.int32), np.zeros((h, w), np.float32))
        return image

    def rasterize(self, camera: PinholeCamera, proj: Projected) -> SplatImage:
        """Passes 2 and 3 of projected Gaussians."""
        return self.composite(camera, proj, self.bin(camera, proj))

    def render_image(self, camera: PinholeCamera, c2w: np.ndarray) -> SplatImage:
        """The float view (colour, opacity, expected depth) at ``camera`` placed by ``c2w``."""
        return self.rasterize(camera, self.project(camera, c2w))

    def render(self, camera: PinholeCamera, c2w: np.ndarray) -> RenderResult:
        """The view as a RenderResult (uint8 colour, expected depth, alpha >= VALID_ALPHA)."""
        return self.render_image(camera, c2w).result()

    def render_batch(self, cameras: list[PinholeCamera], c2ws: list[np.ndarray]) -> list[RenderResult]:
        """``render`` of each camera at its pose (each view already uses every core)."""
        return [self.render(camera, c2w) for camera, c2w in zip(cameras, c2ws)]
