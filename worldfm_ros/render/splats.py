"""Tile-based Gaussian-splat rasterizer on the CPU (numba), after 3DGS (Kerbl et al. 2023) and gsplat.

Per view, three passes:

1. **project** (parallel over Gaussians): centre to the camera (OpenCV axes: x right, y down,
   z forward), 3D covariance R S S^T R^T moved to the camera, EWA projection J Sigma J^T through the
   pinhole Jacobian (with gsplat's clamp of x/z, y/z to 1.3 x the field of view), plus a 0.3 px^2
   low-pass (gsplat's ``eps2d``), inverted to the conic; the colour along the ray from the camera
   centre from the SH coefficients; culled below the near plane, outside the image, or so faint
   that no pixel could reach 1/255.
2. **bin**: visible Gaussians sorted front to back by centre depth, then listed per 16 x 16 tile
   they may touch (a counting sort, so each tile's list stays in depth order).
3. **rasterize** (parallel over tiles): per pixel, front-to-back alpha compositing
   alpha_i = min(0.999, o_i exp(-1/2 d^T conic d)), skipping alpha < 1/255, stopping before the
   transmittance falls to 1e-4 (gsplat's and 3DGS's rule).

Pixel convention: pixel (u, v) has its centre at (u, v), as OpenCV and ``CameraInfo`` put it (gsplat
puts it at (u + 0.5, v + 0.5): shift cx, cy by 0.5 to compare). Depth is the *expected* z-depth
sum_i w_i z_i / sum_i w_i of the composited centres (gsplat's "ED"), metres; a pixel is valid where
the accumulated opacity reaches ``VALID_ALPHA``. Colours are composited over black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from worldfm_ros.camera import PinholeCamera, check_pose, invert_pose
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
# Gaussians per parallel work item of the projection (one SH basis buffer each)
_CHUNK = 4096


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
        return RenderResult(rgb, np.where(valid, self.depth, np.float32(0)), valid)


@dataclass
class Projected:
    """Pass 1's output for N Gaussians (entries of culled ones are undefined, radius 0).

    xy: (N, 2) float32 pixel centre; conic: (N, 3) float32 (a, b, c) of the inverse 2D covariance
    [[a, b], [b, c]], px^-2; depth: (N,) float32 camera z, metres; radius: (N, 2) int32 support
    half-size in pixels, 0 = culled; color: (N, 3) float32 RGB along the view ray, >= 0.
    """

    xy: np.ndarray
    conic: np.ndarray
    depth: np.ndarray
    radius: np.ndarray
    color: np.ndarray


@njit(parallel=True, cache=True)
def _project(means, quats, scales, opac, sh, degree, w2c, campos, fx, fy, cx, cy, width, height, near, far,
             eps2d, xy, conic, depth, radius, color):
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
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        basis = np.empty(16)
        for i in range(chunk * _CHUNK, min((chunk + 1) * _CHUNK, n)):
            radius[i, 0] = 0
            radius[i, 1] = 0
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
            xy[i, 0] = u
            xy[i, 1] = v
            conic[i, 0] = c * inv
            conic[i, 1] = -b * inv
            conic[i, 2] = a * inv
            depth[i] = z
            radius[i, 0] = rx
            radius[i, 1] = ry
            dx, dy, dz = mx - campos[0], my - campos[1], mz - campos[2]
            norm = math.sqrt(dx * dx + dy * dy + dz * dz)
            if norm > 0:
                dx, dy, dz = dx / norm, dy / norm, dz / norm
            basis = np.empty(16)
            sh_basis_into(degree, dx, dy, dz, basis)
            for ch in range(3):
                acc = 0.0
                for k in range(nk):
                    acc += basis[k] * sh[i, k, ch]
                color[i, ch] = max(acc + 0.5, 0.0)


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


@njit(cache=True)
def _bin(order, xy, radius, tiles_x, tiles_y):
    """Tile lists: ``offsets`` (tiles + 1,) into ``ids``, each tile's Gaussians in ``order``."""
    counts = np.zeros(tiles_x * tiles_y + 1, np.int64)
    for g in order:
        x0, x1, y0, y1 = _tile_rect(xy, radius, g, tiles_x, tiles_y)
        for ty in range(y0, y1):
            for tx in range(x0, x1):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    ids = np.empty(offsets[-1], np.int32)
    for g in order:
        x0, x1, y0, y1 = _tile_rect(xy, radius, g, tiles_x, tiles_y)
        for ty in range(y0, y1):
            for tx in range(x0, x1):
                t = ty * tiles_x + tx
                ids[fill[t]] = g
                fill[t] += 1
    return offsets, ids


@njit(parallel=True, cache=True, fastmath=True)
def composite_tiles(offsets, ids, xy, conic, radius, opac, color, depth, width, height, tiles_x, out_rgb, out_alpha,
                    out_depth, out_last, out_trans):
    """Pass 3 (parallel over tiles) into the (H, W) outputs; also writes, per pixel, ``out_last`` (the
    tile-list position + 1 of the last Gaussian composited, 0 = none) and ``out_trans`` (the
    transmittance left after it), which the backward pass of ``fit.raster`` walks back from."""
    for t in prange(offsets.shape[0] - 1):
        start, end = offsets[t], offsets[t + 1]
        if start == end:
            continue
        px0, px1, py0, py1 = tile_pixels(t, tiles_x, width, height)
        # the tile's pixels, composited Gaussian by Gaussian (front to back) over each one's own
        # support rectangle only: far fewer tests than every pixel against every Gaussian of the tile
        trans = np.ones((TILE, TILE))
        acc_r = np.zeros((TILE, TILE))
        acc_g = np.zeros((TILE, TILE))
        acc_b = np.zeros((TILE, TILE))
        acc_w = np.zeros((TILE, TILE))  # the accumulated opacity
        acc_z = np.zeros((TILE, TILE))  # weighted depth
        last = np.zeros((TILE, TILE), np.int32)
        stop_t = np.zeros((TILE, TILE))
        live = (px1 - px0) * (py1 - py0)
        for k in range(start, end):
            i = ids[k]
            u, v = xy[i, 0], xy[i, 1]
            x0, x1, y0, y1 = support_in_tile(xy, radius, i, px0, px1, py0, py1)
            ca, cb, cc = conic[i, 0], conic[i, 1], conic[i, 2]
            o = opac[i]
            # alpha = o exp(-sigma) < 1/255 exactly when sigma > ln(255 o): no exponential for those
            sigma_max = math.log(o / ALPHA_MIN)
            cr, cg, cbl, z = color[i, 0], color[i, 1], color[i, 2], depth[i]
            for py in range(y0, y1):
                dy = v - py
                for px in range(x0, x1):
                    T = trans[py - py0, px - px0]
                    if T <= 0.0:
                        continue
                    dx = u - px
                    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < 0.0 or sigma > sigma_max:
                        continue
                    alpha = min(ALPHA_MAX, o * math.exp(-sigma))
                    if alpha < ALPHA_MIN:
                        continue
                    next_t = T * (1.0 - alpha)
                    if next_t <= T_MIN:
                        stop_t[py - py0, px - px0] = T
                        trans[py - py0, px - px0] = 0.0  # done: later Gaussians add nothing here
                        live -= 1
                        continue
                    w = alpha * T
                    acc_r[py - py0, px - px0] += w * cr
                    acc_g[py - py0, px - px0] += w * cg
                    acc_b[py - py0, px - px0] += w * cbl
                    acc_w[py - py0, px - px0] += w
                    acc_z[py - py0, px - px0] += w * z
                    trans[py - py0, px - px0] = next_t
                    last[py - py0, px - px0] = k + 1
            if live == 0:
                break
        for py in range(py0, py1):
            for px in range(px0, px1):
                w = acc_w[py - py0, px - px0]
                out_rgb[py, px, 0] = acc_r[py - py0, px - px0]
                out_rgb[py, px, 1] = acc_g[py - py0, px - px0]
                out_rgb[py, px, 2] = acc_b[py - py0, px - px0]
                out_alpha[py, px] = w
                out_depth[py, px] = acc_z[py - py0, px - px0] / w if w > 0.0 else 0.0
                out_last[py, px] = last[py - py0, px - px0]
                # a finished pixel keeps the transmittance from before the Gaussian that finished it
                T = trans[py - py0, px - px0]
                out_trans[py, px] = stop_t[py - py0, px - px0] if T == 0.0 else T


class SplatRenderer:
    """Renders ``Gaussians`` (scene frame) at pinhole cameras, on the CPU.

    The Gaussians are read, never copied: several renderers (and processes forked from one) can
    share one set. ``render`` is safe to call from several threads.
    """

    def __init__(self, gaussians: Gaussians, near: float = SPLAT_NEAR) -> None:
        self.gaussians = gaussians
        self.near = float(near)

    def project(self, camera: PinholeCamera, c2w: np.ndarray) -> Projected:
        """Pass 1 at ``camera`` placed by ``c2w`` ((4, 4) camera-to-scene, OpenCV axes, metres)."""
        g = self.gaussians
        c2w = check_pose(c2w, "c2w")
        w2c = invert_pose(c2w)
        n = len(g)
        out = Projected(np.empty((n, 2), np.float32), np.empty((n, 3), np.float32), np.empty(n, np.float32),
                        np.empty((n, 2), np.int32), np.empty((n, 3), np.float32))
        _project(g.means, g.quats, g.scales, g.opacities, g.sh, g.sh_degree, w2c, np.ascontiguousarray(c2w[:3, 3]),
                 camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height, self.near, SPLAT_FAR,
                 EPS2D, out.xy, out.conic, out.depth, out.radius, out.color)
        return out

    def bin(self, camera: PinholeCamera, proj: Projected) -> tuple[np.ndarray, np.ndarray]:
        """Pass 2: (offsets (tiles + 1,), ids) of the visible Gaussians per tile, front to back."""
        visible = np.flatnonzero(proj.radius[:, 0] > 0).astype(np.int32)
        order = visible[np.argsort(proj.depth[visible], kind="stable")]
        return _bin(order, proj.xy, proj.radius, -(-camera.width // TILE), -(-camera.height // TILE))

    def composite(self, camera: PinholeCamera, proj: Projected, tiles: tuple[np.ndarray, np.ndarray]) -> SplatImage:
        """Pass 3 over the tile lists of ``bin``."""
        w, h = camera.width, camera.height
        image = SplatImage(np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32), np.zeros((h, w), np.float32))
        composite_tiles(tiles[0], tiles[1], proj.xy, proj.conic, proj.radius, self.gaussians.opacities, proj.color,
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
