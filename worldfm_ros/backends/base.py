"""The one interface every frame backend implements.

A backend turns the anchor render at the target pose (plus the chosen reference
keyframe) into the published image. Adding a backend = one new module + one line
in ``worldfm_ros.backends.registry``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from worldfm_ros.profiles import Profile


@dataclass
class FrameRequest:
    """Everything a backend may use to produce one frame, all at the output size (H, W).

    render_rgb: (H, W, 3) uint8 anchor render at the target pose; holes are black.
    render_depth: (H, W) float32 z-depth in metres; 0 = no point.
    render_valid: (H, W) bool, True where a point landed.
    K: (3, 3) float64 target intrinsics, pixels.
    c2w: (4, 4) float64 target camera-to-scene, OpenCV axes, metres.
    reference_rgb: (H, W, 3) uint8 chosen reference keyframe resized to (H, W), or None.
    reference_K: (3, 3) intrinsics of ``reference_rgb`` at (H, W), or None.
    reference_c2w: (4, 4) reference camera-to-scene, or None.
    reference_id: index of the keyframe in the scene (for latent caching), -1 if none.
    seed: noise seed for stochastic backends; None = backend's own generator.
    """

    render_rgb: np.ndarray
    render_depth: np.ndarray
    render_valid: np.ndarray
    K: np.ndarray
    c2w: np.ndarray
    reference_rgb: np.ndarray | None = None
    reference_K: np.ndarray | None = None
    reference_c2w: np.ndarray | None = None
    reference_id: int = -1
    seed: int | None = None


class FrameBackend(abc.ABC):
    """Produces one RGB frame per request. Implementations may keep state (caches).

    input_size: side in pixels of the square canvas the backend was trained at, or None when
        it takes any size. With a size, the per-frame pipeline renders the anchor on that
        canvas (square pixels, the camera's view letterboxed inside it, the rest of the canvas
        rendered too), fits the reference keyframe to it once, and crops the camera's view
        back out of the output, so that a model sees exactly what it was trained on.
    point_radius: splat radius (px) of the anchor renders the backend was trained with, or
        None to use the pipeline's.
    profile: 'default' or 'release' choices of renderer, reference selection and canvas
        density (``worldfm_ros.profiles``); backends without the option are 'default'.
    corrects_fill: the backend's frame differs from the push-pull-filled render only by what
        it learnt to correct (a residual model). A sized backend's correction (its output minus
        the filled canvas render) is then added to the filled render at the camera's own
        resolution, so the anchor's detail is not lost to the model's smaller canvas.
    """

    name: str = "base"
    input_size: int | None = None
    point_radius: int | None = None
    corrects_fill: bool = False

    @property
    def profile(self) -> "Profile":
        """The compatibility profile (``worldfm_ros.profiles``) the frame pipeline follows."""
        from worldfm_ros.profiles import get_profile

        return get_profile("default")

    @abc.abstractmethod
    def generate(self, request: FrameRequest) -> np.ndarray:
        """Return the frame as (H, W, 3) uint8 RGB at the request's size."""

    def stage_timings_ms(self) -> dict[str, float]:
        """Per-stage milliseconds of the last ``generate`` call (for diagnostics/benchmarks)."""
        return {}

    def close(self) -> None:
        """Release devices and files. Default: nothing to release."""
