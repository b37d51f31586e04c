"""Training clips from procedural rooms: collision-free camera trajectories, ray-cast RGB-D frames.

A clip is a short camera path through one ``random_room``: every frame carries the exact
colour, z-depth and pose (``ProceduralRoom.raycast``), which is what the multi-view samples of
``worldfm_ros.train.data`` are built from. Paths come from three templates:

* ``walk``: a random walk with a smoothly drifting heading that turns away from walls and
  obstacles before it reaches them (what a robot driving around sees);
* ``orbit``: an arc around a point of interest, always looking at it;
* ``dolly``: a straight move sideways or forwards while the heading sways.

Every camera position keeps ``margin`` metres from the walls and from every obstacle's
footprint; a template that cannot fit falls back to a walk.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.build.procedural import ProceduralRoom, body_pose, random_room

TEMPLATES = ("walk", "orbit", "dolly")


@dataclass
class Clip:
    """Posed RGB-D frames of one camera path.

    images: (F, H, W, 3) uint8 RGB. depths: (F, H, W) float32 z-depth in metres, 0 = no data.
    c2w: (F, 4, 4) float64 camera-to-world, OpenCV axes, metres. K: (3, 3) float64 pixel
    intrinsics of (H, W). name: where the clip came from (room seed, sequence folder).
    """

    images: np.ndarray
    depths: np.ndarray
    c2w: np.ndarray
    K: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        F = len(self.images)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ConfigError(f"clip {self.name!r} images: expected (F, H, W, 3) uint8, "
                              f"got {self.images.shape} {self.images.dtype}")
        if self.depths.shape != self.images.shape[:3]:
            raise ConfigError(f"clip {self.name!r} depths: expected {self.images.shape[:3]}, got {self.depths.shape}")
        if self.c2w.shape != (F, 4, 4):
            raise ConfigError(f"clip {self.name!r} c2w: expected ({F}, 4, 4), got {self.c2w.shape}")
        if np.asarray(self.K).shape != (3, 3):
            raise ConfigError(f"clip {self.name!r} K: expected (3, 3), got {np.asarray(self.K).shape}")

    @property
    def num_frames(self) -> int:
        """F, the number of frames."""
        return len(self.images)

    @property
    def camera(self) -> PinholeCamera:
        """The clip's pinhole camera at its own (W, H)."""
        return PinholeCamera.from_K(self.K, self.images.shape[2], self.images.shape[1])


def is_free(room: ProceduralRoom, xy: np.ndarray, margin: float) -> bool:
    """True when the point xy (2,) metres is ``margin`` m inside the walls and clear of every obstacle."""
    if np.any(xy < margin) or np.any(xy > room.size[:2] - margin):
        return False
    return not any(np.all(xy > box.lo[:2] - margin) and np.all(xy < box.hi[:2] + margin) for box in room.obstacles)


def _segment_free(room: ProceduralRoom, a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    return all(is_free(room, a + (b - a) * s, margin) for s in np.linspace(0.0, 1.0, 5))


def _random_free_point(room: ProceduralRoom, rng: np.random.Generator, margin: float) -> np.ndarray | None:
    for _ in range(200):
        xy = rng.uniform([margin, margin], room.size[:2] - margin)
        if is_free(room, xy, margin):
            return xy
    return None


def walk_path(room: ProceduralRoom, rng: np.random.Generator, num_frames: int, step: float,
              margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (F, 2) and yaws (F,) of a collision-free random walk, ``step`` m per frame."""
    xy = _random_free_point(room, rng, margin)
    if xy is None:
        raise ConfigError(f"room seed {room.seed}: no free position {margin} m from walls and obstacles")
    yaw = rng.uniform(-np.pi, np.pi)
    turn_rate = 0.0
    positions, yaws = [xy], [yaw]
    for _ in range(num_frames - 1):
        turn_rate = 0.7 * turn_rate + rng.normal(0.0, 0.08)
        for attempt in range(12):
            # Look ahead two steps so the path turns before it is boxed in.
            heading = yaw + turn_rate + (0.0 if attempt == 0 else rng.uniform(-np.pi, np.pi) * attempt / 12)
            direction = np.array([np.cos(heading), np.sin(heading)])
            if _segment_free(room, xy, xy + 2.0 * step * direction, margin):
                nxt = xy + step * direction
                break
        else:
            heading, nxt = yaw + np.pi, xy  # boxed in: turn on the spot
        xy, yaw = nxt, heading
        positions.append(xy)
        yaws.append(yaw)
    return np.array(positions), np.array(yaws)


def orbit_path(room: ProceduralRoom, rng: np.random.Generator, num_frames: int, step: float,
               margin: float) -> tuple[np.ndarray, np.ndarray] | None:
    """An arc around a point of interest, looking at it; None when no arc fits the room."""
    for _ in range(30):
        target = rng.uniform([0.5, 0.5], room.size[:2] - 0.5)
        radius = rng.uniform(1.0, 2.2)
        start = rng.uniform(-np.pi, np.pi)
        sweep = np.sign(rng.uniform(-1, 1)) * step * (num_frames - 1) / radius
        angles = start + np.linspace(0.0, sweep, num_frames)
        positions = target + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        if all(is_free(room, p, margin) for p in positions):
            d = target - positions
            return positions, np.arctan2(d[:, 1], d[:, 0])
    return None


def dolly_path(room: ProceduralRoom, rng: np.random.Generator, num_frames: int, step: float,
               margin: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A straight move (forwards or sideways) with a gently swaying heading; None if none fits."""
    for _ in range(30):
        start = _random_free_point(room, rng, margin)
        if start is None:
            return None
        yaw0 = rng.uniform(-np.pi, np.pi)
        direction = yaw0 + rng.choice([0.0, np.pi / 2, -np.pi / 2])
        s = np.arange(num_frames) * step
        positions = start + s[:, None] * np.array([np.cos(direction), np.sin(direction)])
        if all(is_free(room, p, margin) for p in positions):
            sway = 0.25 * np.sin(np.linspace(0.0, rng.uniform(1.0, 3.0), num_frames) + rng.uniform(0, np.pi))
            return positions, yaw0 + sway
    return None


def camera_path(room: ProceduralRoom, rng: np.random.Generator, num_frames: int, template: str,
                step: float = 0.15, margin: float = 0.5) -> np.ndarray:
    """(F, 4, 4) camera-to-room poses of a ``template`` path; height and pitch drift a little."""
    if template not in TEMPLATES:
        raise ConfigError(f"trajectory template: expected one of {list(TEMPLATES)}, got {template!r}")
    path = None
    if template == "orbit":
        path = orbit_path(room, rng, num_frames, step, margin)
    elif template == "dolly":
        path = dolly_path(room, rng, num_frames, step, margin)
    if path is None:
        path = walk_path(room, rng, num_frames, step, margin)
    positions, yaws = path
    height = rng.uniform(0.9, 1.6) + np.cumsum(rng.normal(0.0, 0.01, num_frames))
    pitch = rng.uniform(-0.1, 0.3) + np.cumsum(rng.normal(0.0, 0.01, num_frames))
    return np.stack([body_pose(x, y, yaw, h, p) for (x, y), yaw, h, p in zip(positions, yaws, height, pitch)])


def synthetic_clip(seed: int, num_frames: int = 16, image_size: int = 128, hfov_deg: float = 75.0,
                   template: str | None = None, step: float = 0.15, margin: float = 0.5,
                   num_obstacles: int | None = None) -> Clip:
    """One clip of ``random_room(seed)`` seen by a square ``image_size`` camera of ``hfov_deg``.

    template: one of ``TEMPLATES``, or None to draw one from the seed. num_obstacles: None draws
    2-5 from the seed. Everything is a function of the arguments (same seed, same clip).
    """
    rng = np.random.default_rng([seed, 7])
    room = random_room(seed, num_obstacles=int(rng.integers(2, 6)) if num_obstacles is None else num_obstacles)
    template = template or str(rng.choice(TEMPLATES, p=[0.5, 0.25, 0.25]))
    camera = PinholeCamera.from_fov(image_size, image_size, hfov_deg)
    poses = camera_path(room, rng, num_frames, template, step, margin)
    images, depths = zip(*(room.raycast(camera, c2w) for c2w in poses))
    return Clip(np.stack(images), np.stack(depths), poses, camera.K, f"room{seed}_{template}")


def resize_clip(clip: Clip, size: int) -> Clip:
    """The clip at ``size`` x ``size``: images area-averaged, depth nearest, K rescaled."""
    H, W = clip.images.shape[1:3]
    images = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in clip.images])
    depths = np.stack([cv2.resize(d, (size, size), interpolation=cv2.INTER_NEAREST) for d in clip.depths])
    K = clip.camera.scaled(size, size).K
    return Clip(images, depths, clip.c2w.copy(), K, clip.name)
