"""The point-cloud world: a ``SceneAnchor`` (coloured points + posed keyframes) drawn by the
z-buffered point renderer (``render.pointcloud``) or, for the ``release`` style, by the released
pipeline's renderer (``render.release``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.render.density import closing_radius
from worldfm_ros.scene.anchor import SPLATS, SceneAnchor
from worldfm_ros.world.base import RenderResult, RenderStyle, check_views, thin_points

#: keyframe poses (evenly picked) the closing splat radius of a camera is measured at
CLOSING_VIEWS = 8
#: SceneAnchor splats a RenderStyle may ask for, plus the scene's own choice
STYLE_SPLATS = ("auto", *SPLATS)


class PointCloudWorld:
    """``anchor`` as a ``world.base.World``; its renderers live on torch ``device`` ('cpu', 'cuda[:N]').

    A render call changes no state but caches (the release renderer, built on first use; the
    measured point spacing; the closing radius per camera), so one world may serve several threads.
    """

    kind = "pointcloud"

    def __init__(self, anchor: SceneAnchor, device: str = "cpu") -> None:
        from worldfm_ros.render.pointcloud import PointCloudRenderer

        self.anchor = anchor
        self.device = device
        self.name = anchor.name
        self.map_T_scene = anchor.map_T_scene
        self.keyframes = anchor.keyframes
        self._renderer = PointCloudRenderer(anchor.points, anchor.colors, device=device)
        self._release = None
        self._spacing = anchor.point_spacing or None
        self._closing: dict[tuple, int] = {}

    @property
    def primitives(self) -> int:
        return self.anchor.num_points

    @property
    def surface_spacing(self) -> float:
        """The scene's recorded point spacing, else the cloud's measured one (``point_spacing``, once)."""
        if self._spacing is None:
            from worldfm_ros.scene.downsample import point_spacing

            self._spacing = point_spacing(self.anchor.points)
        return self._spacing

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.anchor.bounds()

    def surface_points(self, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return thin_points(self.anchor.points, self.anchor.colors, max_points)

    def render(self, cameras: Sequence[PinholeCamera], c2ws: Sequence[np.ndarray],
               style: RenderStyle = RenderStyle()) -> list[RenderResult]:
        check_views(cameras, c2ws)
        if style.splat not in STYLE_SPLATS:
            raise ConfigError(f"splat: expected one of {STYLE_SPLATS}, got {style.splat!r}")
        renderer = self._release_renderer() if style.release else self._renderer
        footprint = (self.anchor.splat if style.splat == "auto" else style.splat) == "footprint"
        if style.closed:
            return [renderer.render(camera, c2w, point_radius=self._closing_radius(renderer, camera, c2w))
                    for camera, c2w in zip(cameras, c2ws)]
        if style.release:
            return [renderer.render(camera, c2w, point_radius=style.point_radius) for camera, c2w in zip(cameras, c2ws)]
        if footprint:
            return renderer.render_batch(list(cameras), list(c2ws), footprint_spacing=self.surface_spacing)
        return renderer.render_batch(list(cameras), list(c2ws), point_radius=style.point_radius)

    def _release_renderer(self):
        if self._release is None:
            from worldfm_ros.render.release import ReleaseRenderer

            self._release = ReleaseRenderer(self.anchor.points, self.anchor.colors, device=self.device)
        return self._release

    def _closing_radius(self, renderer, camera: PinholeCamera, c2w: np.ndarray) -> int:
        """The splat radius (pixels) that closes the cloud for ``camera`` at up to ``CLOSING_VIEWS``
        keyframe poses (at ``c2w``, the first pose asked for, without keyframes); cached per camera."""
        key = (renderer is self._release, camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy)
        if key not in self._closing:
            keyframes = self.keyframes
            poses = [kf.c2w for kf in keyframes[::max(1, -(-len(keyframes) // CLOSING_VIEWS))]] or [c2w]
            self._closing[key] = closing_radius(
                lambda r: [renderer.render(camera, pose, point_radius=r).valid for pose in poses])
        return self._closing[key]
