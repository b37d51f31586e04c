"""How closed an anchor render is, and the splat radius that closes it for a given canvas.

The frame models learnt from one-pixel splats of clouds dense enough to leave almost no gaps
(the release's 8.4 M-point panorama clouds leave about 0.1 % at 512²). A cloud thinned to a
point budget and seen on a large canvas leaves gaps between its points instead, which the
model never saw. ``closing_radius`` picks, once per canvas, the smallest splat radius whose
render has no more of those gaps than ``GAP_TOLERANCE``. Gaps are told apart from missing
geometry (outside the cloud, disocclusions wider than the splat) by having covered pixels on
both sides within ``reach`` pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: largest fraction of between-point gaps accepted in a model's canvas render
GAP_TOLERANCE = 0.005
#: largest splat radius (pixels) the search tries
MAX_CLOSING_RADIUS = 3


def gap_fraction(valid: np.ndarray, reach: int = 2 * MAX_CLOSING_RADIUS + 1) -> float:
    """Fraction of the (H, W) bool coverage that is a gap between points.

    A gap is an empty pixel with covered pixels within ``reach`` pixels on both its left and
    right, or both above and below it.
    """
    valid = np.asarray(valid, bool)
    h, w = valid.shape
    left, right, up, down = (np.zeros_like(valid) for _ in range(4))
    for d in range(1, reach + 1):
        left[:, d:] |= valid[:, :-d]
        right[:, :-d] |= valid[:, d:]
        up[d:] |= valid[:-d]
        down[:-d] |= valid[d:]
    gaps = ~valid & ((left & right) | (up & down))
    return float(gaps.sum()) / (h * w)


def closing_radius(render_valid: Callable[[int], np.ndarray], tolerance: float = GAP_TOLERANCE,
                   max_radius: int = MAX_CLOSING_RADIUS) -> int:
    """Smallest radius r in 0..max_radius whose coverage ``render_valid(r)`` ((H, W) bool, or a
    list of them for several views, averaged) has a gap fraction <= tolerance; max_radius if none."""
    for r in range(max_radius + 1):
        views = render_valid(r)
        views = views if isinstance(views, list) else [views]
        if np.mean([gap_fraction(v) for v in views]) <= tolerance:
            return r
    return max_radius
