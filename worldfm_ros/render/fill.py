"""Classical hole filling of a point-cloud render, and the fill a residual frame model corrects.

Holes left by a sparse anchor are filled from their surroundings, by push-pull (a
mask-normalised image pyramid; fast, smooth) or OpenCV's Telea inpainting (sharper on thin
holes, slower). ``residual_base`` defines what a residual model is trained to predict the
difference to: the frame backends and ``train/`` both take it from here.
"""

from __future__ import annotations

import cv2
import numpy as np

from worldfm_ros.errors import ConfigError

FILL_METHODS = ("push_pull", "background", "telea", "none")
#: "background" fill: the colour weight of a pixel grows as (depth / median depth) ** this
BACKGROUND_DEPTH_POWER = 8.0


def push_pull_fill(rgb: np.ndarray, valid: np.ndarray, min_size: int = 2) -> np.ndarray:
    """Fill invalid pixels of rgb (H, W, 3) uint8 from a mask-weighted pyramid.

    valid: (H, W) bool. Valid pixels are returned unchanged; each hole pixel takes the
    average of the nearest coarser level that has data there. All-invalid → black.
    """
    if valid.all() or not valid.any():
        return rgb.copy()
    # Premultiplied colour + weight in one 4-channel image: one resize per level. Weights are 0/1,
    # so premultiplying is masking, done in uint8 (OpenCV, contiguous) before the one float cast.
    rgb = np.ascontiguousarray(rgb)
    mask = np.ascontiguousarray(valid).view(np.uint8)
    level = cv2.merge([cv2.bitwise_and(rgb, rgb, mask=mask), mask]).astype(np.float32)
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
    # Whole-image passes beat gathering the hole pixels: round, then put the valid pixels back.
    np.add(up, 0.5, out=up)
    np.clip(up, 0, 255, out=up)
    out = up.astype(np.uint8)
    cv2.copyTo(rgb, mask, out)
    return out


def background_fill(rgb: np.ndarray, valid: np.ndarray, depth: np.ndarray,
                    power: float = BACKGROUND_DEPTH_POWER, min_size: int = 2) -> np.ndarray:
    """Push-pull that fills holes from the far side of a depth edge: rgb (H, W, 3) uint8, valid
    (H, W) bool, depth (H, W) float32 z-depth in metres (read where valid).

    The holes of a render at a new pose are mostly disocclusions: background a nearer object hid
    from the anchor's views, so a hole next to a depth edge should continue the far surface, not
    blend both sides as ``push_pull_fill`` does. Here the pyramid averages colours with a weight
    (depth / median depth) ** power, so a coarse cell spanning a near and a far surface takes the
    far one's colour (1.5x the depth: 25x the weight at the default power 8), while the coverage
    (the fraction of valid pixels) decides, as in push-pull, how much of the coarser fill a level
    takes. On one surface the weights vary smoothly and the fill is close to push-pull's. Valid
    pixels are returned unchanged; all-invalid -> black.
    """
    if valid.all() or not valid.any():
        return rgb.copy()
    mask = np.ascontiguousarray(valid).view(np.uint8)
    sample = depth[::4, ::4][valid[::4, ::4]]  # any positive scale keeps float32 in range: a cheap median
    scale = np.float32(np.median(sample) if sample.size else np.median(depth[valid]))
    weight = cv2.pow(np.ascontiguousarray(depth, np.float32) / scale, power)
    np.multiply(weight, mask, out=weight)  # 0 where no point, whatever depth says there
    # Per level: depth-weighted premultiplied colour + its weight (4 channels, OpenCV's most), and coverage.
    colour = np.empty(rgb.shape[:2] + (4,), np.float32)
    np.multiply(rgb, weight[..., None], out=colour[..., :3])
    colour[..., 3] = weight
    coverage = mask.astype(np.float32)
    levels = [(colour, coverage)]
    while min(coverage.shape[:2]) > min_size and coverage.min() == 0.0:
        size = (max(1, coverage.shape[1] // 2), max(1, coverage.shape[0] // 2))
        colour = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
        coverage = cv2.resize(coverage, size, interpolation=cv2.INTER_AREA)
        levels.append((colour, coverage))

    # Pull as in push-pull, on the depth-weighted colours: a level's own colour by its coverage,
    # the upsampled coarser fill for the rest. (Carrying the weights through the pull as well
    # biased every hole to the far side, unseen regions too, and scored worse on ICL-NUIM's and
    # 7-Scenes' held-out views: benchmarks/RESULTS.md.)
    def own(colour: np.ndarray) -> np.ndarray:
        return colour[..., :3] / np.maximum(colour[..., 3:], np.float32(1e-30))

    filled = own(levels[-1][0])
    for colour, coverage in reversed(levels[1:-1]):
        up = cv2.resize(filled, (colour.shape[1], colour.shape[0]), interpolation=cv2.INTER_LINEAR)
        filled = coverage[..., None] * own(colour) + (1.0 - coverage[..., None]) * up
    up = cv2.resize(filled, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    np.add(up, 0.5, out=up)
    np.clip(up, 0, 255, out=up)
    out = up.astype(np.uint8)
    cv2.copyTo(np.ascontiguousarray(rgb), mask, out)
    return out


def fill_holes(rgb: np.ndarray, valid: np.ndarray, method: str = "push_pull",
               telea_radius: float = 3.0, depth: np.ndarray | None = None) -> np.ndarray:
    """rgb (H, W, 3) uint8 with its invalid pixels filled by ``method`` (one of ``FILL_METHODS``;
    'none' returns a copy); telea_radius in pixels; depth (H, W) float32 metres, required by
    'background'."""
    if method not in FILL_METHODS:
        raise ConfigError(f"fill: expected one of {FILL_METHODS}, got {method!r}")
    if method == "push_pull":
        return push_pull_fill(rgb, valid)
    if method == "background":
        if depth is None:
            raise ConfigError("fill 'background' needs the render's depth")
        return background_fill(rgb, valid, depth)
    if method == "telea" and valid.any() and not valid.all():
        return cv2.inpaint(rgb, (~valid).astype(np.uint8), telea_radius, cv2.INPAINT_TELEA)
    return rgb.copy()


def residual_base(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """What a residual frame model corrects: ``push_pull_fill`` of rgb (H, W, 3) uint8, or mid-grey
    (128) when no pixel is valid, so that an empty render asks for an image of ordinary spread
    rather than one offset by the whole black-to-image distance."""
    if not valid.any():
        return np.full_like(rgb, 128)
    return push_pull_fill(rgb, valid)
