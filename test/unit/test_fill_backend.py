"""The anchor-only backend keeps rendered pixels and fills holes from their surroundings."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.backends.fill_backend import FillBackend
from worldfm_ros.backends.base import FrameRequest
from worldfm_ros.errors import ConfigError
from worldfm_ros.render.fill import push_pull_fill


def request(rgb: np.ndarray, valid: np.ndarray) -> FrameRequest:
    h, w = valid.shape
    return FrameRequest(rgb, np.where(valid, 1.0, 0.0).astype(np.float32), valid, np.eye(3), np.eye(4))


def test_push_pull_keeps_valid_pixels_and_fills_a_hole_with_the_surrounding_colour():
    rgb = np.full((32, 32, 3), (200, 40, 10), np.uint8)
    valid = np.ones((32, 32), bool)
    valid[10:20, 10:20] = False
    rgb[~valid] = 0
    out = push_pull_fill(rgb, valid)
    assert np.array_equal(out[valid], rgb[valid])
    assert np.abs(out[~valid].astype(int) - [200, 40, 10]).max() <= 1


def test_push_pull_blends_between_two_colours_across_a_hole():
    rgb = np.zeros((16, 32, 3), np.uint8)
    rgb[:, :16] = 0
    rgb[:, 16:] = 255
    valid = np.ones((16, 32), bool)
    valid[:, 12:20] = False
    out = push_pull_fill(rgb, valid)
    row = out[8, 12:20, 0].astype(int)
    assert np.all(np.diff(row) >= 0) and row[0] < 128 < row[-1]


@pytest.mark.parametrize("fill", ["push_pull", "telea"])
def test_backend_returns_an_rgb_frame_of_the_request_size(fill):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)
    valid = rng.random((24, 40)) > 0.2
    out = FillBackend(fill=fill).generate_one(request(rgb, valid))
    assert out.shape == (24, 40, 3) and out.dtype == np.uint8
    assert np.array_equal(out[valid], rgb[valid])


def test_unknown_fill_method_is_a_config_error():
    with pytest.raises(ConfigError, match="fill"):
        FillBackend(fill="magic")


def test_residual_base_is_the_fill_or_mid_grey_for_an_empty_render():
    from worldfm_ros.render.fill import residual_base

    rgb = np.zeros((8, 8, 3), np.uint8)
    valid = np.zeros((8, 8), bool)
    assert (residual_base(rgb, valid) == 128).all()
    rgb[2, 2], valid[2, 2] = (10, 200, 30), True
    assert np.array_equal(residual_base(rgb, valid), push_pull_fill(rgb, valid))


def test_background_fill_takes_the_far_surface_where_near_and_far_points_mix():
    # Sparse near points (red, 1 m) over a wall (green, 3 m), a third of the pixels empty: the
    # empty pixels belong to the wall behind the near surface's gaps.
    rng = np.random.default_rng(0)
    near = rng.random((64, 64)) < 0.35
    valid = rng.random((64, 64)) > 0.3
    rgb = np.where(near[..., None], np.uint8([200, 0, 0]), np.uint8([0, 200, 0])).astype(np.uint8)
    depth = np.where(near, 1.0, 3.0).astype(np.float32)
    rgb[~valid], depth[~valid] = 0, 0.0
    out = FillBackend(fill="background").generate_one(FrameRequest(rgb, depth, valid, np.eye(3), np.eye(4)))
    assert np.array_equal(out[valid], rgb[valid])
    filled, blended = out[~valid].astype(int), push_pull_fill(rgb, valid)[~valid].astype(int)
    assert (filled[:, 1] > filled[:, 0]).mean() > 0.99  # the wall's green
    assert blended[:, 0].mean() > 60 and filled[:, 0].mean() < 0.2 * blended[:, 0].mean()  # push-pull mixes in red


def test_background_fill_of_a_hole_on_one_flat_surface_blends_its_sides_as_push_pull_does():
    rgb = np.zeros((16, 32, 3), np.uint8)
    rgb[:, :16] = (0, 0, 0)
    rgb[:, 16:] = (255, 255, 255)
    valid = np.ones((16, 32), bool)
    valid[:, 12:20] = False
    rgb[~valid] = 0
    flat = np.full((16, 32), 2.0, np.float32)
    out = FillBackend(fill="background").generate_one(FrameRequest(rgb, flat, valid, np.eye(3), np.eye(4)))
    row = out[8, 12:20, 0].astype(int)
    assert np.all(np.diff(row) >= 0) and row[0] < 128 < row[-1]  # no side wins at equal depth
