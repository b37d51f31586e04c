"""The frame path: pose → world render → reference choice → frame backend, over batches of views.

``FramePipeline.render_views`` takes any number of camera views (several cameras of a rig, several
robots in one world) and runs each stage once over all of them: the world renders every camera
view, the selector picks each view's reference keyframe, the canvases a square-canvas model needs
are rendered, and the backend generates every frame in one call. The pipeline is the one owner of
the compatibility profile (``frame.profiles``): it decides how the world draws the camera view,
the model canvas and keyframe depth, and which selection rules apply. Nothing here knows about ROS.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from worldfm_ros.backends.base import CanvasView, FrameBackend, FrameRequest
from worldfm_ros.backends.canvas import cover, letterbox
from worldfm_ros.camera import PinholeCamera
from worldfm_ros.frame.profiles import Profile, get_profile
from worldfm_ros.frame.reference import KeyframeSelector
from worldfm_ros.render.antialias import DEFAULT_ANTIALIAS, antialias_render, antialias_sigma
from worldfm_ros.render.result import RenderResult
from worldfm_ros.world.base import RenderStyle, World

if TYPE_CHECKING:
    from worldfm_ros.sensors.rig import CameraRig
    from worldfm_ros.sensors.sensor_rig import RigCamera


#: the frame's own stages, in order, as keys of ``Frame.timings_ms``
FRAME_STAGES = ("render", "antialias", "select", "canvas", "backend")
#: keyframe images kept fitted to camera and canvas sizes, beyond which the cache restarts
MAX_FITTED_KEYFRAMES = 256


@dataclass
class Frame:
    """One simulated camera frame.

    stamp_ns: time of the pose it was rendered at (nanoseconds).
    rgb: (H, W, 3) uint8 backend output. depth: (H, W) float32 world z-depth in metres, 0 = no data.
    valid: (H, W) bool, pixels the world covered. render_rgb: (H, W, 3) uint8 world render as the
    backend got it (anti-aliased when ``antialias`` > 0; holes black).
    map_T_optical: (4, 4) camera pose in the map frame (OpenCV axes).
    reference_index / reference_score: chosen keyframe (-1 if none) and its co-visibility score.
    observed: (H, W) bool, pixels showing a captured surface rather than one synthesised when the
    world was completed (``scene-complete``); None = every valid pixel. A rolling shutter's row
    shifts are not applied to it.
    timings_ms: per-stage milliseconds (``FRAME_STAGES``; ``canvas`` and ``backend`` are those of the
    batch the frame was made in, and the backend's own stages follow as ``backend.<name>``).
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
    observed: np.ndarray | None = None

    @property
    def coverage(self) -> float:
        """Fraction of pixels the world render covered, [0, 1]."""
        return coverage_of(self.valid)

    @property
    def observed_fraction(self) -> float:
        """Fraction of pixels showing a captured surface (not one synthesised by completion), [0, 1]."""
        return coverage_of(self.valid if self.observed is None else self.observed)


def coverage_of(valid: np.ndarray) -> float:
    """Fraction of the True pixels of a (H, W) bool mask, [0, 1]."""
    return np.count_nonzero(valid) / valid.size  # 10x faster than a bool mean


@dataclass
class View:
    """One camera view to make.

    map_T_base: (4, 4) base_link pose in the map frame, metres; stamp_ns: the pose's time.
    camera: a camera of a sensor rig (its mount, lens and effects); None = the pipeline's rig, ideal.
    seed: noise seed of the backend (None = its own generator). reference_index: use this keyframe
    instead of choosing one. reference_of: take the choice of the view at that position of the same
    batch (a stereo pair's right eye takes its left eye's). twist: (linear (3,) m/s, angular (3,)
    rad/s) base_link body velocity at the stamp, for the motion effects (None = at rest).
    rng: draws the sensor noise (None = seeded from ``seed`` and the stamp).
    """

    map_T_base: np.ndarray
    stamp_ns: int
    camera: "RigCamera | None" = None
    seed: int | None = None
    reference_index: int | None = None
    reference_of: int | None = None
    twist: tuple[np.ndarray, np.ndarray] | None = None
    rng: np.random.Generator | None = None


class FramePipeline:
    """Renders frames of ``world`` through ``backend`` for the cameras of ``rig``.

    profile: 'default' or 'release' (or a ``Profile``): how the model canvas and keyframe depth
    are drawn (``RenderStyle.closed`` / ``release``) and the reference-selection rules.
    point_radius: square splat half-size of the camera view, pixels; splat: 'auto' (the world's own
    choice), 'square' or 'footprint' (``RenderStyle``). antialias: width of the camera view's
    reconstruction filter in surface footprints (``render.antialias``; 0 = off), the footprint from
    the world's ``surface_spacing``. ``point_radius`` and ``antialias`` may be changed between calls.
    """

    def __init__(self, world: World, rig: "CameraRig", backend: FrameBackend, profile: str | Profile = "default",
                 point_radius: int = 1, splat: str = "auto", antialias: float = DEFAULT_ANTIALIAS) -> None:
        self.world = world
        self.rig = rig
        self.backend = backend
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.point_radius = point_radius
        self.splat = splat
        self.antialias = antialias
        #: metres of surface a primitive stands for; asked here, once, so the first frame does not wait for it
        self.spacing = world.surface_spacing
        self.canvas_style = RenderStyle(closed=self.profile.close_canvas, release=self.profile.release_renderer)
        self.selector = (KeyframeSelector(world, self.profile.selection, release=self.profile.release_renderer)
                         if world.keyframes else None)
        self._fitted: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def camera_style(self) -> RenderStyle:
        """How the world draws the camera's own view."""
        return RenderStyle(splat=self.splat, point_radius=self.point_radius)

    def keyframe_image(self, index: int, size: tuple[int, int], fit: str) -> tuple[np.ndarray, np.ndarray]:
        """Keyframe ``index`` at ``size`` (W, H) with its (3, 3) K: 'resize' stretches it to the size
        (a camera-size reference), 'cover' scales it to cover a square canvas and crops the centre
        (``backends.canvas.cover``). Cached per keyframe, size and fit."""
        key = (index, size, fit)
        if key not in self._fitted:
            if len(self._fitted) >= MAX_FITTED_KEYFRAMES:
                self._fitted.clear()
            kf = self.world.keyframes[index]
            if fit == "cover":
                self._fitted[key] = cover(kf.image, kf.K, size[0])
            else:
                image = kf.image
                if image.shape[:2] != (size[1], size[0]):
                    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                self._fitted[key] = (image, kf.camera.scaled(*size).K)
        return self._fitted[key]

    def render(self, map_T_base: np.ndarray, stamp_ns: int, seed: int | None = None,
               camera: "RigCamera | None" = None, reference_index: int | None = None,
               twist: tuple[np.ndarray, np.ndarray] | None = None,
               rng: np.random.Generator | None = None) -> Frame:
        """The frame of one ``View`` (see there for the arguments)."""
        return self.render_views([View(map_T_base, stamp_ns, camera, seed, reference_index, None, twist, rng)])[0]

    def coverage(self, views: Sequence[View]) -> list[float]:
        """The fraction of each view's camera the world covers, [0, 1], from one world render call:
        ``Frame.coverage`` of the frames ``render_views`` would make (before a camera's sensor
        effects, on a distorting lens's pinhole canvas), without choosing references or running
        the backend."""
        _, cams, c2ws = self._cameras(views)
        return [coverage_of(r.valid) for r in self.world.render(cams, c2ws, self.camera_style)]

    def _cameras(self, views: Sequence[View]) -> tuple[list["CameraRig"], list[PinholeCamera], list[np.ndarray]]:
        """Each view's mounted camera, the pinhole camera the world renders for it and its (4, 4)
        camera-to-scene pose (OpenCV axes, metres)."""
        mounted = [self.rig if v.camera is None else v.camera.mounted for v in views]
        cams = [m.camera if v.camera is None else v.camera.lens.render_camera for m, v in zip(mounted, views)]
        c2ws = [m.optical_in_scene(v.map_T_base, self.world.map_T_scene) for m, v in zip(mounted, views)]
        return mounted, cams, c2ws

    def render_views(self, views: Sequence[View]) -> list[Frame]:
        """The frames of ``views``, in order, each stage run once over the batch."""
        n = len(views)
        timings: list[dict[str, float]] = [{} for _ in range(n)]
        mounted, cams, c2ws = self._cameras(views)

        t0 = time.perf_counter()
        renders = self.world.render(cams, c2ws, self.camera_style)
        per_view = (time.perf_counter() - t0) * 1e3 / max(n, 1)
        for i in range(n):
            timings[i]["render"] = per_view
            if self.antialias > 0:
                t1 = time.perf_counter()
                renders[i] = self._antialiased(renders[i], cams[i])
                timings[i]["antialias"] = (time.perf_counter() - t1) * 1e3

        t1 = time.perf_counter()
        choices = self._choose(views, renders, cams, c2ws)
        per_view = (time.perf_counter() - t1) * 1e3 / max(n, 1)
        for i in range(n):
            timings[i]["select"] = per_view

        t1 = time.perf_counter()
        canvases = self._canvases(cams, c2ws, [index for index, _ in choices])
        requests = [self._request(view, render, cam, c2w, index, canvas) for view, render, cam, c2w, (index, _), canvas
                    in zip(views, renders, cams, c2ws, choices, canvases)]
        t2 = time.perf_counter()
        generated = self.backend.generate(requests)
        t3 = time.perf_counter()

        frames = []
        for i, (view, render, out) in enumerate(zip(views, renders, generated)):
            timings[i]["canvas"] = (t2 - t1) * 1e3
            timings[i]["backend"] = (t3 - t2) * 1e3
            timings[i].update({f"backend.{k}": v for k, v in out.timings_ms.items()})
            frames.append(self._frame(view, mounted[i], render, out.rgb, choices[i], timings[i]))
        return frames

    def _antialiased(self, render: RenderResult, cam: PinholeCamera) -> RenderResult:
        sigma = antialias_sigma(render.depth, render.valid, cam.fx, self.spacing, self.antialias)
        if sigma <= 0:
            return render
        return RenderResult(antialias_render(render.rgb, render.valid, sigma), render.depth, render.valid,
                            render.observed)

    def _choose(self, views: Sequence[View], renders: list[RenderResult], cams: list[PinholeCamera],
                c2ws: list[np.ndarray]) -> list[tuple[int, float]]:
        """(keyframe index, score) of every view: the one it is given, an earlier view's, or its own
        choice, the views that choose their own scored in one selector call."""
        if self.selector is None:
            return [(-1, 0.0)] * len(views)
        own = [i for i, v in enumerate(views) if v.reference_of is None and v.reference_index is None]
        if len(own) == 1:  # the selector remembers a single view's last choice
            chosen = [self.selector.select(renders[own[0]].depth, cams[own[0]], c2ws[own[0]])]
        else:
            chosen = self.selector.select_batch([renders[i].depth for i in own], [cams[i] for i in own],
                                                [c2ws[i] for i in own])
        choices: list[tuple[int, float]] = [(-1, 0.0)] * len(views)
        for i, choice in zip(own, chosen):
            choices[i] = (choice.index, choice.score)
        for i, view in enumerate(views):
            if view.reference_of is not None:
                choices[i] = (choices[view.reference_of][0], 0.0)
            elif view.reference_index is not None:
                choices[i] = (view.reference_index, 0.0)
        return choices

    def _canvases(self, cams: list[PinholeCamera], c2ws: list[np.ndarray], indices: list[int]) -> list:
        """Each view's ``CanvasView`` (one world render call for all of them) when the backend sees
        square canvases, else Nones."""
        size = self.backend.canvas_size
        if not size:
            return [None] * len(cams)
        canvases = [letterbox(cam, size) for cam in cams]
        renders = self.world.render([c.camera for c in canvases], c2ws, self.canvas_style)
        return [CanvasView(canvas, render, *(self.keyframe_image(index, (size, size), "cover") if index >= 0
                                             else (None, None)))
                for canvas, render, index in zip(canvases, renders, indices)]

    def _request(self, view: View, render: RenderResult, cam: PinholeCamera, c2w: np.ndarray, index: int,
                 canvas: CanvasView | None) -> FrameRequest:
        """The backend's request of one view."""
        reference = reference_K = reference_c2w = None
        if index >= 0:
            reference, reference_K = self.keyframe_image(index, (cam.width, cam.height), "resize")
            reference_c2w = self.world.keyframes[index].c2w
        return FrameRequest(render.rgb, render.depth, render.valid, cam.K, c2w, reference, reference_K,
                            reference_c2w, index, view.seed, canvas)

    def _frame(self, view: View, mounted: "CameraRig", render: RenderResult, rgb: np.ndarray,
               choice: tuple[int, float], timings: dict[str, float]) -> Frame:
        """The published frame of one view: the backend's image with the camera's sensor effects."""
        depth, valid, render_rgb = render.depth, render.valid, render.rgb
        camera = view.camera
        if camera is not None and camera.effects.enabled:
            t0 = time.perf_counter()
            rng = view.rng
            if rng is None:
                rng = np.random.default_rng([0 if view.seed is None else view.seed, view.stamp_ns])
            linear, angular = view.twist if view.twist is not None else (np.zeros(3), np.zeros(3))
            rgb, depth, valid, render_rgb = camera.effects.apply(rgb, depth, valid, render_rgb, linear, angular, rng)
            timings["sensor"] = (time.perf_counter() - t0) * 1e3
        observed = render.observed
        if observed is not None:
            if camera is not None and camera.effects.distorts:
                observed = camera.effects.lens.apply_mask(observed)
            observed = observed & valid
        return Frame(view.stamp_ns, rgb, depth, valid, render_rgb, mounted.optical_in_map(view.map_T_base),
                     choice[0], choice[1], timings, observed)
