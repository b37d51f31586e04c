"""A planar laser scan (sensor_msgs/LaserScan ranges) from a rendered depth image.

Every valid depth pixel is back-projected, moved into the scan frame (body axes:
x forward, y left, z up, e.g. base_link), kept when its height lies in the band
[z_min, z_max], and dropped into the beam whose angle is nearest its azimuth
atan2(y, x); a beam reads the smallest horizontal distance hypot(x, y) it received,
like ``pointcloud_to_laserscan``. Beams outside the camera's field of view, or
without a return inside [range_min, range_max], read +inf (REP-117: no return).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldfm_ros.camera import PinholeCamera, check_pose
from worldfm_ros.errors import ConfigError
from worldfm_ros.build.backproject import backproject_pixels


@dataclass
class ScanConfig:
    """angle_min/angle_max: first and last beam, radians counter-clockwise from +x of the scan frame;
    angle_increment: radians between beams; range_min/range_max: metres, returns outside are
    discarded; z_min/z_max: height band in the scan frame, metres (points outside are ignored)."""

    angle_min: float = -math.pi / 4
    angle_max: float = math.pi / 4
    angle_increment: float = math.radians(0.5)
    range_min: float = 0.05
    range_max: float = 10.0
    z_min: float = 0.1  # floor pixels with splatted (slightly short) depth sit a few cm high
    z_max: float = 1.5

    def __post_init__(self) -> None:
        values = (self.angle_min, self.angle_max, self.angle_increment, self.range_min, self.range_max,
                  self.z_min, self.z_max)
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"scan: every field must be finite, got {self}")
        if not (-math.pi <= self.angle_min <= self.angle_max <= math.pi):
            raise ConfigError(f"scan: need -pi <= angle_min <= angle_max <= pi, got "
                              f"[{self.angle_min}, {self.angle_max}]")
        if self.angle_increment <= 0:
            raise ConfigError(f"scan.angle_increment: expected a positive angle, got {self.angle_increment}")
        if not 0 <= self.range_min < self.range_max:
            raise ConfigError(f"scan: need 0 <= range_min < range_max, got {self.range_min}, {self.range_max}")
        if self.z_max <= self.z_min:
            raise ConfigError(f"scan: need z_max > z_min, got {self.z_min}, {self.z_max}")

    @property
    def num_beams(self) -> int:
        """Number of beams: angle_min + i * angle_increment for i in [0, num_beams)."""
        return int(math.floor((self.angle_max - self.angle_min) / self.angle_increment + 1e-9)) + 1

    @property
    def angles(self) -> np.ndarray:
        """(num_beams,) beam angles in radians."""
        return self.angle_min + self.angle_increment * np.arange(self.num_beams)


def depth_to_scan(depth: np.ndarray, camera: PinholeCamera, frame_T_optical: np.ndarray,
                  config: ScanConfig) -> np.ndarray:
    """Laser ranges seen in a depth image.

    depth: (H, W) z-depth in metres along the optical axis, 0 or NaN = no data.
    camera: the pinhole model of ``depth``.
    frame_T_optical: (4, 4) optical frame (OpenCV axes) → scan frame (x forward, y left, z up), metres.
    Returns (config.num_beams,) float32 ranges in metres, +inf where a beam has no return.
    """
    depth = np.asarray(depth)
    if depth.shape != (camera.height, camera.width):
        raise ValueError(f"depth: expected shape {(camera.height, camera.width)} for the camera, got {depth.shape}")
    T = check_pose(frame_T_optical, "frame_T_optical")
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    z = depth[v, u].astype(np.float64)
    p = backproject_pixels(u, v, z, camera.K, T)  # (N, 3) scan frame

    ranges = np.full(config.num_beams, np.inf)
    horizontal = np.hypot(p[:, 0], p[:, 1])
    keep = ((p[:, 2] >= config.z_min) & (p[:, 2] <= config.z_max)
            & (horizontal >= config.range_min) & (horizontal <= config.range_max))
    beam = np.rint((np.arctan2(p[keep, 1], p[keep, 0]) - config.angle_min) / config.angle_increment).astype(np.int64)
    inside = (beam >= 0) & (beam < config.num_beams)
    np.minimum.at(ranges, beam[inside], horizontal[keep][inside])
    return ranges.astype(np.float32)
