"""Anchor-only frame backend: the point-cloud render with classical hole filling.

No network: holes left by the sparse anchor are filled from their surroundings,
by push-pull (a mask-normalised image pyramid; fast, smooth) or OpenCV's Telea
inpainting (sharper on thin holes, slower). The reference fallback every neural
backend is compared with, and what the node falls back to when one cannot start.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from worldfm_ros.backends.base import FrameBackend, FrameRequest
from worldfm_ros.errors import ConfigError

FILL_METHODS = ("push_pull", "telea", "none")


def push_pull_fill(rgb: np.ndarray, valid: np.ndarray, min_size: int = 2) -> np.ndarray:
    """Fill invalid pixels of rgb (H, W, 3) uint8 from a mask-weighted pyramid.

    valid: (H, W) bool. Valid pixels are returned unchanged; each hole pixel takes the
    average of the nearest coarser level that has data there. All-invalid → black.
    """
    if valid.all() or not valid.any():
        return rgb.copy()
    # Premultiplied colour + weight in one 4-channel image: one resize per level.
    weight = valid.astype(np.float32)
    level = np.empty(rgb.shape[:2] + (4,), np.float32)
    np.multiply(rgb, weight[..., None], out=level[..., :3])
    level[..., 3] = weight
    levels = [level]
    while min(level.shape[:2]) > min_size and level[..., 3].min() == 0.0:
        level = cv2.resize(level, (max(1, level.shape[1] // 2), max(1, level.shape[0] // 2)),
                           interpolation=cv2.INTER_AREA)
        levels.append(level)
    # Pull: from the coarsest level down, a level's own (averaged) colour where it has weight w,
    # the upsampled coarser fill for the rest: premultiplied colour + (1 - w) * up.
    top = levels[-1]
    filled = top[..., :3] / np.maximum(top[..., 3:], 1e-6)
    for level in reversed(levels[1:-1]):
        up = cv2.resize(filled, (level.shape[1], level.shape[0]), interpolation=cv2.INTER_LINEAR)
        filled = level[..., :3] + (1.0 - level[..., 3:]) * up
    up = cv2.resize(filled, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    out = rgb.copy()
    holes = ~valid
    out[holes] = np.clip(up[holes] + 0.5, 0, 255).astype(np.uint8)
    return out


def residual_base(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """What a residual frame model corrects: ``push_pull_fill`` of rgb (H, W, 3) uint8, or mid-grey
    (128) when no pixel is valid, so that an empty render asks for an image of ordinary spread
    rather than one offset by the whole black-to-image distance."""
    if not valid.any():
        return np.full_like(rgb, 128)
    return push_pull_fill(rgb, valid)


class AnchorBackend(FrameBackend):
    """The render, hole-filled. fill: 'push_pull' (default), 'telea' or 'none'; telea_radius in pixels."""

    name = "anchor"

    def __init__(self, fill: str = "push_pull", telea_radius: float = 3.0) -> None:
        if fill not in FILL_METHODS:
            raise ConfigError(f"anchor backend fill: expected one of {FILL_METHODS}, got {fill!r}")
        self.fill = fill
        self.telea_radius = float(telea_radius)
        self._timings: dict[str, float] = {}

    def generate(self, request: FrameRequest) -> np.ndarray:
        t0 = time.perf_counter()
        rgb, valid = request.render_rgb, request.render_valid
        if self.fill == "push_pull":
            out = push_pull_fill(rgb, valid)
        elif self.fill == "telea" and valid.any() and not valid.all():
            out = cv2.inpaint(rgb, (~valid).astype(np.uint8), self.telea_radius, cv2.INPAINT_TELEA)
        else:
            out = rgb.copy()
        self._timings = {"fill": (time.perf_counter() - t0) * 1e3}
        return out

    def stage_timings_ms(self) -> dict[str, float]:
        return dict(self._timings)
