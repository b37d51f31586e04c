"""The shared back-projection convention: integer pixel centres, z-depth, camera-to-world."""

from __future__ import annotations

import numpy as np

from worldfm_ros.build.backproject import backproject_depth


K = np.array([[100.0, 0.0, 3.5], [0.0, 80.0, 2.5], [0.0, 0.0, 1.0]])


def test_pixel_centres_sit_at_integer_coordinates() -> None:
    depth = np.zeros((6, 8), np.float32)
    depth[2, 5] = 2.0
    points, _ = backproject_depth(depth, K, np.eye(4))
    np.testing.assert_allclose(points, [[(5 - 3.5) / 100 * 2, (2 - 2.5) / 80 * 2, 2.0]], rtol=1e-6)


def test_points_are_mapped_camera_to_world() -> None:
    c2w = np.eye(4)
    c2w[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # optical → x forward, y left, z up
    c2w[:3, 3] = [1.0, 2.0, 3.0]
    depth = np.zeros((6, 8), np.float32)
    depth[0, 0] = 4.0
    points, _ = backproject_depth(depth, K, c2w)
    x_c = np.array([(0 - 3.5) / 100 * 4, (0 - 2.5) / 80 * 4, 4.0])
    np.testing.assert_allclose(points[0], c2w[:3, :3] @ x_c + c2w[:3, 3], rtol=1e-6)


def test_projection_inverts_backprojection() -> None:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 5.0, (6, 8)).astype(np.float32)
    points, _ = backproject_depth(depth, K, np.eye(4))
    uv = (points @ K.T)[:, :2] / points[:, 2:]
    v, u = np.mgrid[0:6, 0:8]
    np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], 1), atol=1e-4)


def test_invalid_depth_is_skipped_and_colours_follow_their_pixels() -> None:
    depth = np.ones((4, 4), np.float32)
    depth[1, 2] = 0.0
    depth[3, 3] = np.inf
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    points, colors = backproject_depth(depth, K, np.eye(4), image)
    assert len(points) == 14
    assert colors[0].tolist() == [0, 1, 2] and colors[6].tolist() == image[1, 3].tolist()


def test_stride_keeps_every_nth_pixel_from_the_origin() -> None:
    depth = np.ones((6, 8), np.float32)
    points, _ = backproject_depth(depth, K, np.eye(4), stride=3)
    assert len(points) == 2 * 3
    np.testing.assert_allclose(points[1, 0], (3 - 3.5) / 100)


def test_max_depth_drops_far_pixels() -> None:
    depth = np.array([[1.0, 9.0]], np.float32)
    points, _ = backproject_depth(depth, np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1]]), np.eye(4), max_depth=5.0)
    assert len(points) == 1
