"""Point-cloud renderer: exact pixels and depths on analytic scenes, z-buffer rules, CPU = CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import CameraError
from worldfm_ros.render.pointcloud import PointCloudRenderer

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def render(points, colors, camera, c2w=None, point_radius=0, device="cpu"):
    renderer = PointCloudRenderer(np.asarray(points, np.float32), np.asarray(colors, np.uint8), device=device)
    return renderer.render(camera, np.eye(4) if c2w is None else c2w, point_radius=point_radius)


def pose(rotvec_deg=(0.0, 0.0, 0.0), t=(0.0, 0.0, 0.0)) -> np.ndarray:
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_rotvec(rotvec_deg, degrees=True).as_matrix()
    c2w[:3, 3] = t
    return c2w


def reference_render(points, colors, camera, c2w, near=1e-3, point_radius=0):
    """Brute force in numpy: every point, float32 ops in the documented order, sort-based z-test;
    with point_radius r, each point is drawn at every pixel of the (2r + 1)² square around its own."""
    w2c = np.linalg.inv(c2w).astype(np.float32)
    x, y, z = (np.asarray(points, np.float32)[:, i] for i in range(3))
    xc, yc, zc = (((x * w2c[i, 0] + y * w2c[i, 1]) + z * w2c[i, 2]) + w2c[i, 3] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.rint(xc * np.float32(camera.fx) / zc + np.float32(camera.cx))
        v = np.rint(yc * np.float32(camera.fy) / zc + np.float32(camera.cy))
    span = range(-point_radius, point_radius + 1)
    offsets = [(du, dv) for dv in span for du in span]
    n = len(zc)
    u = np.concatenate([u + du for du, _ in offsets])
    v = np.concatenate([v + dv for _, dv in offsets])
    zc = np.tile(zc, len(offsets))
    colors = np.tile(np.asarray(colors), (len(offsets), 1))
    ok = (zc > np.float32(near)) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    idx = np.flatnonzero(ok)
    pix = v[ok].astype(np.int64) * camera.width + u[ok].astype(np.int64)
    order = np.lexsort((idx % n, zc[ok], pix))  # by pixel, then depth, then point index
    first = np.ones(len(order), bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    win = order[first]
    depth = np.zeros(camera.height * camera.width, np.float32)
    rgb = np.zeros((camera.height * camera.width, 3), np.uint8)
    depth[pix[win]] = zc[ok][win]
    rgb[pix[win]] = np.asarray(colors)[idx[win]]
    return rgb.reshape(camera.height, camera.width, 3), depth.reshape(camera.height, camera.width)


def test_fronto_parallel_plane_covers_every_pixel_at_its_depth():
    cam = PinholeCamera(8, 6, fx=10.0, fy=10.0, cx=3.5, cy=2.5)
    u, v = np.meshgrid(np.arange(8), np.arange(6))
    z = 2.0
    points = np.stack([(u - 3.5) * z / 10.0, (v - 2.5) * z / 10.0, np.full(u.shape, z)], -1).reshape(-1, 3)
    colors = np.stack([u * 30, v * 40, np.full(u.shape, 7)], -1).reshape(-1, 3)
    out = render(points, colors, cam)
    assert out.valid.all()
    assert np.all(out.depth == np.float32(2.0))
    assert tuple(out.rgb[0, 0]) == (0, 0, 7)
    assert tuple(out.rgb[5, 7]) == (210, 200, 7)


def test_cube_corners_land_on_hand_computed_pixels():
    # Unit cube centred 4 m ahead, f = 90 px, principal point (32, 24):
    # front corners (±0.5, ±0.5, 3.5): u = 32 ± 90 * 0.5 / 3.5 = 32 ± 12.857 -> 45 / 19, v -> 37 / 11;
    # back corners  (±0.5, ±0.5, 4.5): u = 32 ± 90 * 0.5 / 4.5 = 32 ± 10     -> 42 / 22, v -> 34 / 14.
    cam = PinholeCamera(64, 48, fx=90.0, fy=90.0, cx=32.0, cy=24.0)
    corners = np.array([[sx, sy, 4.0 + sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)])
    out = render(corners, np.full((8, 3), 200), cam)
    expected = {(19, 11): 3.5, (45, 11): 3.5, (19, 37): 3.5, (45, 37): 3.5,
                (22, 14): 4.5, (42, 14): 4.5, (22, 34): 4.5, (42, 34): 4.5}
    assert {(int(u), int(v)) for v, u in zip(*np.nonzero(out.valid))} == set(expected)
    for (u, v), z in expected.items():
        assert out.depth[v, u] == np.float32(z)


def test_cube_surface_shows_its_front_face():
    cam = PinholeCamera(64, 48, fx=90.0, fy=90.0, cx=32.0, cy=24.0)
    g = np.linspace(-0.5, 0.5, 41)
    a, b = (m.ravel() for m in np.meshgrid(g, g))
    faces = []
    for axis in range(3):
        for side in (-0.5, 0.5):
            f = np.empty((len(a), 3))
            f[:, axis] = side
            f[:, [i for i in range(3) if i != axis]] = np.stack([a, b], 1)
            faces.append(f)
    points = np.concatenate(faces) + [0.0, 0.0, 4.0]
    colors = np.where(np.isclose(points[:, 2], 3.5)[:, None], RED, BLUE)
    out = render(points, colors, cam)
    # The front face spans u in [19, 45]: its interior shows only the front face, at 3.5 m.
    assert np.all(out.depth[15:34, 23:42] == np.float32(3.5))
    assert np.all(out.rgb[15:34, 23:42] == RED)
    assert not out.valid[0, 0] and not out.valid[24, 50]


def test_nearest_point_wins_regardless_of_order():
    cam = PinholeCamera(16, 16, fx=20.0, fy=20.0, cx=8.0, cy=8.0)
    near, far = [0.0, 0.0, 1.0], [0.0, 0.0, 3.0]
    for points, colors in (([near, far], [RED, GREEN]), ([far, near], [GREEN, RED])):
        out = render(points, colors, cam)
        assert tuple(out.rgb[8, 8]) == RED
        assert out.depth[8, 8] == np.float32(1.0)
        assert out.valid.sum() == 1


def test_equal_depth_tie_goes_to_lowest_point_index():
    cam = PinholeCamera(16, 16, fx=20.0, fy=20.0, cx=8.0, cy=8.0)
    # Both points round to pixel (8, 8) at the same depth.
    points = [[0.01, 0.0, 2.0], [0.0, 0.01, 2.0], [0.0, 0.0, 2.0]]
    assert tuple(render(points, [GREEN, RED, BLUE], cam).rgb[8, 8]) == GREEN
    assert tuple(render(points, [BLUE, GREEN, RED], cam).rgb[8, 8]) == BLUE


def test_points_at_or_behind_the_near_plane_are_culled():
    cam = PinholeCamera(16, 16, fx=20.0, fy=20.0, cx=8.0, cy=8.0)
    points = [[0.0, 0.0, -2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1e-3], [0.1, 0.1, -1e-4]]
    assert not render(points, [RED] * 4, cam).valid.any()
    assert render([[0.0, 0.0, 2e-3]], [RED], cam).valid[8, 8]


def test_points_just_off_the_image_do_not_wrap_to_other_rows():
    cam = PinholeCamera(10, 10, fx=10.0, fy=10.0, cx=0.0, cy=0.0)
    # u = -1 and u = 10 (one pixel left/right of the image), v = -1 and v = 10.
    points = [[-0.1, 0.5, 1.0], [1.0, 0.5, 1.0], [0.5, -0.1, 1.0], [0.5, 1.0, 1.0]]
    assert not render(points, [RED] * 4, cam).valid.any()


def test_empty_pixels_are_black_with_zero_depth():
    cam = PinholeCamera(16, 16, fx=20.0, fy=20.0, cx=8.0, cy=8.0)
    out = render([[0.0, 0.0, 2.0]], [[255, 255, 255]], cam)
    assert out.rgb.shape == (16, 16, 3) and out.rgb.dtype == np.uint8
    assert out.depth.dtype == np.float32 and out.valid.dtype == bool
    empty = ~out.valid
    assert empty.sum() == 255 and not out.rgb[empty].any() and not out.depth[empty].any()


def test_splat_radius_fills_the_square_with_the_nearest_depth():
    cam = PinholeCamera(16, 16, fx=20.0, fy=20.0, cx=8.0, cy=8.0)
    # far point at pixel (8, 8), depth 2; near point at pixel (10, 8), depth 1.
    points = [[0.0, 0.0, 2.0], [0.1, 0.0, 1.0]]
    out = render(points, [GREEN, RED], cam, point_radius=1)
    assert np.array_equal(np.argwhere(out.valid)[:, ::-1].tolist(),
                          [[u, v] for v in (7, 8, 9) for u in range(7, 12)])
    assert np.all(out.depth[7:10, 7:9] == np.float32(2.0)) and np.all(out.rgb[7:10, 7:9] == GREEN)
    # Column 9 is covered by both squares: the nearer point fills it.
    assert np.all(out.depth[7:10, 9:12] == np.float32(1.0)) and np.all(out.rgb[7:10, 9:12] == RED)


def test_splat_is_clipped_at_the_image_border():
    cam = PinholeCamera(16, 16, fx=20.0, fy=20.0, cx=0.0, cy=0.0)
    out = render([[0.0, 0.0, 1.0], [-0.1, -0.1, 1.0]], [RED, GREEN], cam, point_radius=2)
    # A point at (0, 0) covers the 3x3 corner; one at (-2, -2) covers only pixel (0, 0), farther index.
    assert out.valid.sum() == 9 and out.valid[:3, :3].all()
    assert tuple(out.rgb[0, 0]) == RED


def test_matches_brute_force_reference_over_random_views():
    rng = np.random.default_rng(3)
    cam = PinholeCamera(48, 32, fx=30.0, fy=31.0, cx=23.7, cy=15.2)
    # Dense enough for many blocks; includes points right at and around the camera.
    points = rng.uniform(-3, 3, (30000, 3)).astype(np.float32)
    points[:200] = rng.normal(0, 0.01, (200, 3))
    points[200:400] = np.round(points[200:400], 1)  # exact depth ties
    colors = rng.integers(0, 256, (len(points), 3), dtype=np.uint8)
    renderer = PointCloudRenderer(points, colors)
    for i in range(12):
        c2w = pose(rng.uniform(-180, 180, 3), rng.uniform(-1, 1, 3) if i else (0, 0, 0))
        out = renderer.render(cam, c2w)
        rgb, depth = reference_render(points, colors, cam, c2w)
        assert np.array_equal(out.depth, depth)
        assert np.array_equal(out.rgb, rgb)
        assert np.array_equal(out.valid, depth > 0)


@pytest.mark.parametrize("point_radius", [1, 2, 3])
def test_splats_match_brute_force_reference_over_random_views(point_radius):
    rng = np.random.default_rng(4)
    cam = PinholeCamera(40, 28, fx=26.0, fy=27.0, cx=19.6, cy=13.1)
    points = rng.uniform(-3, 3, (8000, 3)).astype(np.float32)
    points[:100] = np.round(points[:100], 1)  # exact depth ties
    colors = rng.integers(0, 256, (len(points), 3), dtype=np.uint8)
    renderer = PointCloudRenderer(points, colors)
    for i in range(6):
        c2w = pose(rng.uniform(-180, 180, 3), rng.uniform(-1, 1, 3))
        out = renderer.render(cam, c2w, point_radius=point_radius)
        rgb, depth = reference_render(points, colors, cam, c2w, point_radius=point_radius)
        assert np.array_equal(out.depth, depth)
        assert np.array_equal(out.rgb, rgb)


def test_block_culling_keeps_points_at_the_frustum_edges_and_near_plane():
    rng = np.random.default_rng(11)
    cam = PinholeCamera(40, 30, fx=35.0, fy=35.0, cx=19.5, cy=14.5)
    # Tight clusters (each fills whole culling blocks) on rays through pixels within 1.5 px of
    # the image border, or just past the near plane: what a conservative block test must keep.
    clusters = []
    for i in range(96):
        edge = rng.uniform(-1.5, 1.5)
        u, v = [(-0.5 + edge, rng.uniform(0, 29)), (39.5 + edge, rng.uniform(0, 29)),
                (rng.uniform(0, 39), -0.5 + edge), (rng.uniform(0, 39), 29.5 + edge)][i % 4]
        z0 = 1.0001e-3 if i % 3 == 0 else float(np.exp(rng.uniform(np.log(0.01), np.log(30.0))))
        z = z0 * rng.uniform(1.0, 1.0001, 600)
        du, dv = rng.uniform(-0.02, 0.02, (2, 600))
        clusters.append(np.stack([(u + du - cam.cx) / cam.fx * z, (v + dv - cam.cy) / cam.fy * z, z], 1))
    c2w = pose((20.0, -30.0, 10.0), (0.5, 0.2, -1.0))
    points = (np.concatenate(clusters) @ c2w[:3, :3].T + c2w[:3, 3]).astype(np.float32)
    colors = rng.integers(0, 256, (len(points), 3), dtype=np.uint8)
    out = PointCloudRenderer(points, colors).render(cam, c2w)
    rgb, depth = reference_render(points, colors, cam, c2w)
    assert out.valid.sum() > 30
    assert np.array_equal(out.depth, depth) and np.array_equal(out.rgb, rgb)


def test_own_backprojection_reproduces_keyframe_image():
    rng = np.random.default_rng(7)
    cam = PinholeCamera(80, 60, fx=70.0, fy=70.0, cx=39.5, cy=29.5)
    c2w = pose((10.0, -25.0, 5.0), (0.4, -0.2, 1.5))
    u, v = np.meshgrid(np.arange(cam.width), np.arange(cam.height))
    depth = (2.0 + 0.01 * u + 0.5 * np.sin(v / 9.0)).astype(np.float32)  # slanted, curved surface
    image = rng.integers(0, 256, (cam.height, cam.width, 3), dtype=np.uint8)
    cam_pts = np.stack([(u - cam.cx) / cam.fx * depth, (v - cam.cy) / cam.fy * depth, depth], -1).reshape(-1, 3)
    world = cam_pts @ c2w[:3, :3].T + c2w[:3, 3]
    out = render(world, image.reshape(-1, 3), cam, c2w)
    assert out.valid.mean() > 0.99
    err = out.rgb[out.valid].astype(np.float64) - image[out.valid]
    mse = float(np.mean(err**2))
    psnr = np.inf if mse == 0 else 10 * np.log10(255.0**2 / mse)
    assert psnr > 40.0
    assert np.allclose(out.depth[out.valid], depth[out.valid], rtol=1e-5)


def test_invalid_pose_raises_camera_error():
    renderer = PointCloudRenderer(np.zeros((1, 3), np.float32), np.zeros((1, 3), np.uint8))
    cam = PinholeCamera(8, 8, 10.0, 10.0, 4.0, 4.0)
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(CameraError, match="c2w"):
        renderer.render(cam, bad)
    with pytest.raises(CameraError, match="c2w"):
        renderer.render(cam, np.eye(3))


def test_negative_point_radius_raises_camera_error():
    renderer = PointCloudRenderer(np.zeros((1, 3), np.float32), np.zeros((1, 3), np.uint8))
    with pytest.raises(CameraError, match="point_radius"):
        renderer.render(PinholeCamera(8, 8, 10.0, 10.0, 4.0, 4.0), np.eye(4), point_radius=-1)


def test_render_tensors_match_numpy_render():
    rng = np.random.default_rng(1)
    points = rng.uniform(-2, 2, (5000, 3)).astype(np.float32) + [0, 0, 4]
    colors = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    renderer = PointCloudRenderer(points, colors)
    cam = PinholeCamera(40, 30, 30.0, 30.0, 19.5, 14.5)
    tensors = renderer.render_tensors(cam, np.eye(4), point_radius=1)
    out = renderer.render(cam, np.eye(4), point_radius=1)
    assert isinstance(tensors.rgb, torch.Tensor) and tensors.rgb.device.type == "cpu"
    assert np.array_equal(tensors.rgb.numpy(), out.rgb) and np.array_equal(tensors.depth.numpy(), out.depth)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("point_radius, footprint_spacing", [(0, 0.0), (2, 0.0), (0, 0.03)])
def test_cpu_and_cuda_renders_are_identical(point_radius, footprint_spacing):
    rng = np.random.default_rng(5)
    points = rng.uniform(-4, 4, (200_000, 3)).astype(np.float32)
    points[:1000] = np.round(points[:1000], 1)
    colors = rng.integers(0, 256, (len(points), 3), dtype=np.uint8)
    cpu = PointCloudRenderer(points, colors, device="cpu")
    gpu = PointCloudRenderer(points, colors, device="cuda")
    cam = PinholeCamera.from_fov(320, 240, 75.0)
    for _ in range(5):
        c2w = pose(rng.uniform(-180, 180, 3), rng.uniform(-1, 1, 3))
        a, b = (r.render(cam, c2w, point_radius, footprint_spacing) for r in (cpu, gpu))
        assert np.array_equal(a.depth, b.depth)
        assert np.array_equal(a.rgb, b.rgb)
        assert np.array_equal(a.valid, b.valid)


def test_bench_render_command_prints_a_table_with_identical_outputs(capsys):
    import argparse

    from worldfm_ros.eval import bench_render

    parser = argparse.ArgumentParser()
    bench_render.add_arguments(parser)
    args = parser.parse_args(["--points", "20000", "--repeats", "2", "--views", "3", "--width", "64", "--height", "48"])
    assert bench_render.run(args) == 0
    out = capsys.readouterr().out
    assert "| PointCloudRenderer |" in out and "| baseline" in out
    assert out.rstrip().endswith("| yes |")
