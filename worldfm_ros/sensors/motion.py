"""Motion during a frame: rolling shutter and motion blur.

Both effects are one mechanism, :class:`Reprojection`: an output pixel of row v shows what the
camera sees at the pose of that row's time, sampled from the frame rendered at the stamp's pose
through the frame's z-depth. They therefore apply to any backend's output (model or anchor) the
same way. For a pure rotation of the optical frame the warp does not depend on depth and is
exact. With translation the parallax comes from the depth at the source pixel (found by a fixed
number of lookups); it misses what the moved camera would see that the rendered one does not:
surfaces hidden at the stamp's pose, or outside its image.

Times follow the rolling-shutter models of Kalibr and VINS-Mono (a line delay of
``readout_s / height``): row v (0 = top) is exposed at ``stamp + v * readout_s / height``, row 0
at the stamp itself, the last row at ``stamp + readout_s * (height - 1) / height``. Each row's
exposure is ``exposure_s`` long and centred on its row time; motion blur is the mean of
``samples`` sub-exposure images at the centres of equal slices of that interval. During the
frame the robot keeps the body twist it has at the stamp (exact arc motion, as
:func:`worldfm_ros.geometry.exp_se3`).

Outputs: rgb is interpolated bilinearly (image borders replicated: what lies outside the
rendered frame is unknown, and a black wedge would be a worse guess); depth and valid take the
nearest source pixel, and depth is re-expressed as z-depth in the row's own optical frame. A
pixel whose source lies outside the rendered frame has depth 0 and valid False.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from worldfm_ros.camera import PinholeCamera, check_pose, invert_pose
from worldfm_ros.errors import CameraError, ConfigError

#: Fixed-point iterations of the depth lookup in the warp. The first lands within the parallax
#: of one frame (a few pixels) of the true source, the second corrects for the depth change over
#: that distance; more only matter at occlusion boundaries, where no iteration count is right.
WARP_ITERATIONS = 2
#: Largest exposure / readout accepted, seconds (beyond it the constant-twist model is meaningless).
MAX_TIME_S = 1.0
#: Largest number of sub-exposure samples (the uint16 accumulator holds 257 x 255).
MAX_SAMPLES = 64

_NEAREST_BORDER = dict(borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@dataclass
class MotionBlurConfig:
    """exposure_s: exposure time of each row, seconds, centred on the row's time; 0 = off.
    samples: sub-exposure poses averaged, 2..MAX_SAMPLES when the exposure is on."""

    exposure_s: float = 0.0
    samples: int = 8

    def __post_init__(self) -> None:
        if not (isinstance(self.exposure_s, (int, float)) and math.isfinite(self.exposure_s)
                and 0.0 <= self.exposure_s <= MAX_TIME_S):
            raise ConfigError(f"motion_blur.exposure_s: expected 0 (off) to {MAX_TIME_S:g} s, got {self.exposure_s!r}")
        if self.exposure_s > 0 and (isinstance(self.samples, bool) or not isinstance(self.samples, int)
                                    or not 2 <= self.samples <= MAX_SAMPLES):
            raise ConfigError(f"motion_blur.samples: expected an integer 2..{MAX_SAMPLES} with an exposure, "
                              f"got {self.samples!r}")


@dataclass
class RollingShutterConfig:
    """readout_s: the frame's readout time, seconds (height x the line delay: from the first row's
    exposure to the last row's, plus one line); 0 = global shutter. Row v is exposed at
    stamp + v * readout_s / height, row 0 at the stamp (the convention of the Kalibr and VINS
    rolling-shutter models)."""

    readout_s: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.readout_s, (int, float)) and math.isfinite(self.readout_s)
                and 0.0 <= self.readout_s <= MAX_TIME_S):
            raise ConfigError(f"rolling_shutter.readout_s: expected 0 (global shutter) to {MAX_TIME_S:g} s, "
                              f"got {self.readout_s!r}")


def optical_motion(linear: np.ndarray, angular: np.ndarray, base_T_optical: np.ndarray,
                   times_s: np.ndarray) -> np.ndarray:
    """(N, 4, 4) o0_T_ot: the optical frame at time t in the optical frame at the stamp (t = 0).

    linear (3,) m/s and angular (3,) rad/s: base_link's constant body twist (base_link axes);
    base_T_optical: (4, 4) the optical frame in base_link; times_s: (N,) seconds relative to the
    stamp, any sign. base_link moves as ``pose @ exp_se3(linear * t, angular * t)`` (exact arc),
    evaluated here for all times at once.
    """
    t = np.ravel(np.asarray(times_s, dtype=np.float64))
    v, w = np.asarray(linear, dtype=np.float64), np.asarray(angular, dtype=np.float64)
    motion = np.tile(np.eye(4), (t.size, 1, 1))  # (N, 4, 4) b0_T_bt
    speed = float(np.linalg.norm(w))
    if speed < 1e-12:
        motion[:, :3, 3] = t[:, None] * v
    else:
        k = w / speed
        Kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
        # exp_se3 with the signed angle about the fixed axis k: the same matrices as
        # exp_se3(v * t, w * t) for either sign of t.
        theta = (speed * t)[:, None, None]
        sin, one_minus_cos = np.sin(theta), 1.0 - np.cos(theta)
        safe = np.where(theta == 0.0, 1.0, theta)
        motion[:, :3, :3] = np.eye(3) + sin * Kx + one_minus_cos * (Kx @ Kx)
        V = np.eye(3) + one_minus_cos / safe * Kx + (theta - sin) / safe * (Kx @ Kx)
        motion[:, :3, 3] = V @ v * t[:, None]
    return invert_pose(base_T_optical) @ motion @ base_T_optical


class Warp:
    """One backward warp: for each output pixel (H, W), where to sample the rendered frame.

    map_x, map_y: (H, W) float32 source pixel coordinates in the rendered frame.
    inv_ray_z: (H, W) float32 1 / z of the output pixel's ray K^-1 [u, v, 1] (z = 1 in its row's
    optical frame) expressed in the rendered frame; t_z: (H or 1, 1) float32 z of the row frame's
    origin in the rendered frame, metres. A point at rendered z-depth z on that ray is
    (z - t_z) / ray_z deep in the row frame.
    """

    def __init__(self, map_x: np.ndarray, map_y: np.ndarray, inv_ray_z: np.ndarray, t_z: np.ndarray) -> None:
        self.map_x, self.map_y, self.inv_ray_z, self.t_z = map_x, map_y, inv_ray_z, t_z

    def image(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W, C) image sampled bilinearly, borders replicated, into ``out`` when given.
        4-channel uint8 is OpenCV's fast path, about twice as fast as 3-channel."""
        return cv2.remap(image, self.map_x, self.map_y, cv2.INTER_LINEAR, dst=out, borderMode=cv2.BORDER_REPLICATE)

    def mask(self, valid: np.ndarray) -> np.ndarray:
        """(H, W) bool coverage at the nearest source pixel; False outside the rendered frame."""
        out = cv2.remap(valid.view(np.uint8), self.map_x, self.map_y, cv2.INTER_NEAREST, **_NEAREST_BORDER)
        return out.view(bool)

    def depth(self, depth: np.ndarray) -> np.ndarray:
        """(H, W) float32 z-depth in metres in each row's optical frame, from the rendered frame's
        z-depth ``depth`` (H, W) float32 at the nearest source pixel; 0 where none (or outside)."""
        z = cv2.remap(depth, self.map_x, self.map_y, cv2.INTER_NEAREST, **_NEAREST_BORDER)
        row_z = np.subtract(z, self.t_z)
        row_z *= self.inv_ray_z
        row_z[z <= 0] = 0.0
        return row_z


class Reprojection:
    """The backward warp of one pinhole camera's frames to other poses, row by row.

    Output pixel p = (u, v, 1) of row v, seen from pose (R, t) = ref_T_rows[v], has the ray
    R K^-1 p in the rendered frame, which lands at the pixel-homogeneous point q = K R K^-1 p
    (q_z = the ray's z) at infinite depth. A point on the ray at rendered z-depth z projects to

        source = q_xy / q_z + ((K t)_xy - t_z q_xy / q_z) / z,

    the rotation-only (infinite depth) pixel plus the parallax, linear in the inverse depth
    1 / z. Pixels without depth have 1 / z = 0 and so take the rotation-only warp; with t = 0 the
    warp is exact whatever the depth.

    The maps are computed in buffers allocated once (at 640x480 the page faults of fresh arrays
    cost more than the arithmetic): a Warp's arrays are overwritten by the next ``warp`` call, and
    one instance serves one thread at a time.
    """

    def __init__(self, camera: PinholeCamera) -> None:
        self.camera = camera
        self.K = camera.K
        self.K_inv = np.linalg.inv(self.K)
        h, w = camera.height, camera.width
        self._u1 = np.stack([np.arange(w, dtype=np.float32), np.ones(w, np.float32)])  # (2, W): [u; 1]
        self._v = np.arange(h, dtype=np.float64)[:, None]  # (H, 1) pixel rows
        # inf_x, inf_y, 1 / q_z, par_x, par_y, map_x, map_y, looked-up inverse depth
        self._buf = np.empty((8, h, w), np.float32)

    def warp(self, inv_depth: np.ndarray, ref_T_rows: np.ndarray) -> Warp:
        """The warp whose row v shows the view from ``ref_T_rows[v]``.

        inv_depth: (H, W) float32 1 / z-depth of the rendered frame, 1/m, 0 where there is no
        depth. ref_T_rows: (H, 4, 4) each row's optical frame in the rendered frame's optical
        frame, metres, or (1, 4, 4): one pose for every row. The depth is looked up at the current
        source guess WARP_ITERATIONS times (nearest pixel, so foreground and background do not
        blend), starting from the rotation-only guess.
        """
        q = self._buf[:3]  # (3, H, W): q_x, q_y, q_z, then inf_x, inf_y, 1 / q_z
        inf_x, inf_y, inv_qz = q
        par_x, par_y, map_x, map_y, iz = self._buf[3:]
        R, t = ref_T_rows[:, :3, :3], ref_T_rows[:, :3, 3]  # (n, 3, 3), (n, 3)
        hom = self.K @ R @ self.K_inv  # (n, 3, 3) each row's pixel homography at infinite depth
        # q = hom[:, :, 0] * u + (hom[:, :, 1] * v + hom[:, :, 2]): one (3, H, 2) @ (2, W) product
        coef = np.empty((3, self.camera.height, 2), np.float32)
        coef[:, :, 0] = hom[:, :, 0].T
        coef[:, :, 1] = (hom[:, :, 1] * self._v + hom[:, :, 2]).T
        np.matmul(coef, self._u1, out=q)
        np.divide(np.float32(1.0), inv_qz, out=inv_qz)
        inf_x *= inv_qz
        inf_y *= inv_qz
        t_z = t[:, 2:3].astype(np.float32)  # (n, 1)
        if not np.any(t):
            return Warp(inf_x, inf_y, inv_qz, t_z)
        Kt = (t @ self.K.T).astype(np.float32)  # (n, 3)
        for i, inf, par in ((0, inf_x, par_x), (1, inf_y, par_y)):
            np.multiply(inf, -t_z, out=par)  # parallax times z, pixel metres
            par += Kt[:, i:i + 1]
        guess_x, guess_y = inf_x, inf_y
        for _ in range(WARP_ITERATIONS):
            cv2.remap(inv_depth, guess_x, guess_y, cv2.INTER_NEAREST, dst=iz, **_NEAREST_BORDER)
            np.multiply(iz, par_x, out=map_x)
            map_x += inf_x
            np.multiply(iz, par_y, out=map_y)
            map_y += inf_y
            guess_x, guess_y = map_x, map_y
        return Warp(map_x, map_y, inv_qz, t_z)


class MotionEffects:
    """Rolling shutter and motion blur of one camera.

    blur, shutter: the effects' configs (both off by default: ``enabled`` False);
    camera: the ideal pinhole camera the frames are rendered with;
    base_T_optical: (4, 4) its optical frame in base_link, metres.
    Concurrent ``apply`` calls on one instance run one after the other (they share its buffers).
    """

    def __init__(self, blur: MotionBlurConfig, shutter: RollingShutterConfig, camera: PinholeCamera,
                 base_T_optical: np.ndarray) -> None:
        self.blur, self.shutter, self.camera = blur, shutter, camera
        self.base_T_optical = check_pose(base_T_optical, "base_T_optical")
        self.enabled = blur.exposure_s > 0 or shutter.readout_s > 0
        # (H,) row times relative to the stamp, seconds; (1,) under a global shutter, where every
        # row shares the stamp's pose
        self._row_times = (np.arange(camera.height) * (shutter.readout_s / camera.height)
                           if shutter.readout_s > 0 else np.zeros(1))
        n = blur.samples
        # (samples,) sub-exposure offsets from the row time, seconds: the centres of n equal
        # slices of [-exposure / 2, exposure / 2]
        self._offsets = ((np.arange(n) + 0.5) / n - 0.5) * blur.exposure_s if blur.exposure_s > 0 else None
        self._lock = threading.Lock()
        if self.enabled:
            h, w = camera.height, camera.width
            self._reprojection = Reprojection(camera)
            self._inv_depth = np.empty((h, w), np.float32)
            self._rgba = np.empty((h, w, 4), np.uint8)  # the frame
            self._sample = np.empty((h, w, 4), np.uint8)  # each warped image, then the mean
            self._acc = np.empty((h, w, 4), np.uint16)

    def apply(self, rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray, linear: np.ndarray,
              angular: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The frame as the moving camera records it.

        rgb (H, W, 3) uint8, depth (H, W) float32 z-depth in metres (0 = none), valid (H, W) bool:
        the frame rendered at the stamp's pose. linear (3,) m/s, angular (3,) rad/s: base_link's
        body twist at the stamp. Rolling shutter: each row at its own time (depth and valid too,
        nearest pixel; depth in that row's optical frame). Motion blur: rgb is the mean of the
        sub-exposure images of each row's exposure; depth and valid stay at the row time. rgb is
        a new array, depth and valid too under a rolling shutter; all three are the input arrays
        themselves when the effects are off or the camera is at rest.
        """
        if not self.enabled or (not np.any(linear) and not np.any(angular)):
            return rgb, depth, valid
        h, w = self.camera.height, self.camera.width
        if rgb.shape != (h, w, 3) or depth.shape != (h, w) or valid.shape != (h, w):
            raise CameraError(f"motion effects: expected {w}x{h} frames, got rgb {rgb.shape}, depth {depth.shape}, "
                              f"valid {valid.shape}")
        with self._lock:
            return self._apply(rgb, np.ascontiguousarray(depth, dtype=np.float32), valid, linear, angular)

    def _apply(self, rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray, linear: np.ndarray,
               angular: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        inv_depth = self._inv_depth
        inv_depth.fill(0.0)
        np.divide(np.float32(1.0), depth, out=inv_depth, where=depth > 0)
        rgba = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA, dst=self._rgba)
        reprojection = self._reprojection
        if self.shutter.readout_s > 0:
            at_row = reprojection.warp(inv_depth, optical_motion(linear, angular, self.base_T_optical, self._row_times))
            depth, valid = at_row.depth(depth), at_row.mask(valid)
            if self._offsets is None:
                return cv2.cvtColor(at_row.image(rgba, self._sample), cv2.COLOR_RGBA2RGB), depth, valid
        n = len(self._offsets)
        times = self._row_times[:, None] + self._offsets[None, :]  # (H or 1, n) seconds
        poses = optical_motion(linear, angular, self.base_T_optical, times).reshape(*times.shape, 4, 4)
        acc = self._acc
        acc.fill(n // 2)  # rounds the mean to the nearest level
        for i in range(n):
            acc += reprojection.warp(inv_depth, poses[:, i]).image(rgba, self._sample)
        acc //= np.uint16(n)
        np.copyto(self._sample, acc, casting="unsafe")
        return cv2.cvtColor(self._sample, cv2.COLOR_RGBA2RGB), depth, valid
