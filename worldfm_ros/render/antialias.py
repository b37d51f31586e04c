"""Anti-aliasing of a point-cloud render: a Gaussian reconstruction filter as wide as a point.

The z-buffer gives each pixel the colour of the one nearest point: point sampling. Where the
cloud is dense (several fused points per pixel, each with its own colour noise) or sparse
(a point spread over a splat), that shows as speckle and blocks that the recorded images of
the same place do not have: their pixels integrate light over an area, through optics. The
camera view is therefore reconstructed with a Gaussian of standard deviation

    sigma = antialias * f * spacing / z_median   (pixels)

f the focal length (px), spacing the surface patch a point stands for (metres, the fusion
voxel for fused RGB-D anchors), z_median the median depth of the view: ``antialias`` point
footprints, at the depth most of the view is at. It is a normalised convolution over the
covered pixels, so holes stay holes (for the hole filling) and spill no black into the image.
Held-out views of ICL-NUIM and 7-Scenes gain 0.8-1.2 dB from it at the default (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: default filter width, in point footprints (``SimConfig.antialias``)
DEFAULT_ANTIALIAS = 1.0
#: the widest setting, point footprints
MAX_ANTIALIAS = 4.0
#: below this sigma (pixels) the filter is skipped: it would change almost nothing
MIN_SIGMA_PX = 0.3
#: the widest filter, pixels
MAX_SIGMA_PX = 4.0
#: the kernel reaches this many sigmas each side (95 % of a Gaussian's mass; OpenCV's default of
#: 3 sigmas costs 40 % more for no visible difference)
KERNEL_SIGMAS = 2.0
#: every this many pixels (per axis) are read for the median depth
_DEPTH_STRIDE = 4


def antialias_sigma(depth: np.ndarray, valid: np.ndarray, focal_px: float, spacing: float,
                    antialias: float = DEFAULT_ANTIALIAS) -> float:
    """Filter sigma (pixels, 0..MAX_SIGMA_PX; 0 = off) for a view with z-depth ``depth`` (H, W)
    float32 metres where ``valid`` (H, W) bool; ``focal_px`` pixels, ``spacing`` metres."""
    if antialias <= 0 or spacing <= 0:
        return 0.0
    z = depth[::_DEPTH_STRIDE, ::_DEPTH_STRIDE][valid[::_DEPTH_STRIDE, ::_DEPTH_STRIDE]]
    if z.size == 0:
        return 0.0
    sigma = antialias * focal_px * spacing / float(np.median(z))
    return 0.0 if sigma < MIN_SIGMA_PX else min(sigma, MAX_SIGMA_PX)


def antialias_render(rgb: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """rgb (H, W, 3) uint8 filtered by a Gaussian of ``sigma`` pixels over the ``valid`` (H, W)
    bool pixels only (normalised convolution); invalid pixels stay black. sigma 0 = a copy."""
    if sigma <= 0 or not valid.any():
        return rgb.copy()
    k = 2 * math.ceil(KERNEL_SIGMAS * sigma) + 1
    if valid.all():
        return cv2.GaussianBlur(rgb, (k, k), sigma)
    mask = np.ascontiguousarray(valid).view(np.uint8)
    # uint8 throughout (OpenCV's fixed-point blur is several times faster than float): colour
    # premultiplied by coverage and the coverage (0/255) blurred alike, then divided; fully covered
    # neighbourhoods divide by 255 exactly, and half-covered ones lose at most a level to the rounding.
    colour = cv2.GaussianBlur(cv2.bitwise_and(rgb, rgb, mask=mask), (k, k), sigma)
    weight = cv2.GaussianBlur(mask * np.uint8(255), (k, k), sigma)
    out = cv2.divide(colour, cv2.merge([weight, weight, weight]), scale=255.0)
    return cv2.bitwise_and(out, out, mask=mask)
