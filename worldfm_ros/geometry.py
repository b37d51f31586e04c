"""Rigid-body motion shared by the simulator and the sensor models (no ROS, no scene)."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation


def exp_se3(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(4, 4) motion of a body under the constant body twist (v: (3,) metres, w: (3,) radians, both
    already multiplied by the duration) — the exponential map of se(3), exact arc motion."""
    T = np.eye(4)
    theta = float(np.linalg.norm(w))
    T[:3, :3] = Rotation.from_rotvec(w).as_matrix()
    if theta < 1e-9:
        T[:3, 3] = v
        return T
    k = w / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    V = np.eye(3) + (1 - math.cos(theta)) / theta * K + (theta - math.sin(theta)) / theta * (K @ K)
    T[:3, 3] = V @ v
    return T
