"""Rolling shutter and motion blur: edge skew against the analytic row times, blur width against
the exposure, identities when nothing moves, the optical-frame motion against composed
kinematic poses, and config validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from worldfm_ros.camera import LINK_T_OPTICAL, PinholeCamera, invert_pose
from worldfm_ros.errors import ConfigError
from worldfm_ros.render.pointcloud import PointCloudRenderer
from worldfm_ros.sensors.motion import MotionBlurConfig, MotionEffects, RollingShutterConfig, optical_motion
from worldfm_ros.sim.kinematics import exp_se3
from worldfm_ros.sensors.rig import MountConfig

# 320x240, 60 deg horizontal field: fx = 160 / tan(30 deg) = 277.1 px, cx = 159.5
CAMERA = PinholeCamera.from_fov(320, 240, 60.0)
WALL_Z = 3.0
RED, BLUE = (255, 0, 0), (0, 0, 255)
NO_TWIST = np.zeros(3)


def yaw(rate: float) -> np.ndarray:
    """base_link angular velocity (3,) rad/s: yaw about base z (up), positive = turning left."""
    return np.array([0.0, 0.0, rate])


@pytest.fixture(scope="module")
def wall() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The real point-cloud render of a wall at z = 3 m filling the view, red left of x = 0 and
    blue right of it (optical frame at the stamp = scene frame): rgb, depth, valid (240, 320)."""
    step = 0.0075  # m; a pixel is 3 / 277 = 1.08 cm wide at the wall, so every pixel gets points
    xs = (np.arange(-270, 270) + 0.5) * step  # no point on x = 0: the edge falls between two columns
    ys = (np.arange(-200, 200) + 0.5) * step
    x, y = np.meshgrid(xs, ys)
    points = np.stack([x.ravel(), y.ravel(), np.full(x.size, WALL_Z)], axis=1).astype(np.float32)
    colors = np.where((points[:, 0] < 0)[:, None], RED, BLUE).astype(np.uint8)
    result = PointCloudRenderer(points, colors).render(CAMERA, np.eye(4))
    assert result.valid.all()
    return result.rgb, result.depth, result.valid


def edge_per_row(rgb: np.ndarray, lo: int = 120, hi: int = 200) -> np.ndarray:
    """(H,) sub-pixel column of the red-to-blue transition in each row: a step at column e sampled
    at pixel centres u (and bilinearly interpolated) has sum over u in [lo, hi] of the red
    fraction = e - lo + 0.5, whatever its sub-pixel position."""
    r, b = rgb[:, lo:hi + 1, 0].astype(np.float64), rgb[:, lo:hi + 1, 2].astype(np.float64)
    return lo - 0.5 + (r / (r + b)).sum(axis=1)


def rolling_shutter(readout_s: float) -> MotionEffects:
    """Rolling shutter only, camera at the base_link origin looking along base x."""
    return MotionEffects(MotionBlurConfig(), RollingShutterConfig(readout_s), CAMERA, LINK_T_OPTICAL)


def test_rendered_edge_lies_between_the_centre_columns(wall):
    rgb, _, _ = wall
    assert np.allclose(edge_per_row(rgb), CAMERA.cx, atol=1e-9)


def test_rolling_shutter_skews_an_edge_by_the_yaw_during_readout(wall):
    rgb, depth, valid = wall
    rate, readout = 1.0, 0.03
    out, _, _ = rolling_shutter(readout).apply(rgb, depth, valid, NO_TWIST, yaw(rate))
    edge = edge_per_row(out)
    # Row v is exposed t_v = v * readout / H after the stamp. Turning left by w t_v, the camera sees
    # the scene slide right: the edge (a vertical line through the optical axis; a rotation about
    # the camera's y axis keeps it vertical) is at u = cx + fx tan(w t_v) in that row.
    t_v = np.arange(CAMERA.height) * readout / CAMERA.height
    expected = CAMERA.cx + CAMERA.fx * np.tan(rate * t_v)
    assert np.abs(edge - expected).max() < 0.02  # px; measured 0.002
    slope = np.polyfit(np.arange(CAMERA.height), edge, 1)[0]
    analytic = CAMERA.fx * rate * readout / CAMERA.height  # px per row, small-angle skew
    assert slope == pytest.approx(analytic, rel=0.005)  # measured +0.02 %


def test_rolling_shutter_skews_an_edge_by_the_lateral_parallax(wall):
    rgb, depth, valid = wall
    speed, readout = 2.0, 0.03
    # base +y (left) is optical -x: moving left, a surface at depth z slides right by fx v t / z
    out, out_depth, _ = rolling_shutter(readout).apply(rgb, depth, valid, np.array([0.0, speed, 0.0]), NO_TWIST)
    t_v = np.arange(CAMERA.height) * readout / CAMERA.height
    expected = CAMERA.cx + CAMERA.fx * speed * t_v / WALL_Z
    edge = edge_per_row(out)
    assert np.abs(edge - expected).max() < 0.02  # px; measured 0.002
    slope = np.polyfit(np.arange(CAMERA.height), edge, 1)[0]
    analytic = CAMERA.fx * speed * readout / CAMERA.height / WALL_Z  # px per row
    assert slope == pytest.approx(analytic, rel=0.005)  # measured 0.002 %
    # moving parallel to the wall keeps it at the same depth
    assert np.allclose(out_depth[:, 2:-2], WALL_Z, rtol=1e-5)


def test_rolling_shutter_depth_is_the_z_depth_in_each_rows_frame(wall):
    rgb, depth, valid = wall
    rate, readout = 1.0, 0.03
    _, out_depth, out_valid = rolling_shutter(readout).apply(rgb, depth, valid, NO_TWIST, yaw(rate))
    # Row v's camera is turned by w t_v about optical -y (base z is optical -y); its ray through
    # (u, v) meets the plane z = 3 of the stamp's frame at row-frame depth 3 / (R r)_z.
    h, w = CAMERA.height, CAMERA.width
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.stack([(u - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy, np.ones_like(u, float)], axis=-1)
    angles = rate * np.arange(h) * readout / h
    R = Rotation.from_rotvec(np.outer(angles, [0.0, -1.0, 0.0])).as_matrix()  # (H, 3, 3)
    expected = WALL_Z / np.einsum("hj,hwj->hw", R[:, 2, :], rays)
    inside = out_valid
    # The left columns of late rows look past the rendered frame's left edge (up to fx (1 + x^2) w t
    # = 11 px), and the last rows' left corners below it (turning about y changes the rays' z).
    assert inside[:-3, 15:].all() and not inside[-1, 0]
    assert np.abs(out_depth[inside] - expected[inside]).max() < 1e-5 * WALL_Z
    assert np.all(out_depth[~inside] == 0)


def test_pure_rotation_warp_does_not_depend_on_depth(wall):
    rgb, depth, valid = wall
    effects = rolling_shutter(0.03)
    with_depth = effects.apply(rgb, depth, valid, NO_TWIST, yaw(1.5))[0]
    far_away = effects.apply(rgb, np.zeros_like(depth), np.zeros_like(valid), NO_TWIST, yaw(1.5))[0]
    assert np.array_equal(with_depth, far_away)


def test_pixels_without_depth_take_the_rotation_only_warp(wall):
    rgb, depth, _ = wall
    # pure translation: at infinite depth nothing moves
    out, out_depth, out_valid = rolling_shutter(0.03).apply(
        rgb, np.zeros_like(depth), np.zeros(depth.shape, bool), np.array([1.0, 2.0, 0.5]), NO_TWIST)
    assert np.array_equal(out, rgb)
    assert not out_depth.any() and not out_valid.any()


def test_effects_off_are_the_identity(wall):
    rgb, depth, valid = wall
    effects = MotionEffects(MotionBlurConfig(exposure_s=0.0), RollingShutterConfig(readout_s=0.0), CAMERA,
                            MountConfig().matrix() @ LINK_T_OPTICAL)
    assert not effects.enabled
    out = effects.apply(rgb, depth, valid, np.array([1.0, 0.0, 0.0]), yaw(1.0))
    assert out[0] is rgb and out[1] is depth and out[2] is valid


def test_zero_twist_leaves_the_frame_unchanged(wall):
    rgb, depth, valid = wall
    effects = MotionEffects(MotionBlurConfig(0.02, 8), RollingShutterConfig(0.03), CAMERA,
                            MountConfig().matrix() @ LINK_T_OPTICAL)
    assert effects.enabled
    out_rgb, out_depth, out_valid = effects.apply(rgb, depth, valid, NO_TWIST, NO_TWIST)
    assert np.array_equal(out_rgb, rgb) and np.array_equal(out_depth, depth) and np.array_equal(out_valid, valid)


def line_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A black frame with a one-pixel white vertical line at column 160, everything 3 m away."""
    rgb = np.zeros((CAMERA.height, CAMERA.width, 3), np.uint8)
    rgb[:, 160] = 255
    depth = np.full((CAMERA.height, CAMERA.width), WALL_Z, np.float32)
    return rgb, depth, depth > 0


def test_motion_blur_spreads_a_line_over_the_exposures_sweep():
    rgb, depth, valid = line_frame()
    rate, exposure, samples = 2.0, 0.03, 8
    effects = MotionEffects(MotionBlurConfig(exposure, samples), RollingShutterConfig(), CAMERA, LINK_T_OPTICAL)
    out, out_depth, out_valid = effects.apply(rgb, depth, valid, NO_TWIST, yaw(rate))
    profile = out[:, :, 1].astype(np.float64)  # (H, W) one channel
    u = np.arange(CAMERA.width)
    weight = profile.sum(axis=1, keepdims=True)
    mean = (profile * u).sum(axis=1, keepdims=True) / weight
    var = (profile * (u - mean) ** 2).sum(axis=1) / weight[:, 0]
    # A continuous exposure sweeps the line uniformly over L = fx w E pixels (small angle): a box of
    # variance L^2 / 12. The width sqrt(12 var) measures 0.5 % under it (8 samples: sqrt(63 / 64)).
    sweep = CAMERA.fx * rate * exposure
    assert np.sqrt(12 * var) == pytest.approx(np.full(CAMERA.height, sweep), rel=0.03)
    # its extent: the sweep, give or take the bilinear footprint of the extreme samples
    lit = np.nonzero(profile[CAMERA.height // 2] > 0)[0]
    assert sweep - sweep / samples - 1 <= lit[-1] - lit[0] <= sweep + 2
    # centred on the line's position at the row time (the stamp: global shutter)
    assert np.allclose(mean[:, 0], 160.0, atol=0.1)
    # light is spread, not lost: total intensity within 1 % (uint8 rounding per pixel; measured +0.4 %)
    assert out.astype(np.int64).sum() == pytest.approx(rgb.astype(np.int64).sum(), rel=0.01)
    # depth and valid stay those of the row time
    assert np.array_equal(out_depth, depth) and np.array_equal(out_valid, valid)
    # a camera at rest records the frame as rendered
    assert np.array_equal(effects.apply(rgb, depth, valid, NO_TWIST, NO_TWIST)[0], rgb)


def test_optical_motion_is_the_identity_at_the_stamp():
    mount = MountConfig(xyz=[0.2, -0.1, 0.8], rpy=[0.1, 0.2, -0.3]).matrix() @ LINK_T_OPTICAL
    T = optical_motion(np.array([0.7, 0.2, -0.1]), np.array([0.3, -0.2, 1.1]), mount, np.array([0.0]))
    assert T.shape == (1, 4, 4)
    assert np.allclose(T[0], np.eye(4), atol=1e-15)


@pytest.mark.parametrize("angular", [np.array([0.3, -0.2, 1.1]), np.zeros(3)], ids=["turning", "straight"])
def test_optical_motion_matches_composed_kinematic_steps(angular):
    """The optical frame after k steps of ``pose @ exp_se3(v dt, w dt)`` (what KinematicModel does
    under a constant twist), in the optical frame at the start."""
    linear = np.array([0.7, 0.2, -0.1])
    base_T_optical = MountConfig(xyz=[0.2, -0.1, 0.8], rpy=[0.1, 0.2, -0.3]).matrix() @ LINK_T_OPTICAL
    dt, steps = 0.004, 12
    start = MountConfig(xyz=[1.0, 2.0, 0.0], rpy=[0.0, 0.0, 0.5]).matrix()  # map_T_base at the stamp
    pose, expected = start, []
    for _ in range(steps):
        pose = pose @ exp_se3(linear * dt, angular * dt)
        expected.append(invert_pose(start @ base_T_optical) @ pose @ base_T_optical)
    got = optical_motion(linear, angular, base_T_optical, dt * np.arange(1, steps + 1))
    assert np.abs(got - np.array(expected)).max() < 1e-12
    # and backwards in time (the first half of an exposure) is the inverse motion
    back = optical_motion(linear, angular, base_T_optical, -dt * np.arange(1, steps + 1))
    assert np.abs(back - np.array([invert_pose(T) for T in expected])).max() < 1e-12


@pytest.mark.parametrize("make, field", [
    (lambda: MotionBlurConfig(exposure_s=-0.01), "motion_blur.exposure_s"),
    (lambda: MotionBlurConfig(exposure_s=math.nan), "motion_blur.exposure_s"),
    (lambda: MotionBlurConfig(exposure_s=0.01, samples=1), "motion_blur.samples"),
    (lambda: RollingShutterConfig(readout_s=-0.02), "rolling_shutter.readout_s"),
], ids=["negative exposure", "nan exposure", "one sample", "negative readout"])
def test_bad_config_names_the_field(make, field):
    with pytest.raises(ConfigError, match=field):
        make()


def test_one_sample_is_fine_with_blur_off():
    assert MotionBlurConfig(exposure_s=0.0, samples=1).samples == 1
