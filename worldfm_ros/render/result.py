"""What every renderer returns: colour, depth and validity of one view (numpy, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: near clipping distance of every renderer, metres
DEFAULT_NEAR = 1e-3


@dataclass
class RenderResult:
    """A rendered view, numpy arrays at the camera's size (H, W).

    rgb: (H, W, 3) uint8; pixels no surface reached are black.
    depth: (H, W) float32 z-depth in metres along the optical axis; 0 = empty.
    valid: (H, W) bool, True where a surface was hit.
    observed: optional (H, W) bool, True where the surface shown was captured (not synthesised
        by completing the world); None = every valid pixel is captured.
    alpha: optional (H, W) float32 accumulated opacity in [0, 1] of a translucent world (splats:
        ``rgb`` is then composited over black, so what lies behind adds ``(1 - alpha)`` of its
        colour); None = opaque wherever valid.
    """

    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    observed: np.ndarray | None = None
    alpha: np.ndarray | None = None

    @property
    def coverage(self) -> float:
        """Fraction of pixels a surface covered, [0, 1]."""
        return np.count_nonzero(self.valid) / self.valid.size  # 10x faster than a bool mean
