"""Lens distortion: blobs at known 3D points, rendered on the lens's canvas by the real renderer and
distorted, land where OpenCV's own projection of the same points with the same K and D puts them."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import pytest
import yaml

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import CameraError, ConfigError
from worldfm_ros.render.pointcloud import PointCloudRenderer
from worldfm_ros.sensors.lens import MAX_CANVAS_SCALE, MAX_RAY_DEG, Lens, LensConfig, load_calibration

CAMERA = PinholeCamera(640, 480, 500.0, 500.0, 322.5, 237.5)
FISHEYE = PinholeCamera(640, 480, 330.0, 330.0, 319.5, 239.5)
# A fisheye this wide needs a canvas beyond MAX_CANVAS_SCALE at its own focal length.
WIDE_FISHEYE = PinholeCamera(640, 480, 300.0, 300.0, 319.5, 239.5)
LENSES = {
    "plumb_bob_barrel": (CAMERA, LensConfig("plumb_bob", [-0.28, 0.07, 0.0008, -0.0005, -0.01])),
    "plumb_bob_pincushion": (CAMERA, LensConfig("plumb_bob", [0.12, 0.02, -0.0006, 0.0004, 0.0])),
    "equidistant": (FISHEYE, LensConfig("equidistant", [0.05, -0.01, 0.002, -0.0005])),
    "equidistant_wide": (WIDE_FISHEYE, LensConfig("equidistant", [0.05, -0.01, 0.002, -0.0005])),
}
BLOB_SIGMA_PX = 2.0  # Gaussian blob σ at the output's focal length, pixels
BACKGROUND_Z = 4.0  # metres
# Blob centre error against OpenCV's projection, output pixels.
MEAN_ERROR_PX = 0.05
MAX_ERROR_PX = 0.1


def opencv_project(points: np.ndarray, camera: PinholeCamera, config: LensConfig) -> np.ndarray:
    """(N, 3) optical-frame points -> (N, 2) pixels by OpenCV itself (the reference)."""
    pts, zero, D = points.reshape(-1, 1, 3).astype(np.float64), np.zeros(3), np.array(config.D, np.float64)
    if config.model == "equidistant":
        return cv2.fisheye.projectPoints(pts, zero, zero, camera.K, D)[0].reshape(-1, 2)
    return cv2.projectPoints(pts, zero, zero, camera.K, D)[0].reshape(-1, 2)


def blob_centres(camera: PinholeCamera, config: LensConfig, margin: float = 14.0) -> np.ndarray:
    """(N, 3) optical-frame points, each at its own depth, that OpenCV projects onto a 7 x 5 grid of
    output pixels from ``margin`` pixels inside the corners to the centre."""
    us, vs = np.meshgrid(np.linspace(margin, camera.width - 1 - margin, 7),
                         np.linspace(margin, camera.height - 1 - margin, 5))
    targets = np.stack([us.ravel(), vs.ravel()], axis=1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-14)
    D = np.array(config.D, np.float64)
    if config.model == "equidistant":
        rays = cv2.fisheye.undistortPoints(targets, camera.K, D, criteria=criteria).reshape(-1, 2)
    else:
        rays = cv2.undistortPoints(targets, camera.K, D, criteria=criteria).reshape(-1, 2)
    z = 1.5 + 0.04 * np.arange(len(rays))
    centres = np.concatenate([rays, np.ones((len(rays), 1))], axis=1) * z[:, None]
    assert np.abs(opencv_project(centres, camera, config) - targets.reshape(-1, 2)).max() < 1e-6
    return centres


def blob_scene(canvas: PinholeCamera, centres: np.ndarray, sigma_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """A black wall at BACKGROUND_Z and, at each centre, a fronto-parallel disc carrying a grey
    Gaussian blob (σ = sigma_rad · z metres, radius 4 σ). One point per canvas pixel centre on every
    surface its ray meets, so the render is an exact point sample of the scene and what the test
    measures is the lens, not the renderer's rounding of points to pixels. -> points (N, 3) float32,
    colours (N, 3) uint8."""
    def rays(u: np.ndarray, v: np.ndarray) -> np.ndarray:  # canvas pixel centres -> (N, 3) rays at z = 1
        return np.stack([(u - canvas.cx) / canvas.fx, (v - canvas.cy) / canvas.fy, np.ones(u.shape)], -1).reshape(-1, 3)

    u, v = np.meshgrid(np.arange(canvas.width, dtype=np.float64), np.arange(canvas.height, dtype=np.float64))
    points, colors = [rays(u, v) * BACKGROUND_Z], [np.zeros((u.size, 3), np.uint8)]
    reach = 4.0 * sigma_rad * max(canvas.fx, canvas.fy) + 2.0  # disc radius on the canvas, pixels
    for centre in centres:
        sigma = sigma_rad * centre[2]
        cu, cv = canvas.fx * centre[0] / centre[2] + canvas.cx, canvas.fy * centre[1] / centre[2] + canvas.cy
        u, v = np.meshgrid(np.arange(math.floor(cu - reach), math.ceil(cu + reach) + 1, dtype=np.float64),
                           np.arange(math.floor(cv - reach), math.ceil(cv + reach) + 1, dtype=np.float64))
        on_disc = rays(u, v) * centre[2]
        r2 = np.sum((on_disc - centre) ** 2, axis=1)
        keep = r2 < (4.0 * sigma) ** 2
        grey = np.round(255.0 * np.exp(-r2[keep] / (2.0 * sigma**2))).astype(np.uint8)
        points.append(on_disc[keep])
        colors.append(np.repeat(grey[:, None], 3, axis=1))
    return np.concatenate(points).astype(np.float32), np.concatenate(colors)


def measured_centres(grey: np.ndarray) -> np.ndarray:
    """(M, 2) intensity-weighted centroids (u, v) of the blobs (8-connected grey > 0) in ``grey``."""
    count, labels = cv2.connectedComponents((grey > 0).view(np.uint8), connectivity=8)
    weight = grey.astype(np.float64).ravel()
    v, u = np.indices(grey.shape)
    total = np.bincount(labels.ravel(), weight, count)[1:]
    cu = np.bincount(labels.ravel(), weight * u.ravel(), count)[1:] / total
    cv = np.bincount(labels.ravel(), weight * v.ravel(), count)[1:] / total
    return np.stack([cu, cv], axis=1)


@functools.cache
def distorted_blobs(name: str):
    """Render the blob scene on ``name``'s canvas and distort it (once per lens; callers only read)
    -> (lens, centres (N, 3), rgb, depth, valid)."""
    camera, config = LENSES[name]
    lens = Lens(camera, config)
    centres = blob_centres(camera, config)
    points, colors = blob_scene(lens.render_camera, centres, BLOB_SIGMA_PX / camera.fx)
    render = PointCloudRenderer(points, colors).render(lens.render_camera, np.eye(4))
    assert render.valid.all()
    return (lens, centres, *lens.apply(render.rgb, render.depth, render.valid))


@pytest.mark.parametrize("name", sorted(LENSES))
def test_blobs_land_where_opencv_projects_them(name: str) -> None:
    lens, centres, rgb, depth, valid = distorted_blobs(name)
    camera, config = LENSES[name]
    assert rgb.shape == (camera.height, camera.width, 3) and rgb.dtype == np.uint8
    assert depth.shape == valid.shape == (camera.height, camera.width) and depth.dtype == np.float32
    expected = opencv_project(centres, camera, config)
    found = measured_centres(rgb[..., 0])
    assert len(found) == len(expected)
    distance = np.linalg.norm(found[None, :, :] - expected[:, None, :], axis=2)  # (expected, found)
    match = distance.argmin(axis=1)
    assert len(set(match.tolist())) == len(expected)
    error = distance[np.arange(len(expected)), match]
    assert error.mean() < MEAN_ERROR_PX, error
    assert error.max() < MAX_ERROR_PX, error
    corner = (np.minimum(expected[:, 0], camera.width - 1 - expected[:, 0]) < 20) & \
             (np.minimum(expected[:, 1], camera.height - 1 - expected[:, 1]) < 20)
    assert corner.sum() == 4 and error[corner].max() < MAX_ERROR_PX
    np.testing.assert_allclose(lens.project(centres), expected, atol=1e-9)


@pytest.mark.parametrize("name", ["plumb_bob_barrel", "equidistant"])
def test_depth_is_the_z_of_the_surface_each_pixel_sees(name: str) -> None:
    lens, centres, rgb, depth, valid = distorted_blobs(name)
    assert valid.all()
    count, labels = cv2.connectedComponents((rgb[..., 0] > 0).view(np.uint8), connectivity=8)
    expected = opencv_project(centres, *LENSES[name])
    for k in range(1, count):
        pixels = labels == k
        v, u = np.nonzero(pixels)
        blob = np.argmin(np.hypot(expected[:, 0] - u.mean(), expected[:, 1] - v.mean()))
        assert np.all(depth[pixels] == np.float32(centres[blob, 2]))
    far = np.ones(depth.shape, bool)
    for u0, v0 in expected:  # away from every blob's disc (radius 4 σ, under 12 output pixels)
        far[max(0, int(v0) - 14):int(v0) + 15, max(0, int(u0) - 14):int(u0) + 15] = False
    assert np.all(depth[far] == np.float32(BACKGROUND_Z))


def test_canvas_holds_every_ray_within_its_size_bound() -> None:
    for name, (camera, config) in LENSES.items():
        lens = Lens(camera, config)
        canvas = lens.render_camera
        assert canvas.width <= MAX_CANVAS_SCALE * camera.width and canvas.height <= MAX_CANVAS_SCALE * camera.height
        if name == "equidistant_wide":
            assert lens.canvas_sampling < 1.0
        else:  # the centre is sampled exactly as densely as the output
            assert lens.canvas_sampling == 1.0 and (canvas.fx, canvas.fy) == (camera.fx, camera.fy)
        assert canvas.fx / canvas.fy == pytest.approx(camera.fx / camera.fy)
        # every output pixel's ray, by OpenCV, lands inside the canvas
        u, v = np.meshgrid(np.arange(camera.width, dtype=np.float64), np.arange(camera.height, dtype=np.float64))
        pixels = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
        criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-14)
        D = np.array(config.D, np.float64)
        if config.model == "equidistant":
            rays = cv2.fisheye.undistortPoints(pixels, camera.K, D, criteria=criteria).reshape(-1, 2)
        else:
            rays = cv2.undistortPoints(pixels, camera.K, D, criteria=criteria).reshape(-1, 2)
        cu, cv = canvas.fx * rays[:, 0] + canvas.cx, canvas.fy * rays[:, 1] + canvas.cy
        assert cu.min() >= 0.5 and cv.min() >= 0.5
        assert cu.max() <= canvas.width - 1.5 and cv.max() <= canvas.height - 1.5


def test_model_none_is_the_identity() -> None:
    lens = Lens(CAMERA, LensConfig())
    assert lens.render_camera == CAMERA and lens.canvas_sampling == 1.0
    assert lens.distortion_model == "plumb_bob" and lens.D == [0.0] * 5
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (CAMERA.height, CAMERA.width, 3), dtype=np.uint8)
    depth = rng.random((CAMERA.height, CAMERA.width), dtype=np.float32)
    valid = depth > 0.2
    copies = rgb.copy(), depth.copy(), valid.copy()
    out = lens.apply(rgb, depth, valid)
    for got, original in zip(out, copies):
        assert got.dtype == original.dtype and np.array_equal(got, original)
    assert Lens(CAMERA, LensConfig("none", [0.0] * 5)).render_camera == CAMERA


def test_pixels_whose_ray_is_off_the_canvas_are_empty() -> None:
    camera, config = LENSES["plumb_bob_barrel"]
    lens = Lens(camera, config)
    canvas = lens.render_camera
    rgb = np.full((canvas.height, canvas.width, 3), 200, np.uint8)
    depth = np.full((canvas.height, canvas.width), 2.0, np.float32)
    valid = np.ones(depth.shape, bool)
    # only the canvas's central window is delivered: output pixels seeing outside it get nothing
    inner = (slice(canvas.height // 4, 3 * canvas.height // 4), slice(canvas.width // 4, 3 * canvas.width // 4))
    window = np.zeros(depth.shape, bool)
    window[inner] = True
    out_rgb, out_depth, out_valid = lens.apply(np.where(window[..., None], rgb, 0).astype(np.uint8),
                                               np.where(window, depth, 0).astype(np.float32), window)
    assert out_valid[camera.height // 2, camera.width // 2] and not out_valid[0, 0]
    assert np.all(out_depth[~out_valid] == 0) and np.all(out_depth[out_valid] == 2.0)
    assert np.all(out_rgb[0, 0] == 0)
    with pytest.raises(CameraError, match="render_camera"):
        lens.apply(rgb[:-1], depth[:-1], valid[:-1])


def calibration_yaml(camera: PinholeCamera, model: str, D: list[float]) -> dict:
    """A camera_calibration_parsers file's fields."""
    return {
        "image_width": camera.width, "image_height": camera.height, "camera_name": "test",
        "camera_matrix": {"rows": 3, "cols": 3, "data": camera.K.ravel().tolist()},
        "distortion_model": model,
        "distortion_coefficients": {"rows": 1, "cols": len(D), "data": list(D)},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": np.eye(3).ravel().tolist()},
        "projection_matrix": {"rows": 3, "cols": 4, "data": np.hstack([camera.K, np.zeros((3, 1))]).ravel().tolist()},
    }


@pytest.mark.parametrize("name", ["plumb_bob_barrel", "equidistant"])
def test_calibration_yaml_reads_back_into_the_same_lens(tmp_path, name: str) -> None:
    camera, config = LENSES[name]
    path = tmp_path / "camera.yaml"
    path.write_text(yaml.safe_dump(calibration_yaml(camera, config.model, config.D)))
    read_camera, read_config = load_calibration(f"file://{path}")
    assert read_camera == camera and read_config == config
    original, again = Lens(camera, config), Lens(read_camera, read_config)
    assert again.render_camera == original.render_camera
    assert (again.distortion_model, again.D) == (config.model, config.D)
    rng = np.random.default_rng(5)
    canvas = original.render_camera
    frame = (rng.integers(0, 256, (canvas.height, canvas.width, 3), dtype=np.uint8),
             rng.random((canvas.height, canvas.width), dtype=np.float32),
             rng.random((canvas.height, canvas.width)) > 0.5)
    for a, b in zip(original.apply(*frame), again.apply(*frame)):
        assert np.array_equal(a, b)


def test_calibration_with_zero_distortion_is_an_ideal_lens(tmp_path) -> None:
    path = tmp_path / "camera.yaml"
    path.write_text(yaml.safe_dump(calibration_yaml(CAMERA, "plumb_bob", [0.0] * 5)))
    assert load_calibration(path) == (CAMERA, LensConfig())


@pytest.mark.parametrize("fields, match", [
    ({"distortion_model": "rational_polynomial"}, "distortion_model"),
    ({"distortion_coefficients": {"data": [0.1, 0.01, 0.0]}}, "distortion_coefficients"),
    ({"distortion_coefficients": {"data": [0.1, "x", 0.0, 0.0, 0.0]}}, "distortion_coefficients"),
    ({"distortion_coefficients": {"data": [0.1, math.nan, 0.0, 0.0, 0.0]}}, "distortion_coefficients"),
    ({"camera_matrix": {"data": [500.0, 0.0, 320.0]}}, "camera_matrix"),
    ({"image_width": "wide"}, "image_width"),
])
def test_bad_calibration_files_name_the_file_and_field(tmp_path, fields: dict, match: str) -> None:
    data = calibration_yaml(CAMERA, "plumb_bob", [-0.2, 0.05, 0.0, 0.0, 0.0])
    data.update(fields)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=match) as info:
        load_calibration(path)
    assert "bad.yaml" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("model, D, match", [
    ("plumb_bob", [-0.2, 0.05], "lens.D"),
    ("equidistant", [0.1, 0.0, 0.0, 0.0, 0.0], "lens.D"),
    ("plumb_bob", [-0.2, math.inf, 0.0, 0.0, 0.0], "lens.D"),
    ("none", [0.1], "lens.D"),
    ("fisheye", [0.1, 0.0, 0.0, 0.0], "lens.model"),
])
def test_bad_lens_configs_name_the_field(model: str, D: list[float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LensConfig(model, D)


def test_a_fisheye_too_wide_for_a_pinhole_canvas_is_refused() -> None:
    # 640x480 at f = 200 px: the corners are 2 rad (115 deg) off the axis
    with pytest.raises(ConfigError, match=f"below {MAX_RAY_DEG:g} deg"):
        Lens(PinholeCamera(640, 480, 200.0, 200.0, 319.5, 239.5), LensConfig("equidistant", [0.0] * 4))
    # just inside the limit is accepted: the corner ray at 79 degrees
    f = 400.0 / math.radians(79.0)
    Lens(PinholeCamera(640, 480, f, f, 319.5, 239.5), LensConfig("equidistant", [0.0] * 4))


def test_a_distortion_that_folds_over_is_refused() -> None:
    with pytest.raises(ConfigError, match="folds"):
        Lens(CAMERA, LensConfig("plumb_bob", [-0.6, 0.0, 0.0, 0.0, 0.0]))
