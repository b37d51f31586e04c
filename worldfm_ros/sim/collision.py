"""Collision checking of a ground robot against the scene anchor's points.

The robot is a vertical cylinder around base_link: ``radius`` metres, spanning
heights [z_min, z_max] above the base. Points of the anchor inside that height band
are obstacles; the check is a 2-D nearest-neighbour query (scipy cKDTree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from worldfm_ros.errors import ConfigError


@dataclass
class CollisionConfig:
    """enabled: block motion into obstacles; radius: robot radius, m; z_min/z_max: obstacle height
    band above the base, m (points below z_min are floor, above z_max are overhead)."""

    enabled: bool = True
    radius: float = 0.25
    z_min: float = 0.05
    z_max: float = 1.5

    def __post_init__(self) -> None:
        if not (self.radius > 0 and self.z_max > self.z_min):
            raise ConfigError(f"collision: need radius > 0 and z_max > z_min, got {self}")


class CollisionChecker:
    """points_map: (N, 3) anchor points in the map frame, metres (z up).

    base_z: height of base_link in the map (the ground the robot drives on); the obstacle
    band is [base_z + z_min, base_z + z_max]. A ground robot keeps its height, so the band
    is fixed per checker; free-flying users rebuild the checker when the height changes.
    """

    def __init__(self, points_map: np.ndarray, config: CollisionConfig, base_z: float = 0.0) -> None:
        self.config = config
        self.base_z = float(base_z)
        z = points_map[:, 2] - self.base_z
        band = points_map[(z >= config.z_min) & (z <= config.z_max)]
        # Unbalanced, uncompacted: the same nearest distances, built faster and queried about twice
        # as fast on walls, whose points pile up on a few lines in the plane.
        self._tree = cKDTree(band[:, :2], balanced_tree=False, compact_nodes=False) if len(band) else None

    def min_distance(self, map_T_base: np.ndarray) -> float:
        """Horizontal distance (m) from base_link to the nearest obstacle point; inf if none."""
        if self._tree is None:
            return float("inf")
        d, _ = self._tree.query(map_T_base[:2, 3])
        return float(d)

    def min_distances(self, map_T_base: np.ndarray) -> np.ndarray:
        """(K,) ``min_distance`` of each base pose (K, 4, 4), in one query: metres, inf if no obstacles."""
        if self._tree is None:
            return np.full(len(map_T_base), np.inf)
        d, _ = self._tree.query(map_T_base[:, :2, 3])
        return np.asarray(d, np.float64)

    def collides(self, map_T_base: np.ndarray) -> bool:
        """True when an obstacle point lies inside the robot's cylinder."""
        return self.min_distance(map_T_base) < self.config.radius
