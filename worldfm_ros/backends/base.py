"""The one interface every frame backend implements.

A backend turns the anchor render at the target pose (plus the chosen reference
keyframe) into the published image: ``generate(request) -> (H, W, 3)``, its stage timings,
and ``close``. Whatever geometry a model needs (a square canvas, a fitted reference) the
backend builds itself from ``FrameRequest.view`` (``backends.canvas``). Adding a backend =
one new module + one line in ``worldfm_ros.backends.registry``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from worldfm_ros.backends.config import BackendConfig
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.profiles import Profile
    from worldfm_ros.render.pointcloud import RenderResult
    from worldfm_ros.scene.anchor import Keyframe


class SceneView(Protocol):
    """The scene as one frame's backend may look at it beyond the camera render.

    render(camera): the anchor rendered at the request's ``c2w`` with another ``camera``
        (e.g. a model canvas), by the profile's model renderer, splatted as closed as the
        profile asks (``FramePipeline.canvas_radius``).
    keyframe: the chosen reference keyframe at its native size, or None.
    """

    keyframe: "Keyframe | None"

    def render(self, camera: "PinholeCamera") -> "RenderResult": ...


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
    view: the scene at this pose for backends that render their own canvas (``SceneView``), or
        None for a bare request (a backend then works at the request's size).
    render_filled: (H, W, 3) uint8 ``render.fill.residual_base`` of the render when the caller
        already computed it, else None.
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
    view: SceneView | None = None
    render_filled: np.ndarray | None = None


class FrameBackend(abc.ABC):
    """Produces one RGB frame per request. Implementations may keep state (caches).

    profile: 'default' or 'release' choices of renderer, reference selection and canvas
        density (``worldfm_ros.profiles``); backends without the option are 'default'.
    """

    name: str = "base"

    @classmethod
    def config_options(cls, config: "BackendConfig") -> dict:
        """The constructor options for ``config``: each backend maps the fields it uses, explicitly."""
        from worldfm_ros.errors import BackendUnavailable

        # a backend made in code (tests, benchmarks) need not be reachable from node parameters
        raise BackendUnavailable(f"backend {cls.name!r} takes constructor options only, not the node's backend.* parameters")

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
