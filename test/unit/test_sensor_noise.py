"""Imager and depth-camera noise against the models they claim: shot + read noise variance in linear
light, cos⁴ vignetting, JPEG error, depth σ = z² · subpixel / (f · B), disparity quantisation,
range limits and dropout at depth edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldfm_ros.config import load_config
from worldfm_ros.errors import ConfigError
from worldfm_ros.sensors.noise import (
    DEPTH_NOISE_PRESETS,
    DepthNoiseConfig,
    PhotometricConfig,
    apply_depth_noise,
    apply_photometric,
)


def decode(code: np.ndarray) -> np.ndarray:
    """8-bit sRGB codes (any real value) -> linear light (IEC 61966-2-1), float64."""
    v = np.asarray(code, np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def patches(codes: list[int], side: int = 240) -> np.ndarray:
    """(side, side * len(codes), 3) uint8: flat grey squares of the given sRGB codes side by side."""
    return np.repeat(np.repeat(np.array(codes, np.uint8), side)[None, :, None], side, axis=0).repeat(3, axis=2)


def test_disabled_configs_are_the_identity() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth = np.where(rng.random((48, 64)) < 0.2, 0.0, rng.uniform(0.3, 6.0, (48, 64))).astype(np.float32)
    rgb_copy, depth_copy = rgb.copy(), depth.copy()
    out_rgb = apply_photometric(rgb, PhotometricConfig(), rng)
    out_depth = apply_depth_noise(depth, 500.0, DepthNoiseConfig(), rng)
    assert out_rgb.dtype == np.uint8 and np.array_equal(out_rgb, rgb_copy)
    assert out_depth.dtype == np.float32 and np.array_equal(out_depth, depth_copy)


# Levels at least 4 sigma above black: the clip at 0 would otherwise cut the variance.
@pytest.mark.parametrize("full_well, read_noise, codes",
                         [(1000.0, 1.0, [32, 60, 120, 200]), (400.0, 6.0, [90, 120, 200])])
def test_shot_and_read_noise_have_the_predicted_variance_in_linear_light(full_well: float, read_noise: float,
                                                                         codes: list[int]) -> None:
    # 32 at 1000 e is 14.6 e: drawn as an exact Poisson count
    config = PhotometricConfig(enabled=True, full_well_electrons=full_well, read_noise_electrons=read_noise)
    out = apply_photometric(patches(codes), config, np.random.default_rng(1))
    assert out.shape == (240, 240 * len(codes), 3) and out.dtype == np.uint8
    variances = []
    for k, code in enumerate(codes):
        measured = decode(out[:, 240 * k:240 * (k + 1)])
        linear = decode(code)
        electrons = linear * full_well
        predicted = (electrons + read_noise**2) / full_well**2
        # Sheppard's correction for the 8-bit output: one code step, in linear light, at this level
        step = decode(code + 0.5) - decode(code - 0.5)
        predicted += step**2 / 12.0
        assert measured.var() == pytest.approx(predicted, rel=0.03), code
        assert measured.mean() == pytest.approx(linear, rel=0.01), code
        variances.append(measured.var())
    assert np.all(np.diff(variances) > 0)  # shot noise grows with the signal


def test_gain_scales_the_linear_signal() -> None:
    config = PhotometricConfig(enabled=True, gain=1.8, full_well_electrons=1e8, read_noise_electrons=0.0)
    out = apply_photometric(patches([60, 120, 230], side=32), config, np.random.default_rng(2))
    # without noise to dither it, the 8-bit output is within half a code of the scaled level
    assert decode(out[:, :32]).mean() == pytest.approx(1.8 * decode(60), rel=0.02)
    assert decode(out[:, 32:64]).mean() == pytest.approx(1.8 * decode(120), rel=0.02)
    assert np.all(out[:, 64:] == 255)  # past the full well: saturated


@pytest.mark.parametrize("vignetting", [0.0, 0.25, 0.6])
def test_vignetting_darkens_the_corners_by_the_configured_fraction(vignetting: float) -> None:
    h, w = 120, 160
    rgb = np.full((h, w, 3), 230, np.uint8)
    config = PhotometricConfig(enabled=True, full_well_electrons=1e9, read_noise_electrons=0.0, vignetting=vignetting)
    relative = decode(apply_photometric(rgb, config, np.random.default_rng(3))) / decode(230)
    corners = relative[[0, 0, -1, -1], [0, -1, 0, -1]]
    np.testing.assert_allclose(corners, 1.0 - vignetting, rtol=0.01)
    # the documented cos⁴ falloff 1 / (1 + a ρ²)² everywhere, ρ = 1 at the corner pixel centres
    v, u = np.indices((h, w))
    rho2 = ((u - (w - 1) / 2) ** 2 + (v - (h - 1) / 2) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
    a = (1.0 - vignetting) ** -0.5 - 1.0
    np.testing.assert_allclose(relative, np.repeat((1.0 / (1.0 + a * rho2) ** 2)[..., None], 3, axis=2), rtol=0.01)
    assert relative[h // 2, w // 2].min() > 0.99


def test_jpeg_changes_the_image_with_bounded_error() -> None:
    v, u = np.indices((240, 320))
    rgb = np.stack([u * 255 // 319, v * 255 // 239, (u + v) * 255 // 558], axis=-1).astype(np.uint8)
    rgb[80:160, 100:220] = (200, 40, 30)
    clean = PhotometricConfig(enabled=True, full_well_electrons=1e9, read_noise_electrons=0.0)
    lossy = PhotometricConfig(enabled=True, full_well_electrons=1e9, read_noise_electrons=0.0, jpeg_quality=60)
    reference = apply_photometric(rgb, clean, np.random.default_rng(4))
    out = apply_photometric(rgb, lossy, np.random.default_rng(4))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    error = np.abs(out.astype(np.int16) - reference.astype(np.int16))
    assert error.max() > 0
    psnr = 10 * math.log10(255.0**2 / np.mean(error.astype(np.float64) ** 2))
    assert psnr > 32.0 and np.mean(error) < 2.0
    assert np.all(np.abs(out[100:140, 140:180].mean(axis=(0, 1)) - (200, 40, 30)) < 6)  # colours stay in their channels


@pytest.mark.parametrize("z", [0.5, 1.0, 2.0, 4.0])
def test_depth_noise_std_follows_z_squared_and_is_unbiased(z: float) -> None:
    config = DepthNoiseConfig(preset="custom", baseline_m=0.05, focal_px=400.0, subpixel=0.08)
    depth = np.full((200, 200), z, np.float32)
    out = apply_depth_noise(depth, 999.0, config, np.random.default_rng(5)).astype(np.float64)
    sigma = z**2 * 0.08 / (400.0 * 0.05)
    assert out.std() == pytest.approx(sigma, rel=0.05)
    assert abs(out.mean() - z) < 4 * sigma / math.sqrt(out.size)  # four standard errors


def test_depth_noise_uses_the_camera_focal_length_when_focal_px_is_zero() -> None:
    config = DepthNoiseConfig(preset="custom", baseline_m=0.1, subpixel=0.2)
    out = apply_depth_noise(np.full((200, 200), 3.0, np.float32), 250.0, config, np.random.default_rng(6))
    assert out.std() == pytest.approx(9.0 * 0.2 / (250.0 * 0.1), rel=0.05)


def test_quantisation_puts_depths_on_the_disparity_grid() -> None:
    config = DepthNoiseConfig(preset="custom", baseline_m=0.075, focal_px=580.0, subpixel=0.06, quantization_px=0.125)
    depth = np.linspace(0.8, 4.0, 100 * 100, dtype=np.float32).reshape(100, 100)
    out = apply_depth_noise(depth, 500.0, config, np.random.default_rng(7)).astype(np.float64)
    assert np.all(out > 0)
    steps = 580.0 * 0.075 / out / 0.125  # disparity in steps of 1/8 pixel
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    # the step is z² · q / (f · B): at 4 m, 4.6 cm
    assert np.unique(out[-1]).size < 8


def test_depths_outside_the_range_are_missing_and_missing_stays_missing() -> None:
    config = DepthNoiseConfig(preset="custom", subpixel=0.01, focal_px=500.0, min_range_m=0.5, max_range_m=3.0)
    depth = np.zeros((40, 40), np.float32)
    depth[:, 10:20], depth[:, 20:30], depth[:, 30:] = 0.3, 2.0, 3.5
    out = apply_depth_noise(depth, 500.0, config, np.random.default_rng(8))
    assert out.dtype == np.float32
    assert np.all(out[:, :10] == 0) and np.all(out[:, 10:20] == 0) and np.all(out[:, 30:] == 0)
    assert np.all(out[:, 20:30] > 0)


@pytest.mark.parametrize("edge_px", [1, 2])
def test_edge_dropout_only_near_discontinuities_at_the_configured_rate(edge_px: int) -> None:
    h, w, step = 400, 200, 100
    depth = np.empty((h, w), np.float32)
    # left, a slanted plane 1 % deeper each column (below the 5 % jump: no discontinuity) reaching
    # 2.68 m; right, a wall at 2 m: one step, 34 %
    depth[:, :step] = 1.0 * 1.01 ** np.arange(step)
    depth[:, step:] = 2.0
    config = DepthNoiseConfig(preset="custom", subpixel=0.001, focal_px=500.0, edge_dropout=0.3, edge_px=edge_px)
    out = apply_depth_noise(depth, 500.0, config, np.random.default_rng(9))
    near = np.zeros((h, w), bool)
    near[:, step - edge_px:step + edge_px] = True  # edge_px columns either side of the step
    missing = out == 0
    assert not missing[~near].any()
    assert missing[near].mean() == pytest.approx(0.3, abs=0.03)


def test_presets_carry_their_documented_numbers() -> None:
    d435, kinect = DEPTH_NOISE_PRESETS["realsense_d435"], DEPTH_NOISE_PRESETS["kinect_v1"]
    assert (d435.baseline_m, d435.focal_px, d435.subpixel) == (0.05, 424.0, 0.08)
    assert (d435.min_range_m, d435.max_range_m) == (0.3, 10.0)
    # Khoshelham & Oude Elberink: σ_z = 1.425e-3 z²
    assert kinect.subpixel / (kinect.focal_px * kinect.baseline_m) == pytest.approx(1.425e-3)
    assert (kinect.baseline_m, kinect.focal_px, kinect.quantization_px) == (0.075, 580.0, 0.125)
    assert (kinect.min_range_m, kinect.max_range_m) == (0.8, 4.0)
    for name in DEPTH_NOISE_PRESETS:
        assert name in DepthNoiseConfig.__doc__ or "DEPTH_NOISE_PRESETS" in DepthNoiseConfig.__doc__
    # a preset fills the fields left at their defaults; the others keep what was given
    loaded = load_config(DepthNoiseConfig, {"preset": "kinect_v1", "max_range_m": 3.0})
    assert loaded.max_range_m == 3.0 and loaded.focal_px == 580.0 and loaded.quantization_px == 0.125
    # and measure what they say: the D435 at 2 m, 15 mm
    out = apply_depth_noise(np.full((200, 200), 2.0, np.float32), 600.0, DepthNoiseConfig(preset="realsense_d435"),
                            np.random.default_rng(10))
    assert out.std() == pytest.approx(4.0 * 0.08 / (424.0 * 0.05), rel=0.05)


def test_seeds_are_reproducible() -> None:
    rgb = patches([20, 100, 180], side=40)
    depth = np.full((60, 60), 1.5, np.float32)
    depth[:, 30:] = 2.5
    photo = PhotometricConfig(enabled=True, vignetting=0.2, jpeg_quality=80)
    noise = DepthNoiseConfig(preset="kinect_v1")
    runs = [(apply_photometric(rgb, photo, np.random.default_rng(seed)),
             apply_depth_noise(depth, 500.0, noise, np.random.default_rng(seed))) for seed in (11, 11, 12)]
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[2][0]) and not np.array_equal(runs[0][1], runs[2][1])


@pytest.mark.parametrize("fields, match", [
    ({"gain": 0.0}, "photometric.gain"),
    ({"full_well_electrons": -1.0}, "photometric.full_well_electrons"),
    ({"read_noise_electrons": math.nan}, "photometric.read_noise_electrons"),
    ({"vignetting": 1.0}, "photometric.vignetting"),
    ({"jpeg_quality": 101}, "photometric.jpeg_quality"),
    ({"jpeg_quality": 2.5}, "photometric.jpeg_quality"),
])
def test_bad_photometric_values_name_the_field(fields: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PhotometricConfig(enabled=True, **fields)


@pytest.mark.parametrize("fields, match", [
    ({"preset": "kinect_v2"}, "depth_noise.preset"),
    ({"preset": "custom", "baseline_m": 0.0}, "depth_noise.baseline_m"),
    ({"preset": "custom", "subpixel": -0.1}, "depth_noise.subpixel"),
    ({"preset": "custom", "focal_px": math.inf}, "depth_noise.focal_px"),
    ({"preset": "custom", "min_range_m": 2.0, "max_range_m": 1.0}, "depth_noise.max_range_m"),
    ({"preset": "custom", "edge_dropout": 1.5}, "depth_noise.edge_dropout"),
    ({"preset": "custom", "edge_px": 20}, "depth_noise.edge_px"),
    ({"preset": "custom", "edge_jump": 0.0}, "depth_noise.edge_jump"),
])
def test_bad_depth_noise_values_name_the_field(fields: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DepthNoiseConfig(**fields)
