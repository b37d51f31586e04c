"""Real-capture artefacts put on exact (procedural) RGB-D frames before they become an anchor.

A frame model trained only on ray-cast anchors sees perfect geometry and colour; real anchors
carry depth noise, flying pixels at depth edges, misregistered poses and exposure differences
between the frames they were fused from. ``CaptureArtefacts.apply`` degrades one reference
frame of a clip the way a hand-held RGB-D capture does, so the network learns to correct
them. Targets (the training ground truth) stay exact.

* depth noise: z' = z (1 + n), n ~ N(0, depth_noise * z / 1 m) (Kinect-style, σ_z ∝ z²);
* flying pixels: with probability ``flying_pixels`` a pixel on a depth edge takes a depth between
  its own and its farthest neighbour's (what a sensor integrating both sides measures);
* pose error: the frame is fused at a pose off by N(0, pose_noise_m) metres per axis and a
  rotation of N(0, pose_noise_deg) degrees about a random axis (misregistration between views);
* exposure: the frame's colours (and its reference image) scaled by one gain per frame drawn from
  U(1 - exposure, 1 + exposure) with a per-channel tint of ±exposure / 4 (auto-exposure and
  white balance drifting between frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from worldfm_ros.errors import ConfigError


@dataclass
class CaptureArtefacts:
    """Amounts of each artefact (module docstring); all zero = exact frames (the default).

    depth_noise: relative depth σ at 1 m; flying_pixels: share of depth-edge pixels made
    flying; pose_noise_m: metres per axis; pose_noise_deg: degrees; exposure: largest relative
    gain change between frames.
    """

    depth_noise: float = 0.0
    flying_pixels: float = 0.0
    pose_noise_m: float = 0.0
    pose_noise_deg: float = 0.0
    exposure: float = 0.0

    def __post_init__(self) -> None:
        for name in ("depth_noise", "flying_pixels", "pose_noise_m", "pose_noise_deg", "exposure"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"data.artefacts.{name}: expected a number >= 0, got {getattr(self, name)}")
        if self.flying_pixels > 1 or self.exposure >= 1:
            raise ConfigError(f"data.artefacts: flying_pixels must be <= 1 and exposure < 1, got "
                              f"{self.flying_pixels} and {self.exposure}")

    @property
    def enabled(self) -> bool:
        """Whether any artefact is switched on."""
        return any(v > 0 for v in (self.depth_noise, self.flying_pixels, self.pose_noise_m, self.pose_noise_deg,
                                   self.exposure))

    def apply(self, image: np.ndarray, depth: np.ndarray, c2w: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Degraded copies of one frame: image (H, W, 3) uint8, z-depth (H, W) float32 metres
        (0 = none), c2w (4, 4) camera-to-world, OpenCV axes."""
        depth = np.asarray(depth, np.float32).copy()
        valid = depth > 0
        if self.flying_pixels > 0:
            far = cv2.dilate(depth, np.ones((3, 3), np.uint8))
            edge = valid & (far > 1.05 * depth) & (rng.random(depth.shape) < self.flying_pixels)
            mix = rng.uniform(0.2, 0.8, depth.shape).astype(np.float32)
            depth = np.where(edge, depth + mix * (far - depth), depth)
        if self.depth_noise > 0:
            noise = rng.normal(0.0, 1.0, depth.shape).astype(np.float32) * self.depth_noise * depth
            depth = np.where(valid, depth * (1.0 + noise), 0.0).astype(np.float32)
        c2w = np.asarray(c2w, np.float64).copy()
        if self.pose_noise_deg > 0:
            axis = rng.normal(size=3)
            angle = np.radians(rng.normal(0.0, self.pose_noise_deg))
            c2w[:3, :3] = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix() @ c2w[:3, :3]
        if self.pose_noise_m > 0:
            c2w[:3, 3] += rng.normal(0.0, self.pose_noise_m, 3)
        if self.exposure > 0:
            gain = rng.uniform(1.0 - self.exposure, 1.0 + self.exposure) * (
                1.0 + rng.uniform(-self.exposure / 4, self.exposure / 4, 3))
            image = np.clip(np.rint(image.astype(np.float32) * gain.astype(np.float32)), 0, 255).astype(np.uint8)
        return image, depth, c2w
