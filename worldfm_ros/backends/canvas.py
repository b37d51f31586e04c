"""The model's view of a frame: square canvases for cameras of any size and aspect.

A frame model trained at S×S sees square views (pixel centres at integers). The target
camera's view is letterboxed into the canvas (uniform scale, centred; the margin shows more
of the scene, rendered like the rest), and its output is cropped back. Reference keyframes
are fitted by scale-to-cover and centre crop, the released pipeline's rule. A residual
model's correction (its output minus the filled canvas render) is added to the filled render
at the camera's own resolution, so the anchor's detail is not lost to the smaller canvas.
``CanvasBackend`` does all of this for every neural backend.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from worldfm_ros.backends.base import FrameBackend, FrameRequest
from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.render.fill import residual_base
from worldfm_ros.scene.anchor import Keyframe

#: where a residual model's correction is added to the filled render (``backend.correction``):
#: only the render's holes (covered pixels stay the anchor's: on real captures the model's
#: correction there loses a little and flickers; benchmarks/RESULTS.md), or every pixel
CORRECTION_REGIONS = ("holes", "everywhere")

#: fitted references kept per backend (keyframes of the scenes it served), beyond which the cache restarts
MAX_FITTED_REFERENCES = 256


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


def check_correction(correction: str) -> str:
    """``correction`` if it is one of ``CORRECTION_REGIONS``, else ConfigError."""
    if correction not in CORRECTION_REGIONS:
        raise ConfigError(f"backend.correction: expected one of {CORRECTION_REGIONS}, got {correction!r}")
    return correction


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


class CanvasBackend(FrameBackend):
    """A frame model that sees ``canvas_size`` × ``canvas_size`` views (square pixels).

    ``generate`` takes a camera-size request with a ``view``: it letterboxes the camera into
    the canvas, has the view render the canvas, fits the reference keyframe to it (once per
    keyframe), runs ``generate_canvas`` and crops the camera's view back out; a residual model
    (``corrects_fill``) has only its correction resampled onto the camera-size fill. A bare
    request (no view) goes to ``generate_canvas`` as it is. ``correction`` ('holes' or
    'everywhere', ``CORRECTION_REGIONS``) limits a residual model's correction to the render's
    holes, on both paths.
    """

    #: the frame differs from ``render.fill.residual_base`` of the render only by what the model
    #: learnt to correct (a residual model)
    corrects_fill: bool = False
    correction: str = "holes"
    _canvas_timings: dict[str, float] = {}

    @property
    @abc.abstractmethod
    def canvas_size(self) -> int:
        """Side in pixels of the square canvas the model was trained at."""

    @abc.abstractmethod
    def generate_canvas(self, request: FrameRequest) -> np.ndarray:
        """The model's (h, w, 3) uint8 frame for a request at the canvas size (or, for a bare
        request, at the request's size); ``request.render_filled`` is set for residual models."""

    def _fitted(self, keyframe: Keyframe, size: int) -> tuple[np.ndarray, np.ndarray]:
        fitted = self.__dict__.setdefault("_fitted_references", {})
        key = (id(keyframe), size)
        if key not in fitted or fitted[key][0] is not keyframe:
            if len(fitted) >= MAX_FITTED_REFERENCES:
                fitted.clear()
            fitted[key] = (keyframe, cover(keyframe.image, keyframe.K, size))
        return fitted[key][1]

    def canvas_timings_ms(self) -> dict[str, float]:
        """Milliseconds of the last frame's canvas stage (render, reference fit, fill); empty for a bare request."""
        return dict(self._canvas_timings)

    def generate(self, request: FrameRequest) -> np.ndarray:
        holes_only = self.corrects_fill and self.correction == "holes"
        base = _camera_fill(request) if holes_only else None
        if holes_only:
            if request.render_valid.all():  # nothing to correct: the model need not run
                self._canvas_timings = {}
                return base
        if request.view is None:
            self._canvas_timings = {}
            if not holes_only:
                return self.generate_canvas(request)
            out = self.generate_canvas(replace(request, render_filled=base))  # filled once
            return np.where(request.render_valid[..., None], base, out)
        t0 = time.perf_counter()
        height, width = request.render_rgb.shape[:2]
        camera = PinholeCamera.from_K(request.K, width, height)
        canvas = letterbox(camera, self.canvas_size)
        view = request.view.render(canvas.camera)
        reference = reference_K = None
        if request.view.keyframe is not None:
            reference, reference_K = self._fitted(request.view.keyframe, self.canvas_size)
        filled = residual_base(view.rgb, view.valid) if self.corrects_fill else None
        self._canvas_timings = {"render_canvas": (time.perf_counter() - t0) * 1e3}
        out = self.generate_canvas(FrameRequest(view.rgb, view.depth, view.valid, canvas.camera.K, request.c2w,
                                                reference, reference_K, request.reference_c2w, request.reference_id,
                                                request.seed, render_filled=filled))
        if filled is None:
            return crop_to_camera(out, canvas, camera)
        correction = crop_to_camera(out.astype(np.float32) - filled, canvas, camera)
        if base is None:
            base = _camera_fill(request)
        rgb = cv2.add(base, correction, dtype=cv2.CV_8U)  # rounds half to even and saturates, as np.rint + clip
        if holes_only:
            cv2.copyTo(base, np.ascontiguousarray(request.render_valid).view(np.uint8), rgb)
        return rgb


def _camera_fill(request: FrameRequest) -> np.ndarray:
    """The camera-size filled render a residual model's correction lands on (H, W, 3) uint8."""
    if request.render_filled is not None:
        return request.render_filled
    return residual_base(request.render_rgb, request.render_valid)
