"""Square model canvases for cameras of any size and aspect (pixel centres at integers).

A frame model trained at S×S sees square views. The target camera's view is letterboxed
into the canvas (uniform scale, centred; the margin shows more of the scene, rendered like
the rest), and its output is cropped back. Reference keyframes are fitted by scale-to-cover
and centre crop, the released pipeline's rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from worldfm_ros.camera import PinholeCamera


@dataclass(frozen=True)
class Canvas:
    """camera: the S×S canvas camera; scale: canvas px per camera px; offset: (ox, oy) canvas
    position of the camera image's top-left pixel edge, in canvas px."""

    camera: PinholeCamera
    scale: float
    offset: tuple[float, float]


def letterbox(camera: PinholeCamera, size: int) -> Canvas:
    """The S×S canvas that contains ``camera``'s whole view at a uniform scale, centred."""
    s = size / max(camera.width, camera.height)
    ox, oy = (size - camera.width * s) / 2.0, (size - camera.height * s) / 2.0
    canvas = PinholeCamera(size, size, camera.fx * s, camera.fy * s,
                           (camera.cx + 0.5) * s - 0.5 + ox, (camera.cy + 0.5) * s - 0.5 + oy)
    return Canvas(canvas, s, (ox, oy))


def crop_to_camera(image: np.ndarray, canvas: Canvas, camera: PinholeCamera) -> np.ndarray:
    """The camera's view (H, W, C) resampled out of a canvas image (S, S, C) (bilinear)."""
    s, (ox, oy) = canvas.scale, canvas.offset
    # camera pixel centre u sits at canvas coordinate (u + 0.5) * s - 0.5 + ox
    M = np.array([[s, 0.0, 0.5 * s - 0.5 + ox], [0.0, s, 0.5 * s - 0.5 + oy]])
    return cv2.warpAffine(image, M, (camera.width, camera.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def cover(image: np.ndarray, K: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale (H, W, 3) ``image`` so its short side is ``size`` (area filter), centre-crop to
    size×size; returns the crop and its (3, 3) intrinsics (pixel-centre preserving)."""
    h, w = image.shape[:2]
    s = size / min(w, h)
    new_w, new_h = max(size, round(w * s)), max(size, round(h * s))
    if (new_w, new_h) != (w, h):
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
        image = cv2.resize(image, (new_w, new_h), interpolation=interp)
    x0, y0 = (new_w - size) // 2, (new_h - size) // 2
    cam = PinholeCamera.from_K(K, w, h).scaled(new_w, new_h)
    K_out = np.array([[cam.fx, 0.0, cam.cx - x0], [0.0, cam.fy, cam.cy - y0], [0.0, 0.0, 1.0]])
    return np.ascontiguousarray(image[y0:y0 + size, x0:x0 + size]), K_out
