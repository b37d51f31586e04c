"""A world closed by its room layout: the captured world drawn first, the layout's textured floor,
ceiling and walls (``world.layout``) wherever the capture has no surface.

Works on any kind of base world (points, splats) through the ``World`` protocol. Every result says
which pixels show the capture: ``RenderResult.observed`` is True on pixels of the base world and
on layout texels painted from captured points, False on synthesised ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from worldfm_ros.render.result import RenderResult
from worldfm_ros.world.base import RenderStyle, World, check_views, points_in_map
from worldfm_ros.world.layout import RoomLayout

#: spacing of the layout samples collision and the viewer get, metres
SURFACE_SPACING = 0.05


class CompletedWorld:
    """``base`` (any ``World``) closed by ``layout`` (a ``RoomLayout`` in the map frame)."""

    def __init__(self, base: World, layout: RoomLayout) -> None:
        self.base = base
        self.layout = layout
        self.kind = getattr(base, "kind", "world")
        self.name = base.name
        self.map_T_scene = base.map_T_scene
        self.keyframes = base.keyframes
        self.scene_T_map = np.linalg.inv(self.map_T_scene)
        self._surface: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def primitives(self) -> int:
        return self.base.primitives

    @property
    def surface_spacing(self) -> float:
        return self.base.surface_spacing

    def render(self, cameras: Sequence, c2ws: Sequence[np.ndarray],
               style: RenderStyle = RenderStyle()) -> list[RenderResult]:
        check_views(cameras, c2ws)
        out = []
        for camera, c2w, base in zip(cameras, c2ws, self.base.render(cameras, c2ws, style)):
            lay = self.layout.render(camera.K, camera.width, camera.height, self.map_T_scene @ c2w)
            # the capture always wins: a surface seen beyond a fitted wall (through a door, or past a
            # wall only guessed where the capture ended) is still what the camera would see
            keep = base.valid
            fill = lay.valid & ~keep
            rgb, depth = base.rgb.copy(), base.depth.copy()
            if base.alpha is None:
                rgb[fill] = lay.rgb[fill]
            else:  # a translucent capture (splats, their fringes) is seen over the layout behind it
                behind = lay.valid & (base.alpha < 1.0)
                over = base.rgb[behind] + (1.0 - base.alpha[behind, None]) * lay.rgb[behind]
                rgb[behind] = np.clip(over + 0.5, 0, 255).astype(np.uint8)
            depth[fill] = lay.depth[fill]
            out.append(RenderResult(rgb, depth, keep | fill, observed=keep | (fill & lay.observed)))
        return out

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.base.bounds()
        pts = self._layout_points_scene()
        if len(pts):
            lo, hi = np.minimum(lo, pts.min(axis=0)), np.maximum(hi, pts.max(axis=0))
        return lo, hi

    def surface_points(self, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        from worldfm_ros.world.base import thin_points

        if self._surface is None:
            p, c = self.base.surface_points()
            lp = self._layout_points_scene()
            lc = self.layout.points(SURFACE_SPACING)[1]
            self._surface = (np.concatenate([p, lp]).astype(np.float32), np.concatenate([c, lc]))
        return thin_points(*self._surface, max_points)

    def contains(self, points_map: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(N,) bool: which (N, 3) map points lie inside the room, ``margin`` m from its walls."""
        return self.layout.contains(np.asarray(points_map)[:, :2], margin)

    def _layout_points_scene(self) -> np.ndarray:
        p = self.layout.points(SURFACE_SPACING)[0].astype(np.float64)
        T = self.scene_T_map
        return (p @ T[:3, :3].T + T[:3, 3]).astype(np.float32)


def observed_mask(result: RenderResult) -> np.ndarray:
    """(H, W) bool: pixels showing the capture (``result.observed``, else every valid pixel)."""
    return result.valid if result.observed is None else result.observed


__all__ = ["CompletedWorld", "observed_mask", "points_in_map"]
