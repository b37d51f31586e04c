"""Lens distortion: the ideal pinhole render mapped to the image a real lens gives.

Models (ROS ``distortion_model`` names, OpenCV's equations, normalised coordinates x/z, y/z of a
ray in the optical frame: x right, y down, z forward):

* ``plumb_bob``: Brown-Conrady, D = (k1, k2, p1, p2, k3), as ``cv2.projectPoints``;
* ``equidistant``: the fisheye model, D = (k1, k2, k3, k4), as ``cv2.fisheye.projectPoints``.

The scene is rendered on an ideal pinhole *canvas* (``Lens.render_camera``, same orientation as the
output) that holds the ray of every output pixel; each output pixel then takes the canvas where
its ray lands (``cv2.remap`` with maps built once). Pixel positions move, z-depth does not: depth
and coverage come from the nearest canvas pixel, colour is interpolated bilinearly.

Canvas choice: the canvas has the output's focal lengths, since both models have unit
magnification on the optical axis, so the canvas samples the centre of the image exactly as densely
as the output (and more densely than a barrel-distorted output elsewhere); its principal point and
size are chosen so every output ray lands at least ``CANVAS_MARGIN_PX`` inside it. When that would
need a canvas wider or taller than ``MAX_CANVAS_SCALE`` times the output, the canvas focal lengths
are scaled down (``Lens.canvas_sampling`` < 1) until it fits: the centre is then sampled more
coarsely than the output, by that factor.

Limit: a pinhole canvas holding a ray at angle t off the axis is at least 2·f·tan(t) wide, which
grows without bound towards 90°; lenses with output rays at or beyond ``MAX_RAY_DEG`` (80°) off the
optical axis are refused (ConfigError), as are coefficients whose model does not invert over the
image (the distortion folds back on itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from worldfm_ros.camera import PinholeCamera, check_image_size
from worldfm_ros.config import read_yaml
from worldfm_ros.errors import CameraError, ConfigError

LENS_MODELS = ("none", "plumb_bob", "equidistant")
#: number of coefficients D per distorting model
D_LENGTH = {"plumb_bob": 5, "equidistant": 4}
#: output rays this far off the optical axis (degrees) or further cannot be rendered on a pinhole canvas
MAX_RAY_DEG = 80.0
#: the canvas is at most this many times the output's width and height
MAX_CANVAS_SCALE = 2.0
#: canvas pixels kept between the outermost output ray and the canvas border (bilinear support)
CANVAS_MARGIN_PX = 1.0
# An output pixel whose ray reprojects further than this (pixels) from the pixel has no inverse there.
_ROUND_TRIP_PX = 1e-3
# OpenCV's default undistortion runs 5 fixed-point iterations and leaves pixel-sized errors towards
# the corners of a strongly distorted image; iterate to convergence instead.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12)


@dataclass
class LensConfig:
    """model: 'none', 'plumb_bob' or 'equidistant'. D: its coefficients: plumb_bob (k1, k2, p1,
    p2, k3), equidistant (k1, k2, k3, k4); for none empty or all zero."""

    model: str = "none"
    D: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.model not in LENS_MODELS:
            raise ConfigError(f"lens.model: expected one of {', '.join(LENS_MODELS)}, got {self.model!r}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in self.D):
            raise ConfigError(f"lens.D: expected finite numbers, got {self.D}")
        if self.model == "none":
            if any(self.D):
                raise ConfigError(f"lens.D: model none takes no coefficients (empty or all zero), got {self.D}")
        elif len(self.D) != D_LENGTH[self.model]:
            raise ConfigError(f"lens.D: {self.model} takes {D_LENGTH[self.model]} coefficients, got {len(self.D)}")


class Lens:
    """The lens of ``camera`` (the output, distorted image's K and size).

    render_camera: the ideal pinhole canvas to render (``camera`` itself for model none).
    canvas_sampling: canvas focal length / output focal length (1.0 unless the canvas had to shrink).
    distortion_model / D: what CameraInfo carries (plumb_bob with five zeros for model none).
    ConfigError when the lens cannot be rendered (see the module docstring).
    """

    def __init__(self, camera: PinholeCamera, config: LensConfig) -> None:
        self.camera = camera
        self.config = config
        self.distortion_model = "equidistant" if config.model == "equidistant" else "plumb_bob"
        self.D = [0.0] * 5 if config.model == "none" else [float(v) for v in config.D]
        self.canvas_sampling = 1.0
        if config.model == "none":
            self.render_camera = camera
            self._nearest = self._linear = None
            return
        h, w = camera.height, camera.width
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        pixels = np.stack([u.ravel(), v.ravel()], axis=1)
        rays = self.undistort(pixels)  # (H * W, 2)
        self._check_rays(pixels, rays)
        self.render_camera = self._canvas(rays)
        self.canvas_sampling = self.render_camera.fx / camera.fx
        rc = self.render_camera
        mx = (rc.fx * rays[:, 0] + rc.cx).reshape(h, w).astype(np.float32)
        my = (rc.fy * rays[:, 1] + rc.cy).reshape(h, w).astype(np.float32)
        # Fixed-point maps: remap runs several times faster than with float maps, and the 1/32 pixel
        # interpolation grid is far below the sampling error of the canvas.
        self._nearest = cv2.convertMaps(mx, my, cv2.CV_16SC2, nninterpolation=True)
        self._linear = cv2.convertMaps(mx, my, cv2.CV_16SC2)

    def _check_rays(self, pixels: np.ndarray, rays: np.ndarray) -> None:
        """ConfigError unless every output pixel (N, 2) has a ray (N, 2) below MAX_RAY_DEG that
        projects back onto it, and neighbouring pixels keep their order (no fold)."""
        name = f"lens ({self.config.model}, D={self.D})"
        if not np.all(np.isfinite(rays)):
            raise ConfigError(f"{name}: some output pixels have no ray (the model does not invert there)")
        # The fisheye solve saturates at 90 degrees, so a lens too wide shows here, before the round trip.
        angle = math.degrees(math.atan(float(np.hypot(rays[:, 0], rays[:, 1]).max())))
        if angle >= MAX_RAY_DEG:
            raise ConfigError(f"{name}: output rays reach {angle:.1f} deg off the optical axis; a pinhole canvas "
                              f"holds rays below {MAX_RAY_DEG:g} deg (use a larger focal length or a smaller image)")
        back = self.project(np.concatenate([rays, np.ones((len(rays), 1))], axis=1))
        error = np.hypot(*(back - pixels).T)
        worst = int(np.argmax(error))
        if error[worst] > _ROUND_TRIP_PX:
            raise ConfigError(f"{name}: the model has no inverse at output pixel {pixels[worst].tolist()} "
                              f"(the distortion folds back within the image)")
        h, w = self.camera.height, self.camera.width
        rx, ry = rays[:, 0].reshape(h, w), rays[:, 1].reshape(h, w)
        if (w > 1 and np.any(np.diff(rx, axis=1) <= 0)) or (h > 1 and np.any(np.diff(ry, axis=0) <= 0)):
            raise ConfigError(f"{name}: the distortion folds back within the image (rays out of pixel order)")

    def _canvas(self, rays: np.ndarray) -> PinholeCamera:
        """The pinhole canvas holding the normalised rays (N, 2): see the module docstring."""
        cam = self.camera
        lo, hi = rays.min(axis=0), rays.max(axis=0)
        span_x, span_y = (hi[0] - lo[0]) * cam.fx, (hi[1] - lo[1]) * cam.fy  # pixels at the output focal length
        # The "+ 2" covers the rounding up of the size below, so the canvas never exceeds the bound.
        room = 2.0 * CANVAS_MARGIN_PX + 2.0
        scale = min(1.0, (MAX_CANVAS_SCALE * cam.width - room) / max(span_x, 1e-9),
                    (MAX_CANVAS_SCALE * cam.height - room) / max(span_y, 1e-9))
        fx, fy = cam.fx * scale, cam.fy * scale
        cx, cy = CANVAS_MARGIN_PX - lo[0] * fx, CANVAS_MARGIN_PX - lo[1] * fy
        width = math.ceil(cx + hi[0] * fx + CANVAS_MARGIN_PX) + 1
        height = math.ceil(cy + hi[1] * fy + CANVAS_MARGIN_PX) + 1
        check_image_size(width, height, f"lens canvas for a {cam.width}x{cam.height} output", ConfigError)
        return PinholeCamera(width, height, fx, fy, float(cx), float(cy))

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) distorted output pixel coordinates -> (N, 2) normalised ray coordinates (x/z, y/z)."""
        pts = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        K, D = self.camera.K, np.array(self.D, dtype=np.float64)
        if self.config.model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, K, D, criteria=_UNDISTORT_CRITERIA)
        else:
            out = cv2.undistortPoints(pts, K, D, criteria=_UNDISTORT_CRITERIA)
        return out.reshape(-1, 2)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) points in the optical frame (metres, z > 0) -> (N, 2) distorted output pixel coordinates."""
        pts = np.asarray(points_cam, dtype=np.float64).reshape(-1, 1, 3)
        K, D, zero = self.camera.K, np.array(self.D, dtype=np.float64), np.zeros(3)
        if self.config.model == "equidistant":
            out, _ = cv2.fisheye.projectPoints(pts, zero, zero, K, D)
        else:
            out, _ = cv2.projectPoints(pts, zero, zero, K, D)
        return out.reshape(-1, 2)

    def apply(self, rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Canvas-size (render_camera) rgb (Hr, Wr, 3) uint8, depth (Hr, Wr) float32 z-depth metres
        (0 = none) and valid (Hr, Wr) bool -> the same at the output size (H, W): rgb bilinear,
        depth and valid from the nearest canvas pixel; a ray off the canvas gives 0 / False. For
        model none, the input arrays themselves."""
        if self._linear is None:
            return rgb, depth, valid
        shape = (self.render_camera.height, self.render_camera.width)
        if rgb.shape[:2] != shape or depth.shape != shape or valid.shape != shape:
            raise CameraError(f"lens.apply: expected canvas arrays of {shape[1]}x{shape[0]} (render_camera), "
                              f"got rgb {rgb.shape}, depth {depth.shape}, valid {valid.shape}")
        border = dict(borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out_valid = cv2.remap(valid.view(np.uint8), *self._nearest, cv2.INTER_NEAREST, **border).view(bool)
        out_depth = cv2.remap(depth, *self._nearest, cv2.INTER_NEAREST, **border)
        return self.apply_rgb(rgb), out_depth, out_valid

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        """A canvas (Hr, Wr) bool mask at the output size (H, W), from the nearest canvas pixel."""
        if self._linear is None:
            return mask
        return cv2.remap(np.ascontiguousarray(mask).view(np.uint8), *self._nearest, cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0).view(bool)

    def apply_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """Only the colour image of ``apply`` (canvas (Hr, Wr, 3) uint8 -> output (H, W, 3))."""
        if self._linear is None:
            return rgb
        return cv2.remap(rgb, *self._linear, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def load_calibration(path: str | Path) -> tuple[PinholeCamera, LensConfig]:
    """A camera_calibration_parsers YAML (image_width, image_height, camera_matrix.data,
    distortion_model, distortion_coefficients.data) -> (output camera, lens config).

    distortion_model plumb_bob (also when absent) or equidistant; all-zero coefficients are model
    none. ConfigError naming the file and the field on anything else.
    """
    path = Path(str(path).removeprefix("file://"))
    data = read_yaml(path)
    try:
        w, h = int(data["image_width"]), int(data["image_height"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{path}: image_width, image_height: expected integers") from None
    check_image_size(w, h, f"{path}: image_width/image_height", ConfigError)
    try:
        K = np.array(data["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
        camera = PinholeCamera.from_K(K, w, h)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: camera_matrix.data: expected 9 numbers [fx, 0, cx, 0, fy, cy, 0, 0, 1] "
                          f"({type(exc).__name__})") from None
    model = data.get("distortion_model") or "plumb_bob"
    if model not in D_LENGTH:
        raise ConfigError(f"{path}: distortion_model: expected plumb_bob or equidistant, got {model!r}")
    try:
        D = [float(x) for x in ((data.get("distortion_coefficients") or {}).get("data") or [])]
    except (AttributeError, TypeError, ValueError):
        raise ConfigError(f"{path}: distortion_coefficients.data: expected a list of numbers") from None
    if len(D) != D_LENGTH[model] and any(D):
        raise ConfigError(f"{path}: distortion_coefficients.data: {model} takes {D_LENGTH[model]} numbers, "
                          f"got {len(D)}")
    if not any(D):
        return camera, LensConfig()
    try:
        return camera, LensConfig(model, D)
    except ConfigError as exc:
        raise ConfigError(f"{path}: distortion_coefficients.data: {exc}") from None
