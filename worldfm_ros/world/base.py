"""What a world is, to everything that renders, drives or learns in it.

A world holds surfaces in its own *scene frame* (a right-handed metric frame, often
OpenCV-style with y down) and ``map_T_scene``, the pose of that frame in the ROS ``map``
(REP-103, ground = the map's xy-plane). The frame path, the simulator, reference selection,
evaluation, the envs and the viewer use only this protocol, so a new kind of world (splats,
a completed room, an analytic test room) is one new module plus one line in
``worldfm_ros.world.store.WORLD_KINDS``. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from worldfm_ros.render.result import DEFAULT_NEAR, RenderResult

if TYPE_CHECKING:
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.scene.anchor import Keyframe

__all__ = ["DEFAULT_NEAR", "RenderResult", "RenderStyle", "World", "check_views", "points_in_map", "render_one",
           "thin_points"]


@dataclass(frozen=True)
class RenderStyle:
    """How a view is to be drawn. Kinds made of samples (point clouds) follow these hints; kinds with
    continuous surfaces (splats, meshes, analytic rooms) draw their one way and may ignore them.

    splat: 'auto' (the world's own choice), 'square' (``point_radius`` squares) or 'footprint'
        (each sample covers its surface patch); point_radius: square half-size, pixels >= 0;
    closed: draw the samples just wide enough to leave no gaps between them at this camera
        (``render.density.closing_radius``, found once per camera), instead of ``point_radius``;
    release: the released WorldFM pipeline's renderer (float16 storage, tie band).
    """

    splat: str = "square"
    point_radius: int = 0
    closed: bool = False
    release: bool = False


@runtime_checkable
class World(Protocol):
    """A world the robot's cameras look at.

    name: a label. map_T_scene: (4, 4) float64 pose of the scene frame in the map frame.
    keyframes: posed reference images (``scene.anchor.Keyframe``, c2w in the scene frame), maybe none.
    primitives: how many primitives it draws (points, Gaussians; 0 for an analytic world).
    surface_spacing: metres of surface one primitive stands for (sizes the anti-aliasing filter;
        0 = continuous, nothing to filter).
    """

    name: str
    map_T_scene: np.ndarray
    keyframes: "list[Keyframe]"

    @property
    def primitives(self) -> int: ...

    @property
    def surface_spacing(self) -> float: ...

    def render(self, cameras: "Sequence[PinholeCamera]", c2ws: Sequence[np.ndarray],
               style: RenderStyle = RenderStyle()) -> list[RenderResult]:
        """One view per camera: cameras[i] at c2ws[i] ((4, 4) camera-to-scene, OpenCV axes, metres)."""
        ...

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) corners (3,) each of the world's surfaces in the scene frame, metres."""
        ...

    def surface_points(self, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Points on the world's surfaces in the scene frame: ((N, 3) float32 metres, (N, 3) uint8 RGB),
        at most ``max_points`` (None = all, or the kind's own dense sampling). Collision takes its
        obstacles from them, the viewer its cloud."""
        ...


def points_in_map(world: World, points: np.ndarray) -> np.ndarray:
    """(N, 3) scene-frame points of ``world`` moved to the map frame (float64, metres)."""
    T = world.map_T_scene
    return points @ T[:3, :3].T + T[:3, 3]


def thin_points(points: np.ndarray, colors: np.ndarray, max_points: int | None) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` of (N, 3) ``points`` and their ``colors``, drawn evenly at random
    (seeded: the same points every call), in their original order; all of them when None."""
    if max_points is not None and len(points) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(points), max_points, replace=False))
        points, colors = points[keep], colors[keep]
    return points, colors


def check_views(cameras: Sequence, c2ws: Sequence) -> None:
    """ConfigError unless ``World.render`` was given one pose per camera."""
    from worldfm_ros.errors import ConfigError

    if len(cameras) != len(c2ws):
        raise ConfigError(f"render: expected one pose per camera, got {len(cameras)} cameras and {len(c2ws)} poses")


def render_one(world: World, camera: "PinholeCamera", c2w: np.ndarray,
               style: RenderStyle = RenderStyle()) -> RenderResult:
    """``world.render`` of a single view."""
    return world.render([camera], [c2w], style)[0]
