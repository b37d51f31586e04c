"""The per-frame pipeline: pose → anchor render → reference choice → frame backend.

One call turns a base pose in the map frame into the camera outputs, with
per-stage milliseconds. A backend that needs its own view of the scene (a model canvas)
gets it through the request's ``view``. Nothing here knows about ROS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from worldfm_ros.backends.base import FrameBackend, FrameRequest
from worldfm_ros.camera import PinholeCamera
from worldfm_ros.render.antialias import DEFAULT_ANTIALIAS, antialias_render, antialias_sigma
from worldfm_ros.render.density import closing_radius
from worldfm_ros.render.pointcloud import PointCloudRenderer, RenderResult, point_spacing
from worldfm_ros.render.release import ReleaseRenderer
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.reference import KeyframeSelector
from worldfm_ros.sim.rig import CameraRig

if TYPE_CHECKING:
    from worldfm_ros.sim.sensor_rig import RigCamera


#: the frame's own stages, in order, as keys of ``Frame.timings_ms`` (one thread runs them all)
FRAME_STAGES = ("render", "antialias", "select", "backend")
#: keyframe poses (evenly picked) the closing splat radius of a model canvas is measured at
CLOSING_VIEWS = 8


@dataclass
class Frame:
    """One simulated camera frame.

    stamp_ns: time of the pose it was rendered at (nanoseconds).
    rgb: (H, W, 3) uint8 backend output. depth: (H, W) float32 anchor z-depth in metres, 0 = no data.
    valid: (H, W) bool, pixels the anchor covered. render_rgb: (H, W, 3) uint8 anchor render as the
    backend got it (anti-aliased when ``antialias`` > 0; holes black).
    map_T_optical: (4, 4) camera pose in the map frame (OpenCV axes).
    reference_index / reference_score: chosen keyframe (-1 if none) and its co-visibility score.
    timings_ms: per-stage milliseconds (``FRAME_STAGES``: render, antialias, select, backend; and the
    backend's own stages as ``backend.<name>``).
    """

    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    render_rgb: np.ndarray
    map_T_optical: np.ndarray
    reference_index: int = -1
    reference_score: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """Fraction of pixels the anchor render covered, [0, 1]."""
        return np.count_nonzero(self.valid) / self.valid.size  # 10x faster than a bool mean


def footprint_spacing(anchor: SceneAnchor, splat: str) -> float | None:
    """The footprint spacing (metres) ``FramePipeline`` splats ``anchor`` with for the SimConfig
    ``splat`` mode ('auto': the scene's own ``splat``), or None for point_radius squares. The
    scene's recorded point_spacing, else the cloud's measured one (``point_spacing``)."""
    if (anchor.splat if splat == "auto" else splat) != "footprint":
        return None
    return anchor.point_spacing or point_spacing(anchor.points)


@dataclass
class _PoseView:
    """``backends.base.SceneView`` of ``pipeline``'s scene at one target pose c2w (4, 4, scene frame)."""

    pipeline: "FramePipeline"
    c2w: np.ndarray
    keyframe: Keyframe | None

    def render(self, camera: PinholeCamera) -> RenderResult:
        radius = self.pipeline.canvas_radius(camera, self.c2w)
        return self.pipeline.model_renderer.render(camera, self.c2w, point_radius=radius)


class FramePipeline:
    """Renders frames of ``anchor`` through ``backend`` for the camera of ``rig``.

    device: torch device of the renderer ('cpu' or 'cuda'); point_radius: splat radius, pixels.
    footprint_spacing: when set (metres, e.g. ``point_spacing(anchor.points)``), the camera view
    is splatted by each point's footprint (``PointCloudRenderer.render(footprint_spacing=)``) instead of
    ``point_radius``. antialias: width of the camera view's reconstruction filter in point
    footprints (``render.antialias``; 0 = off), the footprint from ``footprint_spacing`` or else the
    scene's recorded or measured point spacing.
    The backend's profile picks the model-canvas renderer (the release's under 'release'), the
    reference-selection rules, and whether a canvas the backend asks for (``FrameRequest.view``)
    is rendered with the radius that closes the cloud (``render.density``, found once per
    canvas at the keyframes).
    """

    def __init__(self, anchor: SceneAnchor, rig: CameraRig, backend: FrameBackend,
                 device: str = "cpu", point_radius: int = 1, footprint_spacing: float | None = None,
                 antialias: float = DEFAULT_ANTIALIAS) -> None:
        self.anchor = anchor
        self.rig = rig
        self.backend = backend
        self.point_radius = point_radius
        self.footprint_spacing = footprint_spacing
        self.antialias = antialias
        #: metres of surface a point stands for (sizes the anti-aliasing filter); measured here, once,
        #: when the scene has not recorded it, so that the first frame does not wait for it
        self.spacing = footprint_spacing or anchor.point_spacing or point_spacing(anchor.points)
        self.profile = backend.profile
        self.renderer = PointCloudRenderer.from_anchor(anchor, device=device)
        self.model_renderer = (ReleaseRenderer.from_anchor(anchor, device=device) if self.profile.release_renderer
                               else self.renderer)
        self.selector = (KeyframeSelector(anchor, self.model_renderer, self.profile.selection)
                         if anchor.keyframes else None)
        self._canvas_radii: dict[tuple, int] = {}
        self._references: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _reference(self, index: int, cam: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
        """Keyframe ``index`` resized to ``cam``'s size, with its K (cached per size)."""
        key = (index, cam.width, cam.height)
        if key not in self._references:
            kf = self.anchor.keyframes[index]
            image = kf.image
            if image.shape[:2] != (cam.height, cam.width):
                image = cv2.resize(image, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
            self._references[key] = (image, kf.camera.scaled(cam.width, cam.height).K)
        return self._references[key]

    def canvas_radius(self, camera: PinholeCamera, c2w: np.ndarray) -> int:
        """Splat radius (pixels) of a model canvas rendered with ``camera``: one pixel per point
        (0) as the models were trained on (closed clouds: ``train/data.py``; the released
        8.4 M-point panorama), or, when the profile closes the canvas, the radius that closes
        the cloud at up to ``CLOSING_VIEWS`` keyframe poses (at ``c2w``, the first target pose,
        without keyframes); cached."""
        if not self.profile.close_canvas:
            return 0
        key = (camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy)
        if key not in self._canvas_radii:
            keyframes = self.anchor.keyframes
            poses = [kf.c2w for kf in keyframes[::-(-len(keyframes) // CLOSING_VIEWS)]] or [c2w]
            self._canvas_radii[key] = closing_radius(
                lambda r: [self.model_renderer.render(camera, pose, point_radius=r).valid for pose in poses])
        return self._canvas_radii[key]

    def render(self, map_T_base: np.ndarray, stamp_ns: int, seed: int | None = None,
               camera: "RigCamera | None" = None, reference_index: int | None = None,
               twist: tuple[np.ndarray, np.ndarray] | None = None,
               rng: np.random.Generator | None = None) -> Frame:
        """Produce the frame seen from base pose ``map_T_base`` (4, 4, map frame) at ``stamp_ns``.

        camera: a camera of a sensor rig (its mount, lens and effects); None = ``self.rig``, ideal.
        reference_index: use this keyframe instead of choosing one (a stereo pair's right eye
        takes its left eye's choice). twist: (linear (3,) m/s, angular (3,) rad/s) base_link body
        velocity at the stamp, for the motion effects (None = at rest). rng: draws the sensor
        noise (None = seeded from ``seed`` and the stamp)."""
        mounted = self.rig if camera is None else camera.mounted
        cam = mounted.camera if camera is None else camera.lens.render_camera
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        c2w = mounted.optical_in_scene(map_T_base, self.anchor.map_T_scene)
        if self.footprint_spacing:
            result = self.renderer.render(cam, c2w, footprint_spacing=self.footprint_spacing)
        else:
            result = self.renderer.render(cam, c2w, point_radius=self.point_radius)
        t1 = time.perf_counter()
        timings["render"] = (t1 - t0) * 1e3
        if self.antialias > 0:
            sigma = antialias_sigma(result.depth, result.valid, cam.fx, self.spacing, self.antialias)
            if sigma > 0:
                result = RenderResult(antialias_render(result.rgb, result.valid, sigma), result.depth, result.valid)
            t_aa = time.perf_counter()
            timings["antialias"] = (t_aa - t1) * 1e3
            t1 = t_aa

        index, score = -1, 0.0
        reference = reference_K = reference_c2w = keyframe = None
        if self.selector is not None:
            if reference_index is None:
                choice = self.selector.select(result.depth, cam, c2w)
                index, score = choice.index, choice.score
            else:
                index = reference_index
            reference, reference_K = self._reference(index, cam)
            keyframe = self.anchor.keyframes[index]
            reference_c2w = keyframe.c2w
        t2 = time.perf_counter()
        timings["select"] = (t2 - t1) * 1e3

        request = FrameRequest(result.rgb, result.depth, result.valid, cam.K, c2w,
                               reference, reference_K, reference_c2w, index, seed, _PoseView(self, c2w, keyframe))
        rgb = self.backend.generate(request)
        t3 = time.perf_counter()
        timings["backend"] = (t3 - t2) * 1e3
        timings.update({f"backend.{k}": v for k, v in self.backend.stage_timings_ms().items()})
        depth, valid, render_rgb = result.depth, result.valid, result.rgb
        if camera is not None and camera.effects.enabled:
            if rng is None:
                rng = np.random.default_rng([0 if seed is None else seed, stamp_ns])
            linear, angular = twist if twist is not None else (np.zeros(3), np.zeros(3))
            rgb, depth, valid, render_rgb = camera.effects.apply(rgb, depth, valid, render_rgb, linear, angular, rng)
            timings["sensor"] = (time.perf_counter() - t3) * 1e3
        return Frame(stamp_ns, rgb, depth, valid, render_rgb, mounted.optical_in_map(map_T_base), index, score, timings)
