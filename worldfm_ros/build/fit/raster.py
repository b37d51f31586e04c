"""The differentiable splat renderer: ``render.splats``'s rasterizer with a backward pass, for fitting.

Forward, per view, is exactly the CPU renderer's: the projection of ``render.splats._project``
written in torch (float64, so autograd carries it: means, rotations, scales, opacities, SH and the
camera pose all receive gradients), then the same binning and the same compositing kernel
(``render.splats.composite_tiles``). Backward of the compositing is a numba kernel after 3DGS
(Kerbl et al. 2023) and gsplat's ``rasterize_to_pixels_bwd``: each pixel is walked back to front
from the last Gaussian it composited, undoing the transmittance, and the gradients of colour,
depth, opacity, conic and 2D centre are written per tile-list entry (no atomics needed: an entry
belongs to one tile), then summed per Gaussian.

Output per view: rgb (H, W, 3) composited over black, alpha (H, W) accumulated opacity, depth
(H, W) expected z-depth in metres (0 where alpha = 0) -- ``render.splats.SplatImage``'s fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit, prange

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.render.splats import (ALPHA_MAX, ALPHA_MIN, EPS2D, RADIUS_SIGMAS, SPLAT_FAR, SPLAT_NEAR, TILE,
                                       _bin, _depth_order, composite_tiles, support_in_tile,
                                       tile_pixels)

_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
          -0.4570457994644658, 1.445305721320277, -0.5900435899266435)
_SH_C0 = 0.28209479177387814


@dataclass
class SplatParams:
    """Activated Gaussians as torch tensors (shapes of ``render.gaussians.Gaussians``): means (N, 3)
    metres, quats (N, 4) w x y z (normalised here), scales (N, 3) metres, opacities (N,) in [0, 1],
    sh (N, K, 3)."""

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    sh: torch.Tensor


def sh_basis_torch(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """(N, (degree + 1)^2) real SH basis at the (N, 3) unit directions (``render.sh``'s convention)."""
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    out = [torch.full_like(x, _SH_C0)]
    if degree >= 1:
        out += [-_SH_C1 * y, _SH_C1 * z, -_SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [_SH_C2[0] * x * y, _SH_C2[1] * y * z, _SH_C2[2] * (2 * zz - xx - yy), _SH_C2[3] * x * z,
                _SH_C2[4] * (xx - yy)]
    if degree >= 3:
        out += [_SH_C3[0] * y * (3 * xx - yy), _SH_C3[1] * x * y * z, _SH_C3[2] * y * (4 * zz - xx - yy),
                _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), _SH_C3[4] * x * (4 * zz - xx - yy),
                _SH_C3[5] * z * (xx - yy), _SH_C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, dim=1)


def quat_to_rotmat_torch(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), normalised here -> (N, 3, 3) rotations."""
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=1).reshape(-1, 3, 3)


@dataclass
class ProjectedTorch:
    """Pass 1 in torch for the Gaussians ``index`` ((M,) int64 into the N Gaussians: those that can
    reach the image): xy (M, 2) px, conic (M, 3) px^-2, depth (M,) camera z metres, color (M, 3),
    and (no gradient) radius (M, 2) int32 numpy support half-sizes, 0 = culled."""

    index: torch.Tensor
    xy: torch.Tensor
    conic: torch.Tensor
    depth: torch.Tensor
    color: torch.Tensor
    radius: np.ndarray


def _rotation_columns(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three (M, 3) columns of the rotations of (M, 4) quaternions (w, x, y, z), normalised here."""
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return (torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], 1),
            torch.stack([2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)], 1),
            torch.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], 1))


def project(p: SplatParams, camera: PinholeCamera, w2c: torch.Tensor, near: float = SPLAT_NEAR) -> ProjectedTorch:
    """``render.splats._project`` in torch (float64, elementwise: tiny batched matrix products are
    slow in torch on the CPU). w2c: (4, 4) world-to-camera (OpenCV axes, metres), float64, may carry
    gradients (pose refinement). Only the Gaussians whose 3.33-sigma ball can reach the image are
    projected (``ProjectedTorch.index``)."""
    fx, fy, cx, cy, width, height = camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height
    dt = torch.float64
    R, t = w2c[:3, :3], w2c[:3, 3]
    with torch.no_grad():
        cam_all = p.means.detach().to(dt) @ R.detach().T + t.detach()
        zc = cam_all[:, 2]
        reach = RADIUS_SIGMAS * p.scales.detach().to(dt).max(dim=1).values
        zr = zc.clamp_min(near)
        mx, my = fx * reach / zr + 2, fy * reach / zr + 2
        uc, vc = fx * cam_all[:, 0] / zr + cx, fy * cam_all[:, 1] / zr + cy
        index = torch.nonzero((zc > near) & (zc < SPLAT_FAR) & (p.opacities.detach() >= ALPHA_MIN)
                              & (uc + mx > 0) & (uc - mx < width) & (vc + my > 0) & (vc - my < height)).flatten()
    means, scales = p.means[index].to(dt), p.scales[index].to(dt)
    cam = means @ R.T + t
    x, y, z = cam.unbind(1)
    # columns of C = W R_g S (the Gaussian's axes in the camera frame): Sigma_c = C C^T
    cols = [(col * scales[:, j:j + 1]) @ R.T for j, col in enumerate(_rotation_columns(p.quats[index].to(dt)))]
    s00 = sum(c[:, 0] * c[:, 0] for c in cols)
    s01 = sum(c[:, 0] * c[:, 1] for c in cols)
    s02 = sum(c[:, 0] * c[:, 2] for c in cols)
    s11 = sum(c[:, 1] * c[:, 1] for c in cols)
    s12 = sum(c[:, 1] * c[:, 2] for c in cols)
    s22 = sum(c[:, 2] * c[:, 2] for c in cols)
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = z * torch.clamp(x / z, -lim_x_neg, lim_x_pos)
    ty = z * torch.clamp(y / z, -lim_y_neg, lim_y_pos)
    j00, j02 = fx / z, -fx * tx / (z * z)
    j11, j12 = fy / z, -fy * ty / (z * z)
    a = j00 * (j00 * s00 + j02 * s02) + j02 * (j00 * s02 + j02 * s22) + EPS2D
    b = j00 * (j11 * s01 + j12 * s02) + j02 * (j11 * s12 + j12 * s22)
    c = j11 * (j11 * s11 + j12 * s12) + j12 * (j11 * s12 + j12 * s22) + EPS2D
    det = a * c - b * b
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conic = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=1)
    u = fx * x / z + cx
    v = fy * y / z + cy
    xy = torch.stack([u, v], dim=1)
    campos = -R.T @ t
    dirs = means - campos
    dirs = dirs / dirs.norm(dim=1, keepdim=True).clamp_min(1e-12)
    degree = int(round(math.sqrt(p.sh.shape[1]))) - 1
    basis = sh_basis_torch(degree, dirs)
    color = torch.clamp_min((basis[:, :, None] * p.sh[index].to(dt)).sum(dim=1) + 0.5, 0.0)
    with torch.no_grad():
        o = p.opacities.detach()[index].to(dt)
        extent = torch.clamp(torch.sqrt(torch.clamp_min(2.0 * (torch.log(o) - math.log(ALPHA_MIN)), 0.0)),
                             max=RADIUS_SIGMAS)
        rx = torch.ceil(extent * torch.sqrt(a.detach().clamp_min(0)))
        ry = torch.ceil(extent * torch.sqrt(c.detach().clamp_min(0)))
        ud, vd = u.detach(), v.detach()
        keep = ((det.detach() > 0) & (rx > 0) & (ry > 0) & (ud + rx > 0) & (ud - rx < width) & (vd + ry > 0)
                & (vd - ry < height))
        radius = torch.stack([rx, ry], dim=1) * keep[:, None]
    return ProjectedTorch(index, xy, conic, z, color, radius.numpy().astype(np.int32))


@njit(parallel=True, cache=True, fastmath=True)
def _composite_backward(offsets, ids, xy, conic, radius, opac, feat, width, height, tiles_x, last, final_t,
                        g_feat, g_alpha, e_xy, e_conic, e_opac, e_feat):
    """Gradients per tile-list entry (e_*) of the compositing of features ``feat`` (N, C) (colour
    and depth) given the output gradients g_feat (H, W, C) and g_alpha (H, W)."""
    nc = feat.shape[1]
    for t in prange(offsets.shape[0] - 1):
        start, end = offsets[t], offsets[t + 1]
        if start == end:
            continue
        px0, px1, py0, py1 = tile_pixels(t, tiles_x, width, height)
        trans = np.empty((TILE, TILE))
        behind = np.zeros((TILE, TILE, nc))  # sum over the later Gaussians of feat * weight
        kmax = start
        for py in range(py0, py1):
            for px in range(px0, px1):
                trans[py - py0, px - px0] = final_t[py, px]
                kmax = max(kmax, last[py, px])
        for k in range(kmax - 1, start - 1, -1):
            i = ids[k]
            u, v = xy[i, 0], xy[i, 1]
            x0, x1, y0, y1 = support_in_tile(xy, radius, i, px0, px1, py0, py1)
            ca, cb, cc = conic[i, 0], conic[i, 1], conic[i, 2]
            o = opac[i]
            sigma_max = math.log(o / ALPHA_MIN)
            gu = gv = ga = gb = gcc = go = 0.0
            for py in range(y0, y1):
                dy = v - py
                for px in range(x0, x1):
                    if k >= last[py, px]:
                        continue
                    dx = u - px
                    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < 0.0 or sigma > sigma_max:
                        continue
                    g = math.exp(-sigma)
                    raw = o * g
                    alpha = min(ALPHA_MAX, raw)
                    if alpha < ALPHA_MIN:
                        continue
                    T = trans[py - py0, px - px0] / (1.0 - alpha)
                    w = alpha * T
                    d_alpha = 0.0
                    for ch in range(nc):
                        go_ch = g_feat[py, px, ch]
                        e_feat[k, ch] += w * go_ch
                        d_alpha += go_ch * (feat[i, ch] * T - behind[py - py0, px - px0, ch] / (1.0 - alpha))
                        behind[py - py0, px - px0, ch] += feat[i, ch] * w
                    d_alpha += g_alpha[py, px] * final_t[py, px] / (1.0 - alpha)
                    trans[py - py0, px - px0] = T
                    if raw > ALPHA_MAX:
                        continue  # clamped: alpha does not move with the Gaussian here
                    go += d_alpha * g
                    d_sigma = -d_alpha * alpha
                    gu += d_sigma * (ca * dx + cb * dy)
                    gv += d_sigma * (cb * dx + cc * dy)
                    ga += d_sigma * 0.5 * dx * dx
                    gb += d_sigma * dx * dy
                    gcc += d_sigma * 0.5 * dy * dy
            e_xy[k, 0] += gu
            e_xy[k, 1] += gv
            e_conic[k, 0] += ga
            e_conic[k, 1] += gb
            e_conic[k, 2] += gcc
            e_opac[k] += go


@njit(cache=True)
def _sum_entries(ids, e_xy, e_conic, e_opac, e_feat, g_xy, g_conic, g_opac, g_feat):
    for k in range(ids.shape[0]):
        i = ids[k]
        g_xy[i, 0] += e_xy[k, 0]
        g_xy[i, 1] += e_xy[k, 1]
        for j in range(3):
            g_conic[i, j] += e_conic[k, j]
        g_opac[i] += e_opac[k]
        for j in range(e_feat.shape[1]):
            g_feat[i, j] += e_feat[k, j]


class _Composite(torch.autograd.Function):
    """(xy, conic, opacity, color, depth) of the projected Gaussians -> (rgb, alpha, depth) images."""

    @staticmethod
    def forward(ctx, xy, conic, opac, color, depth, radius, width, height):
        np_xy = np.ascontiguousarray(xy.detach().numpy(), np.float32)
        np_conic = np.ascontiguousarray(conic.detach().numpy(), np.float32)
        np_opac = np.ascontiguousarray(opac.detach().numpy(), np.float32)
        np_color = np.ascontiguousarray(color.detach().numpy(), np.float32)
        np_depth = np.ascontiguousarray(depth.detach().numpy(), np.float32)
        visible = np.flatnonzero(radius[:, 0] > 0)
        order = _depth_order(visible, np_depth, np.arange(len(np_depth)))
        tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
        offsets, ids = _bin(order, np_xy, radius, tiles_x, tiles_y)
        rgb = np.zeros((height, width, 3), np.float32)
        alpha = np.zeros((height, width), np.float32)
        out_depth = np.zeros((height, width), np.float32)
        last = np.zeros((height, width), np.int32)
        final_t = np.ones((height, width), np.float32)
        composite_tiles(offsets, ids, np_xy, np_conic, radius, np_opac, np_color, np_depth, width, height, tiles_x,
                        rgb, alpha, out_depth, last, final_t)
        ctx.saved = (offsets, ids, np_xy, np_conic, radius, np_opac, np.concatenate([np_color, np_depth[:, None]], 1),
                     width, height, tiles_x, last, final_t, alpha, out_depth)
        return torch.from_numpy(rgb), torch.from_numpy(alpha), torch.from_numpy(out_depth)

    @staticmethod
    def backward(ctx, g_rgb, g_alpha, g_depth):
        offsets, ids, xy, conic, radius, opac, feat, width, height, tiles_x, last, final_t, alpha, depth = ctx.saved
        g_rgb = g_rgb.detach().numpy().astype(np.float64) if g_rgb is not None else np.zeros((height, width, 3))
        g_alpha = g_alpha.detach().numpy().astype(np.float64) if g_alpha is not None else np.zeros((height, width))
        g_depth = g_depth.detach().numpy().astype(np.float64) if g_depth is not None else np.zeros((height, width))
        # depth = (sum_i w_i z_i) / alpha: its gradient reaches the weighted sum and alpha
        a = alpha.astype(np.float64)
        has = a > 0
        g_zsum = np.where(has, g_depth / np.where(has, a, 1.0), 0.0)
        g_a = g_alpha - np.where(has, g_depth * depth / np.where(has, a, 1.0), 0.0)
        g_feat_img = np.ascontiguousarray(np.concatenate([g_rgb, g_zsum[..., None]], axis=2))
        m, n = len(ids), len(xy)
        e_xy, e_conic = np.zeros((m, 2)), np.zeros((m, 3))
        e_opac, e_feat = np.zeros(m), np.zeros((m, 4))
        _composite_backward(offsets, ids, xy, conic, radius, opac, feat, width, height, tiles_x, last, final_t,
                            g_feat_img, np.ascontiguousarray(g_a), e_xy, e_conic, e_opac, e_feat)
        g_xy, g_conic, g_opac, g_feat = np.zeros((n, 2)), np.zeros((n, 3)), np.zeros(n), np.zeros((n, 4))
        _sum_entries(ids, e_xy, e_conic, e_opac, e_feat, g_xy, g_conic, g_opac, g_feat)
        return (torch.from_numpy(g_xy), torch.from_numpy(g_conic), torch.from_numpy(g_opac),
                torch.from_numpy(g_feat[:, :3]), torch.from_numpy(g_feat[:, 3]), None, None, None)


def render(p: SplatParams, camera: PinholeCamera, w2c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, ProjectedTorch]:
    """Differentiable view of ``p`` at ``camera`` with world-to-camera ``w2c`` ((4, 4) float64).

    Returns (rgb (H, W, 3), alpha (H, W), depth (H, W) metres, the projection) as float32 tensors
    equal to ``render.splats.SplatRenderer.render_image``; gradients reach every tensor of ``p``
    (and ``w2c`` when it requires them). ``projection.xy`` may ``retain_grad()`` for densification.
    """
    proj = project(p, camera, w2c)
    rgb, alpha, depth = _Composite.apply(proj.xy, proj.conic, p.opacities[proj.index], proj.color, proj.depth,
                                         proj.radius, camera.width, camera.height)
    return rgb, alpha, depth, proj
