"""Voxel downsampling to a point budget, colours averaged, deterministic."""

from __future__ import annotations

import numpy as np

from worldfm_ros.scene.downsample import downsample_to_budget, voxel_downsample


def surface(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.c_[rng.uniform(0, 4, n), rng.uniform(0, 3, n), 0.1 * np.sin(rng.uniform(0, 6, n))]
    return p.astype(np.float32), rng.integers(0, 256, (n, 3), dtype=np.uint8)


def test_budget_is_met_closely() -> None:
    p, c = surface(200_000)
    out_p, out_c, voxel = downsample_to_budget(p, c, 20_000)
    assert 0.95 * 20_000 <= len(out_p) <= 20_000
    assert voxel > 0 and out_p.dtype == np.float32 and out_c.dtype == np.uint8


def test_cloud_within_budget_is_unchanged() -> None:
    p, c = surface(1000)
    out_p, out_c, voxel = downsample_to_budget(p, c, 1000)
    assert voxel == 0.0 and out_p.tobytes() == p.tobytes() and out_c.tobytes() == c.tobytes()


def test_voxel_merges_to_centroid_and_mean_colour() -> None:
    p = np.array([[0.1, 0.1, 0.1], [0.3, 0.3, 0.3], [1.5, 0.1, 0.1]], np.float32)
    c = np.array([[0, 10, 255], [11, 20, 0], [7, 7, 7]], np.uint8)
    out_p, out_c = voxel_downsample(p, c, 1.0)
    np.testing.assert_allclose(out_p, [[0.2, 0.2, 0.2], [1.5, 0.1, 0.1]], rtol=1e-6)
    np.testing.assert_array_equal(out_c, [[6, 15, 128], [7, 7, 7]])


def test_downsampling_is_deterministic() -> None:
    p, c = surface(50_000, seed=3)
    a = downsample_to_budget(p, c, 5000)
    b = downsample_to_budget(p.copy(), c.copy(), 5000)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes() and a[2] == b[2]
