"""Many views in one call: the point renderer's batch pass and the batched keyframe choice give
exactly what one call per view gives."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.frame.reference import KeyframeSelector
from worldfm_ros.frame.reference_batch import covisible_counts
from worldfm_ros.world.store import open_world


@pytest.fixture(scope="module")
def room():
    return open_world(None)  # the bundled room: a real fused cloud with keyframes


def views(room, count=6, seed=0):
    """Poses near the room's keyframes (some looking off the cloud), at two camera sizes."""
    rng = np.random.default_rng(seed)
    cams, poses = [], []
    for i in range(count):
        kf = room.keyframes[i % len(room.keyframes)]
        c2w = kf.c2w.copy()
        c2w[:3, 3] += rng.normal(size=3) * 0.4
        cams.append(kf.camera.scaled(48, 36) if i % 2 else kf.camera.scaled(40, 40))
        poses.append(c2w)
    return cams, poses


def same(a, b):
    return all(np.array_equal(x.rgb, y.rgb) and np.array_equal(x.depth, y.depth) and np.array_equal(x.valid, y.valid)
               for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_a_batch_of_square_splat_views_is_bit_identical_to_one_render_each(room, radius):
    renderer = room._renderer
    cams, poses = views(room)
    batch = renderer.render_batch(cams, poses, point_radius=radius)
    assert same(batch, [renderer.render(c, p, point_radius=radius) for c, p in zip(cams, poses)])
    assert np.mean([r.valid.mean() for r in batch]) > 0.2


def test_a_batch_of_footprint_views_is_bit_identical_to_one_render_each(room):
    renderer, spacing = room._renderer, room.surface_spacing
    cams, poses = views(room, seed=1)
    assert same(renderer.render_batch(cams, poses, footprint_spacing=spacing),
                [renderer.render(c, p, footprint_spacing=spacing) for c, p in zip(cams, poses)])


def test_the_batched_keyframe_choice_is_the_choice_of_each_view_alone(room):
    cams, poses = views(room, count=8, seed=2)
    depths = [r.depth for r in room.render(cams, poses)]
    together = KeyframeSelector(room).select_batch(depths, cams, poses)
    alone = [KeyframeSelector(room).select(d, c, p) for d, c, p in zip(depths, cams, poses)]
    assert [(c.index, c.score, c.num_samples) for c in together] == [(c.index, c.score, c.num_samples) for c in alone]
    assert all(np.array_equal(a.scores, b.scores) for a, b in zip(together, alone))
    assert len({c.index for c in alone}) > 1


@pytest.mark.parametrize("strict", [False, True])
def test_the_compiled_covisibility_counts_are_covisible_point_by_point(room, strict):
    from worldfm_ros.frame.reference import covisible

    selector = KeyframeSelector(room)
    rng = np.random.default_rng(3)
    kf = room.keyframes[0]
    depth = selector.keyframe_depth(0)
    v, u = rng.integers(0, depth.shape[0], 4000), rng.integers(0, depth.shape[1], 4000)
    z = depth[v, u].astype(np.float64) * rng.uniform(0.97, 1.03, 4000)  # on and off the tolerance of 2 %
    rays = np.stack([(u - kf.camera.cx) / kf.camera.fx, (v - kf.camera.cy) / kf.camera.fy, np.ones(4000)], 1)
    points = (rays * z[:, None]) @ kf.c2w[:3, :3].T + kf.c2w[:3, 3]  # surface points seen from keyframe 0
    owner = rng.integers(0, 3, len(points))
    counts = covisible_counts(points, owner, 3, *selector._keyframe_arrays(), 0.02, 0.01, 0.05, strict)
    expected = np.stack([np.bincount(owner[covisible(points, kf.camera, kf.c2w, selector.keyframe_depth(k), 0.02, 0.01,
                                                     0.05, strict)], minlength=3)
                         for k, kf in enumerate(room.keyframes)], axis=1)
    assert np.array_equal(counts, expected) and 0 < expected[:, 0].sum() < len(points)


def test_a_batch_with_one_pose_that_is_not_rigid_is_refused_with_the_single_view_error(room):
    from worldfm_ros.errors import CameraError

    cams, poses = views(room, count=3)
    poses[1] = poses[1].copy()
    poses[1][:3, :3] *= 1.1  # scaled: not a rotation
    with pytest.raises(CameraError, match="c2w: rotation is not orthonormal with det"):
        room._renderer.render_batch(cams, poses)
