"""The scene anchor: a coloured point cloud plus posed reference keyframes.

Frames: points and keyframe poses live in the *scene frame* (any right-handed
metric frame the source used, often OpenCV-style with y down). ``map_T_scene``
(the pose of the scene frame in the map; ``scene_to_map`` in scene files) maps scene coordinates to the ROS ``map`` frame (REP-103: x forward, y left,
z up, ground = the map's xy-plane), so a ground robot drives on z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from worldfm_ros.camera import PinholeCamera, check_pose
from worldfm_ros.errors import SceneError
from worldfm_ros.render.cloud import check_points


@dataclass
class Keyframe:
    """A posed reference image.

    image: (H, W, 3) uint8 RGB.
    K: (3, 3) float64 pinhole intrinsics in pixels for this image's size.
    c2w: (4, 4) float64 camera-to-scene, OpenCV camera axes, metres.
    depth: optional (H, W) float32 z-depth in metres along the optical axis; 0 = no data.
    name: a label (e.g. the source file stem).
    """

    image: np.ndarray
    K: np.ndarray
    c2w: np.ndarray
    depth: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        label = f"keyframe {self.name!r}"
        self.image = np.asarray(self.image)
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise SceneError(f"{label}: image must be (H, W, 3) uint8, got {self.image.shape} {self.image.dtype}")
        h, w = self.image.shape[:2]
        self.c2w = check_pose(self.c2w, f"{label}.c2w")
        self.K = PinholeCamera.from_K(self.K, w, h).K
        if self.depth is not None:
            d = np.asarray(self.depth, dtype=np.float32)
            if d.shape != (h, w):
                raise SceneError(f"{label}: depth shape {d.shape} does not match image size {(h, w)}")
            if not np.all(np.isfinite(d)) or np.any(d < 0):
                raise SceneError(f"{label}: depth must be finite and >= 0 metres (0 = no data)")
            self.depth = d

    @property
    def camera(self) -> PinholeCamera:
        """The keyframe's pinhole camera at its image size."""
        h, w = self.image.shape[:2]
        return PinholeCamera.from_K(self.K, w, h)

    def resized(self, width: int, height: int) -> "Keyframe":
        """The keyframe resampled to ``width`` x ``height`` pixels: the image area-filtered, the
        depth nearest-neighbour (no depth is invented at edges), K scaled with the pixel centres."""
        import cv2

        size = (int(width), int(height))
        depth = None if self.depth is None else cv2.resize(self.depth, size, interpolation=cv2.INTER_NEAREST)
        return Keyframe(cv2.resize(self.image, size, interpolation=cv2.INTER_AREA), self.camera.scaled(*size).K,
                        self.c2w, depth, self.name)


#: splats a scene may ask for (SceneAnchor.splat)
SPLATS = ("square", "footprint")


@dataclass
class SceneAnchor:
    """A scene: coloured points in the scene frame, keyframes, and the scene→map transform.

    points: (N, 3) float32 positions in the scene frame, metres.
    colors: (N, 3) uint8 RGB.
    map_T_scene: (4, 4) float64 pose of the scene frame in the ROS map frame (maps scene
        coordinates to map coordinates; stored as ``scene_to_map`` in scene files).
    keyframes: posed reference images in the scene frame.
    name: human-readable label.
    splat: how the scene is best splatted, one of SPLATS: 'square' (point_radius squares, the
        default) or 'footprint' (by each point's footprint; a dense fused capture of clean depth).
        Stored as ``render.splat`` in scene files; the node follows it when its ``splat`` is 'auto'.
    point_spacing: side of the surface patch a point stands for (metres; the fusion cell of an
        RGB-D build), what a footprint splat needs; 0 = not recorded (measured when needed).
    """

    points: np.ndarray
    colors: np.ndarray
    map_T_scene: np.ndarray = field(default_factory=lambda: np.eye(4))
    keyframes: list[Keyframe] = field(default_factory=list)
    name: str = "scene"
    splat: str = "square"
    point_spacing: float = 0.0

    def __post_init__(self) -> None:
        self.points, self.colors = check_points(self.points, self.colors, f"scene {self.name!r}")
        self.map_T_scene = check_pose(self.map_T_scene, f"scene {self.name!r}: map_T_scene")
        if self.splat not in SPLATS:
            raise SceneError(f"scene {self.name!r}: render.splat: expected one of {SPLATS}, got {self.splat!r}")
        if not (isinstance(self.point_spacing, (int, float)) and np.isfinite(self.point_spacing)
                and self.point_spacing >= 0):
            raise SceneError(f"scene {self.name!r}: render.point_spacing: expected a distance >= 0 m, "
                             f"got {self.point_spacing!r}")
        self.point_spacing = float(self.point_spacing)

    @property
    def num_points(self) -> int:
        return int(len(self.points))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) corners of the points in the scene frame, metres, each (3,)."""
        return self.points.min(axis=0), self.points.max(axis=0)
