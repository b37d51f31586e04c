"""Model canvases: letterboxed target views, covered references, crops back to the camera."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.backends.base import Generated
from worldfm_ros.backends.canvas import CanvasBackend, cover, crop_to_camera, letterbox
from worldfm_ros.camera import PinholeCamera
from worldfm_ros.render.fill import push_pull_fill
from worldfm_ros.render.pointcloud import PointCloudRenderer


def test_letterboxed_canvas_keeps_square_pixels_and_the_horizontal_field_of_view():
    cam = PinholeCamera.from_fov(640, 480, 90.0)
    canvas = letterbox(cam, 512)
    assert canvas.camera.fx == pytest.approx(canvas.camera.fy)
    assert canvas.camera.fx == pytest.approx(256.0)  # 90 degrees across 512 px
    assert canvas.offset == pytest.approx((0.0, 64.0))


def test_a_point_projects_to_corresponding_pixels_in_camera_and_canvas():
    cam = PinholeCamera(320, 200, 180.0, 170.0, 150.0, 95.0)
    canvas = letterbox(cam, 128)
    X = np.array([0.3, -0.2, 2.0])
    u, v = cam.fx * X[0] / X[2] + cam.cx, cam.fy * X[1] / X[2] + cam.cy
    uc, vc = canvas.camera.fx * X[0] / X[2] + canvas.camera.cx, canvas.camera.fy * X[1] / X[2] + canvas.camera.cy
    s, (ox, oy) = canvas.scale, canvas.offset
    assert (uc, vc) == pytest.approx(((u + 0.5) * s - 0.5 + ox, (v + 0.5) * s - 0.5 + oy))


def test_crop_of_a_canvas_render_matches_the_camera_render_of_a_smooth_scene():
    # A fronto-parallel plane with a horizontal colour ramp, densely sampled.
    xs, ys = np.meshgrid(np.linspace(-3, 3, 900), np.linspace(-3, 3, 900))
    pts = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 2.0)], 1).astype(np.float32)
    red = ((xs.ravel() + 3) / 6 * 255).astype(np.uint8)
    colors = np.stack([red, np.full_like(red, 100), 255 - red], 1)
    renderer = PointCloudRenderer(pts, colors)
    cam = PinholeCamera.from_fov(160, 120, 60.0)
    canvas = letterbox(cam, 128)
    direct = renderer.render(cam, np.eye(4), point_radius=1).rgb.astype(int)
    cropped = crop_to_camera(renderer.render(canvas.camera, np.eye(4), point_radius=1).rgb, canvas, cam).astype(int)
    assert np.median(np.abs(direct - cropped)) <= 2


def test_cover_centre_crops_a_wide_keyframe_and_shifts_its_principal_point():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 255
    K = np.array([[100.0, 0, 99.5], [0, 100.0, 49.5], [0, 0, 1]])
    out, K_out = cover(image, K, 50)
    assert out.shape == (50, 50, 3)
    assert K_out[0, 0] == pytest.approx(50.0) and K_out[0, 2] == pytest.approx(24.5)
    assert out[:, :25].max() == 0 and out[:, 26:].min() == 255


class RecordingBackend(CanvasBackend):
    """A CanvasBackend stand-in for a model trained at 32×32: records the canvas requests and
    answers with an image whose red/green channels encode the canvas column/row (×4)."""

    name = "recording"
    canvas_size = 32

    def __init__(self) -> None:
        self.requests = []

    def generate_canvas(self, requests):
        self.requests += requests
        v, u = np.mgrid[0:32, 0:32]
        return [Generated(np.stack([u * 4, v * 4, np.zeros_like(u)], -1).astype(np.uint8)) for _ in requests]


class BrighteningResidualBackend(RecordingBackend):
    """A residual model at 32×32 whose only correction is +10 levels everywhere."""

    corrects_fill = True
    correction = "everywhere"

    def generate_canvas(self, requests):
        self.requests += requests
        return [Generated(np.clip(push_pull_fill(r.render_rgb, r.render_valid).astype(int) + 10, 0, 255)
                          .astype(np.uint8)) for r in requests]


def simulate(backend, width=48, height=36):
    """The first frame of a small procedural room through ``backend``."""
    from worldfm_ros.build.procedural import make_room_scene, random_room
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator
    from worldfm_ros.sensors.rig import CameraConfig

    cam = PinholeCamera.from_fov(width, height, 90)
    scene = make_room_scene(random_room(4, (6.0, 5.0, 2.8), 0), cam, num_views=8, num_keyframes=2)
    sim = Simulator(SimConfig(camera=CameraConfig(width, height, 90.0), initial_pose=[3.0, 2.5, 0.0, 0.0]), backend)
    sim.load_scene(scene)
    return sim.reset().frame


def test_a_residual_backends_correction_lands_on_the_fill_at_camera_resolution():
    frame = simulate(BrighteningResidualBackend(), 96, 72)
    anchor_frame = push_pull_fill(frame.render_rgb, frame.valid).astype(int)
    unsaturated = anchor_frame < 240
    # 9 only where a canvas pixel the crop interpolates from saturated at 255
    assert np.isin(frame.rgb.astype(int)[unsaturated] - anchor_frame[unsaturated], (9, 10)).all()
    assert np.mean(frame.rgb.astype(int)[unsaturated] - anchor_frame[unsaturated]) > 9.9


def test_a_residual_backend_limited_to_holes_leaves_the_covered_pixels_as_the_anchor_rendered_them():
    backend = BrighteningResidualBackend()
    backend.correction = "holes"
    frame = simulate(backend, 96, 72)
    anchor_frame = push_pull_fill(frame.render_rgb, frame.valid).astype(int)
    assert (~frame.valid).any()
    assert np.array_equal(frame.rgb[frame.valid], anchor_frame[frame.valid])
    holes = ~frame.valid & (anchor_frame.max(axis=-1) < 240)
    assert np.mean(frame.rgb.astype(int)[holes] - anchor_frame[holes]) > 9.9


def test_a_sized_backend_gets_canvas_renders_and_its_output_returns_at_camera_size():
    cam = PinholeCamera.from_fov(48, 36, 90)
    backend = RecordingBackend()
    frame = simulate(backend)
    req = backend.requests[-1]
    assert frame.rgb.shape == (36, 48, 3)
    assert req.render_rgb.shape == (32, 32, 3) and req.reference_rgb.shape == (32, 32, 3)
    assert req.K[0, 0] == pytest.approx(req.K[1, 1]) and req.K[0, 0] == pytest.approx(16.0)
    # camera pixel (u, v) shows canvas coordinate ((u + 0.5) s - 0.5 + ox, (v + 0.5) s - 0.5 + oy)
    s, (ox, oy) = letterbox(cam, 32).scale, letterbox(cam, 32).offset
    for u, v in [(10, 5), (24, 18), (40, 30)]:
        assert frame.rgb[v, u, 0] / 4 == pytest.approx((u + 0.5) * s - 0.5 + ox, abs=0.3)
        assert frame.rgb[v, u, 1] / 4 == pytest.approx((v + 0.5) * s - 0.5 + oy, abs=0.3)
