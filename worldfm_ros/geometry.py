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


def perturbed_poses(c2w: np.ndarray, metres: float, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """(N, 4, 4) copies of the camera-to-world poses ``c2w`` (N, 4, 4), each moved by exactly ``metres``
    in a random direction and turned by exactly ``degrees`` about a random axis through the camera
    (a pose error of known size, e.g. to test a pose refinement)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    out = c2w.copy()
    for i in range(len(c2w)):
        axis, step = rng.normal(size=3), rng.normal(size=3)
        out[i, :3, :3] = c2w[i, :3, :3] @ Rotation.from_rotvec(math.radians(degrees) * axis / np.linalg.norm(axis)).as_matrix()
        out[i, :3, 3] = c2w[i, :3, 3] + metres * step / np.linalg.norm(step)
    return out


def pose_errors(estimated: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pose (translation error (N,) metres, rotation error (N,) degrees) of (N, 4, 4) poses."""
    estimated, truth = np.asarray(estimated, np.float64), np.asarray(truth, np.float64)
    delta = np.einsum("nji,njk->nik", truth[:, :3, :3], estimated[:, :3, :3])
    cos = np.clip((np.trace(delta, axis1=1, axis2=2) - 1) / 2, -1, 1)
    return np.linalg.norm(estimated[:, :3, 3] - truth[:, :3, 3], axis=1), np.degrees(np.arccos(cos))
