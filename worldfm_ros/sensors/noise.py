"""Imager and depth-camera noise.

Photometric (:func:`apply_photometric`), per colour channel: the sRGB frame is linearised
(IEC 61966-2-1), multiplied by ``gain`` and the vignetting falloff, and turned into electrons,
``full_well_electrons`` at white; shot noise (Poisson in the electron count) and Gaussian read noise
(``read_noise_electrons`` σ) are added, and the result is encoded back to 8-bit sRGB, saturating at
the full well; then, optionally, a JPEG round trip.

Vignetting is the cos⁴ law of a lens whose corner ray makes the angle α with the axis: with ρ the
distance of a pixel centre from the image centre ((W - 1) / 2, (H - 1) / 2) relative to that of
the corner pixel centres, the relative illumination is ``1 / (1 + a ρ²)²`` (= cos⁴ atan(ρ tan α)),
with ``a = tan² α = (1 - vignetting)^(-1/2) - 1`` so that the corners keep exactly
``1 - vignetting`` of the centre's light.

Depth (:func:`apply_depth_noise`): a stereo or structured-light camera measures the disparity
d = f·B / z; a Gaussian disparity error of ``subpixel`` pixels gives, to first order, the axial
error σ_z = z² · subpixel / (f · B). It is drawn in depth (drawing it in disparity would bias the
mean depth by z·(σ_z / z)²). Then the disparity is quantised in steps of ``quantization_px``
(depth z -> f·B / (q·round(f·B / (q·z)))); pixels measured outside [min_range_m, max_range_m] and,
with probability ``edge_dropout``, the ``edge_px`` pixels either side of a depth discontinuity
have no data (0), as real depth cameras lose them at occlusion boundaries.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from worldfm_ros.errors import ConfigError

# Below this mean (electrons) shot noise is drawn as an exact Poisson count; above, as its normal
# limit with the same mean and variance, folded into the read noise's Gaussian: one draw per
# pixel, several times faster than numpy's Poisson sampler, and its skewness (< 0.23) is lost in
# the 8-bit quantisation.
POISSON_EXACT_BELOW = 20.0
# Gaussian noise is looked up from 16-bit uniform integers in a table of the normal quantiles at
# (k + 0.5) / 2^16, rescaled to unit variance: a normal truncated at ±4.3 σ (probability 1.5e-5
# beyond), three times faster than Generator.standard_normal and indistinguishable from it after
# 8-bit or millimetre quantisation.
_NORMAL_LEVELS = 1 << 16
# Linear light -> 8-bit sRGB goes through a table of this many steps over [0, 1]; its worst
# error (at black, where sRGB is steepest) is 0.006 of a code value.
_ENCODE_STEPS = 1 << 18


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class PhotometricConfig:
    """enabled: apply the imager model. gain: exposure × gain on the linear signal (> 0).
    full_well_electrons: electrons at the white level (sets the shot noise). read_noise_electrons:
    Gaussian read noise σ, electrons (>= 0). vignetting: fraction of light lost at the image corners,
    [0, 1) (cos⁴ falloff, see the module docstring). jpeg_quality: 0 = off, else 1..100."""

    enabled: bool = False
    gain: float = 1.0
    full_well_electrons: float = 6000.0
    read_noise_electrons: float = 4.0
    vignetting: float = 0.0
    jpeg_quality: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"photometric.enabled: expected true or false, got {self.enabled!r}")
        for name in ("gain", "full_well_electrons"):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value > 0):
                raise ConfigError(f"photometric.{name}: expected a finite number > 0, got {value!r}")
        if not (_is_number(self.read_noise_electrons) and math.isfinite(self.read_noise_electrons)
                and self.read_noise_electrons >= 0):
            raise ConfigError(f"photometric.read_noise_electrons: expected a finite number >= 0 electrons, "
                              f"got {self.read_noise_electrons!r}")
        if not (_is_number(self.vignetting) and 0.0 <= self.vignetting < 1.0):
            raise ConfigError(f"photometric.vignetting: expected a fraction in [0, 1), got {self.vignetting!r}")
        if isinstance(self.jpeg_quality, bool) or not isinstance(self.jpeg_quality, int) \
                or not 0 <= self.jpeg_quality <= 100:
            raise ConfigError(f"photometric.jpeg_quality: expected an integer 0 (off) or 1..100, "
                              f"got {self.jpeg_quality!r}")


#: Field values of the depth camera presets. realsense_d435: Intel's depth RMS error
#: z² · subpixel / (f · B) with subpixel 0.08 and B = 50 mm, f = ½ · 848 / tan(90° / 2) = 424 px
#: (848x480, Intel's recommended depth resolution; Grunnet-Jepsen et al., "Tuning depth cameras for
#: best performance" and "Subpixel linearity improvement for Intel RealSense D400", Intel), range
#: 0.3-10 m (D400 datasheet). kinect_v1: σ_z = 1.425e-3 · z² (m; Khoshelham & Oude Elberink,
#: "Accuracy and resolution of Kinect depth data for indoor mapping applications", Sensors 2012)
#: with B = 75 mm and f = 580 px (Konolige & Mihelich, "Technical description of Kinect
#: calibration", ROS wiki), i.e. subpixel = 1.425e-3 · 580 · 0.075 = 0.062 px; disparity reported
#: in 1/8 px (same source); range 0.8-4 m (the Kinect for Windows default range). The edge
#: dropout numbers are illustrative, not from a datasheet.
_PRESET_FIELDS: dict[str, dict] = {
    "realsense_d435": dict(baseline_m=0.05, focal_px=424.0, subpixel=0.08, quantization_px=0.0,
                           min_range_m=0.3, max_range_m=10.0, edge_dropout=0.5, edge_px=1, edge_jump=0.05),
    "kinect_v1": dict(baseline_m=0.075, focal_px=580.0, subpixel=1.425e-3 * 580.0 * 0.075, quantization_px=0.125,
                      min_range_m=0.8, max_range_m=4.0, edge_dropout=0.8, edge_px=2, edge_jump=0.05),
}


@dataclass
class DepthNoiseConfig:
    """preset: 'none' (off), 'custom' (the fields below as given) or a DEPTH_NOISE_PRESETS name, whose
    values replace every field below left at its default here (to set a field to its default
    with a preset, use 'custom' and give every field). baseline_m: the depth camera's stereo or
    projector-camera baseline, metres (> 0); focal_px: its focal length, pixels, 0 = the output
    camera's fx; subpixel: disparity noise σ, pixels (>= 0); quantization_px: disparity step,
    pixels, 0 = none; min_range_m / max_range_m: measurable range, metres, 0 = unlimited;
    edge_dropout: probability of no data within edge_px pixels of a depth discontinuity, [0, 1];
    edge_px: 0..16; edge_jump: relative depth jump between neighbouring pixels that counts as a
    discontinuity (> 0)."""

    preset: str = "none"
    baseline_m: float = 0.05
    focal_px: float = 0.0
    subpixel: float = 0.08
    quantization_px: float = 0.0
    min_range_m: float = 0.0
    max_range_m: float = 0.0
    edge_dropout: float = 0.0
    edge_px: int = 1
    edge_jump: float = 0.05

    def __post_init__(self) -> None:
        if self.preset not in ("none", "custom", *_PRESET_FIELDS):
            raise ConfigError(f"depth_noise.preset: expected none, custom or one of {', '.join(_PRESET_FIELDS)}, "
                              f"got {self.preset!r}")
        if self.preset in _PRESET_FIELDS:
            for f in dataclasses.fields(self):
                if f.name in _PRESET_FIELDS[self.preset] and getattr(self, f.name) == f.default:
                    setattr(self, f.name, _PRESET_FIELDS[self.preset][f.name])
        numbers = ("baseline_m", "focal_px", "subpixel", "quantization_px", "min_range_m", "max_range_m",
                   "edge_dropout", "edge_jump")
        for name in numbers:
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"depth_noise.{name}: expected a finite number >= 0, got {value!r}")
        for name in ("baseline_m", "edge_jump"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"depth_noise.{name}: expected a number > 0, got {getattr(self, name)!r}")
        if 0 < self.max_range_m <= self.min_range_m:
            raise ConfigError(f"depth_noise.max_range_m: expected more than min_range_m ({self.min_range_m} m) "
                              f"or 0 (unlimited), got {self.max_range_m}")
        if self.edge_dropout > 1:
            raise ConfigError(f"depth_noise.edge_dropout: expected a probability in [0, 1], got {self.edge_dropout}")
        if isinstance(self.edge_px, bool) or not isinstance(self.edge_px, int) or not 0 <= self.edge_px <= 16:
            raise ConfigError(f"depth_noise.edge_px: expected an integer 0..16 pixels, got {self.edge_px!r}")


#: The depth camera presets as configs (sources at _PRESET_FIELDS).
DEPTH_NOISE_PRESETS: dict[str, DepthNoiseConfig] = {name: DepthNoiseConfig(preset=name) for name in _PRESET_FIELDS}


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] -> linear light in [0, 1] (IEC 61966-2-1)."""
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB values in [0, 1] (IEC 61966-2-1), clipped to [0, 1]."""
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


#: (256,) float32: 8-bit sRGB code -> linear light
SRGB_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


@functools.cache
def _encode_table() -> np.ndarray:
    """(_ENCODE_STEPS + 1,) uint8: linear light in step i (value (i + 0.5) / steps) -> 8-bit sRGB."""
    mid = (np.arange(_ENCODE_STEPS + 1) + 0.5) / _ENCODE_STEPS
    return np.floor(linear_to_srgb(mid) * 255.0 + 0.5).astype(np.uint8)


@functools.cache
def _normal_table() -> np.ndarray:
    """(_NORMAL_LEVELS,) float32 standard normal quantiles, unit variance."""
    from scipy.special import ndtri

    table = ndtri((np.arange(_NORMAL_LEVELS) + 0.5) / _NORMAL_LEVELS)
    return (table / np.sqrt(np.mean(table**2))).astype(np.float32)


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 array of ``shape`` of standard normal samples from ``rng`` (see _NORMAL_LEVELS)."""
    return _normal_table().take(rng.integers(0, _NORMAL_LEVELS, shape, dtype=np.uint16))


@functools.lru_cache(maxsize=8)
def vignetting_gain(width: int, height: int, vignetting: float) -> np.ndarray:
    """(H, W) float32 relative illumination 1 / (1 + a ρ²)² (module docstring); read-only, cached."""
    a = (1.0 - vignetting) ** -0.5 - 1.0
    x = (np.arange(width, dtype=np.float64) - (width - 1) / 2.0) ** 2
    y = (np.arange(height, dtype=np.float64) - (height - 1) / 2.0) ** 2
    corner = max(x[0] + y[0], 1e-12)
    gain = 1.0 / (1.0 + a * (y[:, None] + x[None, :]) / corner) ** 2
    gain = gain.astype(np.float32)
    gain.flags.writeable = False
    return gain


def apply_photometric(rgb: np.ndarray, config: PhotometricConfig, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (H, W, 3) uint8 sRGB with the imager's gain, vignetting, shot and read
    noise, and JPEG compression when asked (module docstring). ``rgb`` itself when disabled."""
    if not config.enabled:
        return rgb
    full_well = np.float32(config.full_well_electrons)
    mean = cv2.LUT(np.ascontiguousarray(rgb), SRGB_TO_LINEAR)  # (H, W, 3) linear light, then mean electrons
    mean *= np.float32(config.gain) * full_well
    if config.vignetting > 0:
        mean *= vignetting_gain(rgb.shape[1], rgb.shape[0], float(config.vignetting))[..., None]
    read_var = np.float32(config.read_noise_electrons) ** 2
    normal = standard_normal(rng, mean.shape)
    electrons = np.add(mean, read_var)
    np.sqrt(electrons, out=electrons)
    electrons *= normal
    electrons += mean
    low = mean < POISSON_EXACT_BELOW
    low &= mean > 0
    exact = np.flatnonzero(low)
    if exact.size:
        electrons.reshape(-1)[exact] = (rng.poisson(mean.reshape(-1)[exact])
                                        + np.float32(config.read_noise_electrons) * normal.reshape(-1)[exact])
    electrons *= np.float32(_ENCODE_STEPS) / full_well
    np.clip(electrons, 0, _ENCODE_STEPS, out=electrons)
    out = _encode_table().take(electrons.astype(np.int32))
    if config.jpeg_quality:
        _, data = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, int(config.jpeg_quality)])
        out = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def depth_edges(depth: np.ndarray, jump: float, radius: int) -> np.ndarray:
    """(H, W) float32 z-depth, metres (0 = no data) -> (H, W) bool: the pixels within ``radius``
    pixels (Chebyshev; 1 = the pixels either side) of a discontinuity, a pair of 8-neighbours with
    data whose depths differ by more than ``jump`` times the nearer."""
    kernel = np.ones((3, 3), np.uint8)
    d = depth.astype(np.float32, copy=False)
    near = cv2.erode(np.where(d > 0, d, np.float32(np.inf)), kernel)
    far = cv2.dilate(d, kernel)
    edge = (d > 0) & (far - near > np.float32(jump) * near)
    if radius > 1:
        side = 2 * radius - 1
        edge = cv2.dilate(edge.view(np.uint8), np.ones((side, side), np.uint8)).view(bool)
    return edge


def apply_depth_noise(depth: np.ndarray, fx: float, config: DepthNoiseConfig, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 z-depth, metres, 0 = no data -> the depth camera's measurement, (H, W) float32
    metres, 0 = no data (module docstring); ``depth`` itself for preset 'none'. fx: the output
    camera's focal length, pixels (used when ``config.focal_px`` is 0)."""
    if config.preset == "none":
        return depth
    fb = np.float32((config.focal_px or fx) * config.baseline_m)  # pixels x metres
    z = depth.astype(np.float32, copy=False)
    has = z > 0
    out = standard_normal(rng, z.shape)
    out *= z * z * (np.float32(config.subpixel) / fb)
    out += z
    if config.quantization_px > 0:
        q = np.float32(config.quantization_px)
        step = np.round(np.divide(fb / q, out, out=np.zeros_like(out), where=out > 0))  # disparity / q
        out = np.divide(fb / q, step, out=np.zeros_like(out), where=step > 0)
    keep = has & (out > 0)
    if config.min_range_m > 0:
        keep &= out >= np.float32(config.min_range_m)
    if config.max_range_m > 0:
        keep &= out <= np.float32(config.max_range_m)
    if config.edge_dropout > 0 and config.edge_px > 0:
        edge = np.flatnonzero(depth_edges(z, config.edge_jump, config.edge_px))
        keep.reshape(-1)[edge[rng.random(edge.size) < config.edge_dropout]] = False
    out[~keep] = 0.0
    return out
