"""The sensor stage of one camera: what turns the backend's ideal pinhole frame into the image a
real camera of that kind would give, in the order the light takes.

1. motion during the frame (rolling shutter, motion blur) on the ideal pinhole canvas, from the
   frame's depth and the robot's velocity (:mod:`worldfm_ros.sensors.motion`);
2. the lens: the canvas remapped to the distorted image (:mod:`worldfm_ros.sensors.lens`);
3. the imager: shot and read noise, gain, vignetting, compression; the depth camera's own noise
   (:mod:`worldfm_ros.sensors.noise`).

Each effect is off by default; with all off the stage is skipped (``enabled`` False).
"""

from __future__ import annotations

import numpy as np

from worldfm_ros.sensors.lens import Lens
from worldfm_ros.sensors.motion import MotionBlurConfig, MotionEffects, RollingShutterConfig
from worldfm_ros.sensors.noise import DepthNoiseConfig, PhotometricConfig, apply_depth_noise, apply_photometric


class CameraEffects:
    """The effects of one camera. lens: its Lens (``lens.render_camera`` is the canvas the frame is
    rendered at); base_T_optical: (4, 4) its optical frame in base_link (for the motion effects)."""

    def __init__(self, lens: Lens, base_T_optical: np.ndarray, blur: MotionBlurConfig,
                 shutter: RollingShutterConfig, photometric: PhotometricConfig, depth_noise: DepthNoiseConfig) -> None:
        self.lens = lens
        self.motion = MotionEffects(blur, shutter, lens.render_camera, base_T_optical)
        self.photometric = photometric
        self.depth_noise = depth_noise
        self.distorts = lens.render_camera != lens.camera or any(lens.D)
        self.enabled = (self.motion.enabled or self.distorts or photometric.enabled
                        or depth_noise.preset != "none")

    def apply(self, rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray, render_rgb: np.ndarray,
              linear: np.ndarray, angular: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Canvas-size rgb (H, W, 3) uint8, depth (H, W) float32 metres (0 = none), valid (H, W) bool
        and the raw anchor render (H, W, 3) → the same at the output camera's size. linear /
        angular: base_link body twist (3,) m/s, rad/s at the stamp. render_rgb only goes through the
        lens (it shows the anchor as rendered, for inspection)."""
        if self.motion.enabled:
            rgb, depth, valid = self.motion.apply(rgb, depth, valid, linear, angular)
        if self.distorts:
            render_rgb = self.lens.apply_rgb(render_rgb)
            rgb, depth, valid = self.lens.apply(rgb, depth, valid)
        if self.photometric.enabled:
            rgb = apply_photometric(rgb, self.photometric, rng)
        if self.depth_noise.preset != "none":
            depth = apply_depth_noise(depth, self.lens.camera.fx, self.depth_noise, rng)
        return rgb, depth, valid, render_rgb
