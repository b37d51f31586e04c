"""The one interface every frame backend implements.

A backend is a pure function of its inputs: ``generate(requests) -> results``, one
``Generated`` (the published image and the backend's own stage timings) per ``FrameRequest``,
for any number of cameras and robots in one call. Everything a frame needs arrives in its
request: the world render at the camera, the chosen reference keyframe and, for models that see
square canvases (``canvas_size``), the same view rendered on that canvas
(``FrameRequest.canvas``, made by ``frame.pipeline``). A backend never calls back into the
simulator and keeps nothing of one call for the next but caches. Adding a backend = one new
module + one line in ``worldfm_ros.backends.registry``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from worldfm_ros.backends.config import BackendConfig
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.render.result import RenderResult


@dataclass(frozen=True)
class Canvas:
    """camera: the S×S canvas camera; scale: canvas px per camera px; offset: (ox, oy) canvas
    position of the camera image's top-left pixel edge, in canvas px."""

    camera: "PinholeCamera"
    scale: float
    offset: tuple[float, float]


@dataclass
class CanvasView:
    """A request's view as a model that sees S×S canvases gets it (``backends.canvas``).

    canvas: where the camera sits in the canvas (``letterbox``): the canvas camera, scale, offset.
    render: the world rendered at the canvas camera and the request's ``c2w``, (S, S) arrays.
    reference_rgb: (S, S, 3) uint8 reference keyframe fitted to the canvas (``cover``), or None.
    reference_K: (3, 3) intrinsics of ``reference_rgb``, or None.
    """

    canvas: Canvas
    render: "RenderResult"
    reference_rgb: np.ndarray | None = None
    reference_K: np.ndarray | None = None


@dataclass
class FrameRequest:
    """Everything a backend may use to produce one frame, all at the output size (H, W).

    render_rgb: (H, W, 3) uint8 world render at the target pose; holes are black.
    render_depth: (H, W) float32 z-depth in metres; 0 = no surface.
    render_valid: (H, W) bool, True where a surface was hit.
    K: (3, 3) float64 target intrinsics, pixels.
    c2w: (4, 4) float64 target camera-to-scene, OpenCV axes, metres.
    reference_rgb: (H, W, 3) uint8 chosen reference keyframe resized to (H, W), or None.
    reference_K: (3, 3) intrinsics of ``reference_rgb`` at (H, W), or None.
    reference_c2w: (4, 4) reference camera-to-scene, or None.
    reference_id: index of the keyframe in the scene (for latent caching), -1 if none.
    seed: noise seed for stochastic backends; None = backend's own generator.
    canvas: the view on the backend's square canvas (``CanvasView``) when the backend has a
        ``canvas_size``, else None (a bare request: the backend works at the request's size).
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
    canvas: CanvasView | None = None
    render_filled: np.ndarray | None = None


@dataclass
class Generated:
    """One generated frame: rgb (H, W, 3) uint8 at the request's size; timings_ms: the backend's
    own stages (milliseconds, by name); reference_cached: the reference latent came from a cache."""

    rgb: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)
    reference_cached: bool = False


class FrameBackend(abc.ABC):
    """Produces one RGB frame per request. Implementations may keep caches, not per-call state.

    canvas_size: side (pixels) of the square canvas the model sees, or None for a backend that
        works at the camera's size (then requests come without ``canvas``).
    """

    name: str = "base"
    canvas_size: int | None = None

    @classmethod
    def config_options(cls, config: "BackendConfig") -> dict:
        """The constructor options for ``config``: each backend maps the fields it uses, explicitly."""
        from worldfm_ros.errors import BackendUnavailable

        # a backend made in code (tests, benchmarks) need not be reachable from node parameters
        raise BackendUnavailable(f"backend {cls.name!r} takes constructor options only, not the node's backend.* parameters")

    @abc.abstractmethod
    def generate(self, requests: Sequence[FrameRequest]) -> list[Generated]:
        """One ``Generated`` per request, in order, each at its request's size."""

    def generate_one(self, request: FrameRequest) -> np.ndarray:
        """The (H, W, 3) uint8 frame of a single request."""
        return self.generate([request])[0].rgb

    def close(self) -> None:
        """Release devices and files. Default: nothing to release."""
