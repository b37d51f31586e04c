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


def map_T_camera(position, yaw: float, pitch: float = 0.0) -> np.ndarray:
    """(4, 4) camera-to-map pose, OpenCV camera axes, at ``position`` (3,) metres, looking along
    ``yaw`` (radians about the map's z, REP-103 z up) tilted up by ``pitch`` (radians), no roll."""
    import math

    f = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = right, np.cross(f, right), f, position
    return T
