"""Rolling shutter and motion blur against the analytic image motion of a turning or sliding camera."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.camera import LINK_T_OPTICAL, PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.render.pointcloud import PointCloudRenderer
from worldfm_ros.sensors.motion import MotionBlurConfig, MotionEffects, RollingShutterConfig, optical_motion
from worldfm_ros.sim.kinematics import exp_se3

CAMERA = PinholeCamera.from_fov(320, 240, 60.0)
Z = 3.0  # the wall's distance, metres
BASE_T_OPTICAL = LINK_T_OPTICAL  # camera at base_link, looking along base +x
STILL = np.zeros(3)


def wall(colour_of_x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rgb, depth, valid of a wall at optical z = Z filling the view, 6 mm point spacing,
    coloured by ``colour_of_x(x) -> (N, 3) uint8`` (x metres, optical frame)."""
    xs, ys = np.meshgrid(np.arange(-1.9, 1.9, 0.006), np.arange(-1.4, 1.4, 0.006))
    points = np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, Z)]).astype(np.float32)
    render = PointCloudRenderer(points, colour_of_x(points[:, 0])).render(CAMERA, np.eye(4), point_radius=1)
    return render.rgb, render.depth, render.valid


def red_left_blue_right(x: np.ndarray) -> np.ndarray:
    return np.where((x < 0)[:, None], [[255, 0, 0]], [[0, 0, 255]]).astype(np.uint8)


def edge_per_row(rgb: np.ndarray) -> np.ndarray:
    """(H,) sub-pixel column of the red→blue edge in each row (pixel centres at integers)."""
    red, blue = rgb[..., 0].astype(float), rgb[..., 2].astype(float)
    return (red / np.maximum(red + blue, 1.0)).sum(axis=1) - 0.5


def slope(values: np.ndarray) -> float:
    rows = np.arange(len(values))
    return float(np.polyfit(rows[20:-20], values[20:-20], 1)[0])


def shutter(readout_s: float) -> MotionEffects:
    return MotionEffects(MotionBlurConfig(), RollingShutterConfig(readout_s), CAMERA, BASE_T_OPTICAL)


def test_a_yawing_rolling_shutter_skews_a_vertical_edge_by_the_analytic_amount():
    w, readout = 1.0, 0.03  # rad/s left turn; 30 ms readout
    rgb, depth, valid = wall(red_left_blue_right)
    skewed, _, _ = shutter(readout).apply(rgb, depth, valid, STILL, np.array([0.0, 0.0, w]))
    # turning left moves the scene right: row v, exposed v * readout / H later, sees it fx * tan(w t) further right
    expected = CAMERA.fx * np.tan(w * readout / CAMERA.height)
    assert slope(edge_per_row(skewed)) == pytest.approx(expected, rel=0.03)
    assert abs(slope(edge_per_row(rgb))) < 1e-3  # the global-shutter frame has a vertical edge


def test_a_sliding_rolling_shutter_skews_an_edge_by_f_v_t_over_z():
    v, readout = 1.0, 0.1  # m/s to the left (base +y)
    rgb, depth, valid = wall(red_left_blue_right)
    skewed, skewed_depth, _ = shutter(readout).apply(rgb, depth, valid, np.array([0.0, v, 0.0]), STILL)
    expected = CAMERA.fx * v * readout / CAMERA.height / Z
    assert slope(edge_per_row(skewed)) == pytest.approx(expected, rel=0.03)
    assert np.allclose(skewed_depth[skewed_depth > 0], Z, atol=1e-4)  # sliding along the wall keeps its depth


def test_global_shutter_without_exposure_or_motion_changes_nothing():
    rgb, depth, valid = wall(red_left_blue_right)
    off = MotionEffects(MotionBlurConfig(), RollingShutterConfig(), CAMERA, BASE_T_OPTICAL)
    assert not off.enabled
    for effects, twist in ((off, (np.ones(3), np.ones(3))), (shutter(0.03), (STILL, STILL))):
        out = effects.apply(rgb, depth, valid, *twist)
        assert np.array_equal(out[0], rgb) and np.array_equal(out[1], depth) and np.array_equal(out[2], valid)


def test_motion_blur_spreads_a_thin_line_over_the_angle_swept_during_the_exposure():
    w, exposure = 1.0, 0.02
    rgb, depth, valid = wall(lambda x: np.where((np.abs(x) < 0.006)[:, None], 255, 0).astype(np.uint8).repeat(3, 1))
    blur = MotionEffects(MotionBlurConfig(exposure, 16), RollingShutterConfig(), CAMERA, BASE_T_OPTICAL)
    blurred, _, _ = blur.apply(rgb, depth, valid, STILL, np.array([0.0, 0.0, w]))

    def spread(image: np.ndarray) -> tuple[float, float, float]:
        profile = image[40:-40, :, 1].astype(float).mean(axis=0)
        u = np.arange(len(profile))
        mean = (profile * u).sum() / profile.sum()
        return profile.sum(), mean, (profile * (u - mean) ** 2).sum() / profile.sum()

    total0, centre0, var0 = spread(rgb)
    total, centre, var = spread(blurred)
    length = CAMERA.fx * w * exposure  # pixels swept, centred on the stamp's view
    assert np.sqrt(var - var0) == pytest.approx(length / np.sqrt(12), rel=0.1)  # a box of that length
    assert total == pytest.approx(total0, rel=0.02) and centre == pytest.approx(centre0, abs=0.3)


def test_optical_motion_is_the_base_arc_seen_from_the_optical_frame():
    base_T_optical = np.eye(4)
    base_T_optical[:3, 3] = (0.2, -0.1, 1.0)
    base_T_optical = base_T_optical @ LINK_T_OPTICAL
    v, w = np.array([0.6, 0.2, 0.1]), np.array([0.3, -0.2, 1.1])
    times = np.array([0.0, 0.01, 0.25, 1.0])
    got = optical_motion(v, w, base_T_optical, times)
    want = [np.linalg.inv(base_T_optical) @ exp_se3(v * t, w * t) @ base_T_optical for t in times]
    assert np.allclose(got, want, atol=1e-12) and np.allclose(got[0], np.eye(4))


@pytest.mark.parametrize("make, field", [
    (lambda: MotionBlurConfig(exposure_s=-0.01), "motion_blur.exposure_s"),
    (lambda: MotionBlurConfig(exposure_s=0.01, samples=1), "motion_blur.samples"),
    (lambda: RollingShutterConfig(readout_s=-1e-3), "rolling_shutter.readout_s"),
])
def test_bad_motion_configs_name_the_field(make, field):
    with pytest.raises(ConfigError, match=field):
        make()
