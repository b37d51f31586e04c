"""Where a sensor sits on the robot: base_link → sensor frame."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from worldfm_ros.errors import ConfigError


@dataclass
class MountConfig:
    """base_link → a sensor's link frame (camera_link, imu_link): xyz in metres, rpy in radians
    (fixed-axis roll, pitch, yaw)."""

    xyz: list[float] = field(default_factory=lambda: [0.1, 0.0, 1.0])
    rpy: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def __post_init__(self) -> None:
        for name in ("xyz", "rpy"):
            v = getattr(self, name)
            if len(v) != 3 or not all(math.isfinite(x) for x in v):
                raise ConfigError(f"mount.{name}: expected 3 finite numbers, got {v}")

    def matrix(self) -> np.ndarray:
        """base_T_link (4, 4): pose of camera_link in base_link."""
        T = np.eye(4)
        T[:3, :3] = Rotation.from_euler("xyz", self.rpy).as_matrix()
        T[:3, 3] = self.xyz
        return T
