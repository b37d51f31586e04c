"""The model's view of a frame: square canvases for cameras of any size and aspect.

A frame model trained at S×S sees square views (pixel centres at integers). The target
camera's view is letterboxed into the canvas (uniform scale, centred; the margin shows more
of the scene, rendered like the rest), and its output is cropped back. Reference keyframes
are fitted by scale-to-cover and centre crop, the released pipeline's rule. A residual
model's correction (its output minus the filled canvas render) is added to the filled render
at the camera's own resolution, so the anchor's detail is not lost to the smaller canvas.
The frame pipeline builds each request's canvas (``letterbox``, ``cover``: ``FrameRequest.canvas``);
``CanvasBackend`` does the rest for every neural backend.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from worldfm_ros.backends.base import Canvas, FrameBackend, FrameRequest, Generated
from worldfm_ros.camera import PinholeCamera
from worldfm_ros.render.fill import residual_base


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


class CanvasBackend(FrameBackend):
    """A frame model that sees ``canvas_size`` × ``canvas_size`` views (square pixels).

    ``generate`` takes camera-size requests with their ``canvas``: it runs ``generate_canvas`` on
    the canvas views of all of them at once and crops each camera's view back out; a residual
    model (``corrects_fill``) has only its correction resampled onto the camera-size fill. Bare
    requests (no canvas) go to ``generate_canvas`` as they are. ``correction`` ('holes' or
    'everywhere', ``backends.config.CORRECTION_REGIONS``) limits a residual model's correction to
    the render's holes, on both paths; a view without holes then needs no model call at all.
    """

    #: the frame differs from ``render.fill.residual_base`` of the render only by what the model
    #: learnt to correct (a residual model)
    corrects_fill: bool = False
    correction: str = "holes"

    @property
    @abc.abstractmethod
    def canvas_size(self) -> int:
        """Side in pixels of the square canvas the model was trained at."""

    @abc.abstractmethod
    def generate_canvas(self, requests: Sequence[FrameRequest]) -> list[Generated]:
        """The model's (h, w, 3) uint8 frames for requests at the canvas size (or, for bare
        requests, at their own size); ``render_filled`` is set for residual models."""

    def generate(self, requests: Sequence[FrameRequest]) -> list[Generated]:
        holes_only = self.corrects_fill and self.correction == "holes"
        results: list[Generated | None] = [None] * len(requests)
        jobs: list[tuple[int, FrameRequest, np.ndarray | None, np.ndarray | None]] = []  # (i, model request, base, filled)
        for i, request in enumerate(requests):
            t0 = time.perf_counter()
            base = _camera_fill(request) if holes_only else None
            if holes_only and request.render_valid.all():  # nothing to correct: the model need not run
                results[i] = Generated(base, {"fill": (time.perf_counter() - t0) * 1e3})
                continue
            view = request.canvas
            if view is None:
                jobs.append((i, request if base is None else replace(request, render_filled=base), base, None))
                continue
            render = view.render
            filled = residual_base(render.rgb, render.valid) if self.corrects_fill else None
            jobs.append((i, FrameRequest(render.rgb, render.depth, render.valid, view.canvas.camera.K, request.c2w,
                                         view.reference_rgb, view.reference_K, request.reference_c2w,
                                         request.reference_id, request.seed, render_filled=filled), base, filled))
        outputs = self.generate_canvas([job[1] for job in jobs]) if jobs else []
        for (i, _, base, filled), out in zip(jobs, outputs):
            results[i] = replace(out, rgb=self._to_camera(requests[i], out.rgb, base, filled, holes_only))
        return results

    def _to_camera(self, request: FrameRequest, out: np.ndarray, base: np.ndarray | None,
                   filled: np.ndarray | None, holes_only: bool) -> np.ndarray:
        """The camera-size frame of the model's output ``out`` for ``request``: a bare request's as it
        is (holes only: on the render's holes), a canvas's cropped back, a residual model's correction
        added to the camera-size fill ``base``."""
        if request.canvas is None:
            return out if not holes_only else np.where(request.render_valid[..., None], base, out)
        height, width = request.render_rgb.shape[:2]
        camera = PinholeCamera.from_K(request.K, width, height)
        canvas = request.canvas.canvas
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
