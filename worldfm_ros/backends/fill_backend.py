"""The fill backend (registered as 'anchor'): the anchor render with classical hole filling.

No network: holes left by the sparse anchor are filled from their surroundings
(``render.fill``: push-pull or Telea). The reference fallback every neural backend is
compared with, and what the node falls back to when one cannot start.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from worldfm_ros.backends.base import FrameBackend, FrameRequest, Generated
from worldfm_ros.backends.config import BackendConfig
from worldfm_ros.errors import ConfigError
from worldfm_ros.render.fill import FILL_METHODS, fill_holes


class FillBackend(FrameBackend):
    """The render, hole-filled. fill: 'push_pull' (default), 'background' (push-pull from the far
    side of depth edges), 'telea' or 'none'; telea_radius in pixels."""

    name = "anchor"

    def __init__(self, fill: str = "push_pull", telea_radius: float = 3.0) -> None:
        if fill not in FILL_METHODS:
            raise ConfigError(f"anchor backend fill: expected one of {FILL_METHODS}, got {fill!r}")
        self.fill = fill
        self.telea_radius = float(telea_radius)

    @classmethod
    def config_options(cls, config: BackendConfig) -> dict:
        return {"fill": config.fill}

    @classmethod
    def from_config(cls, config: BackendConfig) -> "FillBackend":
        """The fill backend with ``config``'s hole filling (the fallback every other backend has)."""
        return cls(**cls.config_options(config))

    def generate(self, requests: Sequence[FrameRequest]) -> list[Generated]:
        out = []
        for request in requests:
            t0 = time.perf_counter()
            rgb = fill_holes(request.render_rgb, request.render_valid, self.fill, self.telea_radius,
                             depth=request.render_depth)
            out.append(Generated(rgb, {"fill": (time.perf_counter() - t0) * 1e3}))
        return out
