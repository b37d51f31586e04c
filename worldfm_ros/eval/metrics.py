"""Image-quality and consistency metrics of generated views (numpy, uint8 RGB in, floats out).

* ``psnr`` / ``ssim``: against the ground truth, optionally restricted to a pixel mask (e.g.
  the anchor render's holes). SSIM is Wang et al.'s: 11 x 11 Gaussian window (sigma 1.5),
  K1 = 0.01, K2 = 0.03, data range 255, computed per channel and averaged.
* ``warp_to_view``: backward warp of one view into another with ground-truth depth and poses,
  with a depth test for co-visibility, the basis of the multi-view consistency and flicker
  measures of ``worldfm_ros.eval.evaluate``.
"""

from __future__ import annotations

import cv2
import numpy as np

from worldfm_ros.errors import ConfigError
from worldfm_ros.build.backproject import backproject_pixels

DATA_RANGE = 255.0
_C1 = (0.01 * DATA_RANGE) ** 2
_C2 = (0.03 * DATA_RANGE) ** 2


def _check_pair(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> None:
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3:
        raise ConfigError(f"metrics: expected two (H, W, 3) images of one shape, got {a.shape} and {b.shape}")
    if mask is not None and mask.shape != a.shape[:2]:
        raise ConfigError(f"metrics: mask must be {a.shape[:2]}, got {mask.shape}")


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB of (H, W, 3) images over the pixels where ``mask`` (H, W)
    is True (all when None); inf for identical pixels, nan for an empty mask."""
    _check_pair(a, b, mask)
    diff = a.astype(np.float64) - b.astype(np.float64)
    sq = diff ** 2 if mask is None else (diff ** 2)[mask]
    if sq.size == 0:
        return float("nan")
    mse = float(sq.mean())
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(DATA_RANGE ** 2 / mse))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (H, W) float64 of two (H, W, 3) images, averaged over the channels."""
    _check_pair(a, b, None)
    x, y = a.astype(np.float64), b.astype(np.float64)

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + _C1) * (2 * cov + _C2)) / ((mu_x ** 2 + mu_y ** 2 + _C1) * (var_x + var_y + _C2))
    return s.mean(axis=-1)


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM of (H, W, 3) images over ``mask`` (H, W) (all pixels when None); nan for an empty mask."""
    _check_pair(a, b, mask)
    s = ssim_map(a, b)
    values = s if mask is None else s[mask]
    return float(values.mean()) if values.size else float("nan")


def warp_to_view(src_image: np.ndarray, src_depth: np.ndarray, src_c2w: np.ndarray, dst_depth: np.ndarray,
                 dst_c2w: np.ndarray, K: np.ndarray, rel_tol: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp a source view into a destination view with ground-truth geometry.

    src_image: (H, W, 3) uint8; src_depth, dst_depth: (H, W) z-depth in metres (0 = none);
    src_c2w, dst_c2w: (4, 4) camera-to-world, OpenCV axes, metres; K: (3, 3) pixels, shared.
    Each destination pixel with depth is lifted to the world, projected into the source and
    sampled bilinearly; it is co-visible when it lands inside the source image and its depth
    there agrees with ``src_depth`` within ``rel_tol`` (relative), i.e. it is not occluded.
    Returns the warped image (H, W, 3) float32 (0 where not co-visible) and the co-visibility
    mask (H, W) bool.
    """
    H, W = dst_depth.shape
    K = np.asarray(K, np.float64)
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    z = dst_depth.astype(np.float64)
    src_T_dst = np.linalg.inv(np.asarray(src_c2w, np.float64)) @ np.asarray(dst_c2w, np.float64)
    src = backproject_pixels(u, v, z, K, src_T_dst)  # (H, W, 3) in the source camera
    zs = src[..., 2]
    ok = (z > 0) & (zs > 1e-6)
    zs_safe = np.where(ok, zs, 1.0)
    us = K[0, 0] * src[..., 0] / zs_safe + K[0, 2]
    vs = K[1, 1] * src[..., 1] / zs_safe + K[1, 2]
    inside = ok & (us >= -0.5) & (us < W - 0.5) & (vs >= -0.5) & (vs < H - 0.5)
    ui = np.clip(np.rint(us), 0, W - 1).astype(np.int64)
    vi = np.clip(np.rint(vs), 0, H - 1).astype(np.int64)
    d_src = src_depth[vi, ui].astype(np.float64)
    covis = inside & (d_src > 0) & (np.abs(d_src - zs) <= rel_tol * zs)
    warped = cv2.remap(src_image.astype(np.float32), us.astype(np.float32), vs.astype(np.float32),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    warped[~covis] = 0.0
    return warped, covis


def warp_difference(src_image: np.ndarray, dst_image: np.ndarray, src_depth: np.ndarray, src_c2w: np.ndarray,
                    dst_depth: np.ndarray, dst_c2w: np.ndarray, K: np.ndarray) -> tuple[float, int]:
    """Mean absolute difference (0-255 levels) between dst_image and src_image warped into it over
    the co-visible pixels, and their count (nan, 0 when none)."""
    warped, covis = warp_to_view(src_image, src_depth, src_c2w, dst_depth, dst_c2w, K)
    n = int(covis.sum())
    if n == 0:
        return float("nan"), 0
    return float(np.abs(warped[covis] - dst_image.astype(np.float32)[covis]).mean()), n
