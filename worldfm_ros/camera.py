"""Pinhole camera model and pose validation shared by every stage.

Conventions: OpenCV camera axes (x right, y down, z forward); pixel centres at
integer coordinates (pixel (u, v) covers [u - 0.5, u + 0.5)); poses are
camera-to-world 4x4 matrices in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldfm_ros.errors import CameraError

# Largest image rendered or read: 8K UHD. Time and memory grow with the pixel count, and a typo
# (width 100000) or a forged image header must fail before any work, not after minutes of it.
MAX_SIDE_PX = 8192
MAX_PIXELS = 7680 * 4320

#: link_T_optical (4, 4): a REP-103 body frame (x forward, y left, z up; camera_link, a robot's
#: heading) from the OpenCV optical frame on it (x right, y down, z forward); its columns are
#: the optical x, y, z axes in body axes. The one optical-axes constant of the package.
LINK_T_OPTICAL = np.array([
    [0.0, 0.0, 1.0, 0.0],
    [-1.0, 0.0, 0.0, 0.0],
    [0.0, -1.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
])


def check_image_size(width: int, height: int, where: str, error: type[Exception] = CameraError) -> None:
    """Raise ``error`` unless width x height pixels is positive and within MAX_SIDE_PX / MAX_PIXELS."""
    if width <= 0 or height <= 0:
        raise error(f"{where}: width/height must be positive, got {width}x{height}")
    if width > MAX_SIDE_PX or height > MAX_SIDE_PX or width * height > MAX_PIXELS:
        raise error(f"{where}: expected at most {MAX_SIDE_PX} px a side and {MAX_PIXELS} pixels in all "
                    f"(7680x4320), got {width}x{height}")


@dataclass(frozen=True)
class PinholeCamera:
    """An undistorted pinhole camera.

    width, height: image size in pixels.
    fx, fy: focal lengths in pixels; cx, cy: principal point in pixels.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise CameraError(f"camera size must be positive, got {self.width}x{self.height}")
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise CameraError(f"camera intrinsics must be finite with fx, fy > 0, got {values}")

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int) -> "PinholeCamera":
        """Build from a (3, 3) intrinsics matrix in pixels; skew must be zero."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)):
            raise CameraError(f"K must be a finite 3x3 matrix, got shape {K.shape}")
        if abs(K[0, 1]) > 1e-9 or np.any(np.abs(K[2] - [0, 0, 1]) > 1e-9) or K[1, 0] != 0:
            raise CameraError(f"K must be [[fx,0,cx],[0,fy,cy],[0,0,1]], got {K.tolist()}")
        return cls(int(width), int(height), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> "PinholeCamera":
        """Square pixels, principal point at the image centre, horizontal FOV in degrees."""
        if not 0.0 < hfov_deg < 180.0:
            raise CameraError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(int(width), int(height), f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 intrinsics matrix in pixels."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width, self.height)

    def scaled(self, width: int, height: int) -> "PinholeCamera":
        """The same camera resampled to another image size (pixel-centre-preserving)."""
        sx, sy = width / self.width, height / self.height
        return PinholeCamera(
            width, height, self.fx * sx, self.fy * sy,
            (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
        )


def check_pose(c2w: np.ndarray, name: str = "c2w", atol: float = 1e-4) -> np.ndarray:
    """Validate a rigid camera-to-world transform and return it as (4, 4) float64.

    Accepts (4, 4) or (3, 4). Raises CameraError naming ``name`` when the matrix is
    not finite, its rotation is not orthonormal with determinant +1 (within atol),
    or its last row is not [0, 0, 0, 1].
    """
    T = np.asarray(c2w, dtype=np.float64)
    if T.shape == (3, 4):
        T = np.vstack([T, [0.0, 0.0, 0.0, 1.0]])
    if T.shape != (4, 4):
        raise CameraError(f"{name}: expected a 4x4 or 3x4 matrix, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise CameraError(f"{name}: pose contains NaN or inf")
    if np.max(np.abs(T[3] - [0.0, 0.0, 0.0, 1.0])) > atol:
        raise CameraError(f"{name}: last row must be [0, 0, 0, 1], got {T[3].tolist()}")
    R = T[:3, :3]
    err = np.max(np.abs(R.T @ R - np.eye(3)))
    if err > atol or np.linalg.det(R) < 0:
        raise CameraError(f"{name}: rotation is not orthonormal with det +1 (max |RᵀR - I| = {err:.2e})")
    return T


def check_poses(c2ws, name: str = "c2w", atol: float = 1e-4) -> np.ndarray:
    """``check_pose`` of every pose of a batch at once: (K, 4, 4) float64 from K (4, 4) or (3, 4)
    rigid transforms; the CameraError of the first pose that fails."""
    T = np.asarray(c2ws, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        return np.stack([check_pose(c, name, atol) for c in c2ws]) if len(c2ws) else np.zeros((0, 4, 4))
    R = T[:, :3, :3]
    err = np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(axis=(1, 2), initial=0.0)
    good = (np.isfinite(T).all(axis=(1, 2)) & (np.abs(T[:, 3] - [0.0, 0.0, 0.0, 1.0]).max(axis=1) <= atol)
            & (err <= atol) & (np.linalg.det(R) >= 0))
    for i in np.flatnonzero(~good):
        check_pose(T[i], name, atol)  # raises, naming the fault
    return T


def invert_pose(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform, computed as [Rᵀ | -Rᵀt]."""
    T = np.asarray(T, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def rotation_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w), w >= 0, of a (3, 3) rotation matrix (Hamilton, as ROS and scipy).

    Shepperd's method in plain floats: for a proper rotation, the quaternion of
    ``scipy.spatial.transform.Rotation.from_matrix(R).as_quat(canonical=True)`` to rounding (up to
    sign when w is 0), in about 1/25 of its time per call: the node converts two poses per
    kinematic tick at 100 Hz.
    """
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = (tuple(float(v) for v in row) for row in R)
    trace = m00 + m11 + m22
    # Divide by the largest of 4w², 4x², 4y², 4z² (the best conditioned).
    if trace >= max(m00, m11, m22):
        s = 2.0 * math.sqrt(max(1.0 + trace, 0.0))
        x, y, z, w = (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, 0.25 * s
    elif m00 >= m11 and m00 >= m22:
        s = 2.0 * math.sqrt(max(1.0 + m00 - m11 - m22, 0.0))
        x, y, z, w = 0.25 * s, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s
    elif m11 >= m22:
        s = 2.0 * math.sqrt(max(1.0 + m11 - m00 - m22, 0.0))
        x, y, z, w = (m01 + m10) / s, 0.25 * s, (m12 + m21) / s, (m02 - m20) / s
    else:
        s = 2.0 * math.sqrt(max(1.0 + m22 - m00 - m11, 0.0))
        x, y, z, w = (m02 + m20) / s, (m12 + m21) / s, 0.25 * s, (m10 - m01) / s
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if w < 0.0:
        n = -n
    return x / n, y / n, z / n, w / n
