"""Specification of training data: procedural trajectories, multi-view samples, masking, loaders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from worldfm_ros.errors import SceneError
from worldfm_ros.train.data import AnchorMasking, SampleSet, build_samples, make_batch, nearest_reference, pose_distance
from worldfm_ros.train.loaders import GL_TO_CV, nerf_clip, realestate10k_clip, rgbd_clips
from worldfm_ros.train.synthetic import TEMPLATES, camera_path, is_free, synthetic_clip
from worldfm_ros.build.procedural import random_room

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def clip():
    return synthetic_clip(11, num_frames=10, image_size=48)


@pytest.mark.parametrize("template", TEMPLATES)
def test_camera_paths_keep_clear_of_walls_and_obstacles(template):
    for seed in range(5):
        room = random_room(seed, num_obstacles=5)
        poses = camera_path(room, np.random.default_rng(seed), 16, template, step=0.15, margin=0.5)
        assert all(is_free(room, c2w[:2, 3], 0.5 - 1e-9) for c2w in poses)
        assert np.all(np.linalg.norm(np.diff(poses[:, :2, 3], axis=0), axis=1) <= 0.15 + 1e-9)


def test_synthetic_clip_is_a_function_of_its_seed():
    a, b = synthetic_clip(4, num_frames=4, image_size=16), synthetic_clip(4, num_frames=4, image_size=16)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.c2w, b.c2w)
    assert not np.array_equal(a.images, synthetic_clip(5, num_frames=4, image_size=16).images)


def test_samples_use_the_nearest_of_four_references_and_every_other_frame_as_target(clip):
    samples = build_samples(clip, 24, np.random.default_rng(0), num_references=4)
    assert len(samples) == clip.num_frames - 4
    ref_frames = {i for i in range(clip.num_frames)
                  if any(np.array_equal(clip.c2w[i], r) for r in samples.reference_c2w)}
    assert len(ref_frames) <= 4 and not ref_frames & set(samples.frame.tolist())
    for i in range(len(samples)):
        chosen = pose_distance(samples.target_c2w[i], samples.reference_c2w[i])
        assert all(chosen <= pose_distance(samples.target_c2w[i], clip.c2w[r]) + 1e-12 for r in ref_frames)


def test_nearest_reference_weighs_distance_and_angle():
    from worldfm_ros.build.procedural import body_pose

    target = body_pose(0, 0, 0.0)
    near_but_turned, far_but_aligned = body_pose(0.1, 0, np.pi), body_pose(0.5, 0, 0.0)
    assert nearest_reference(target, np.stack([near_but_turned, far_but_aligned])) == 1


def test_anchor_render_shows_the_target_where_points_landed(clip):
    samples = build_samples(clip, 24, np.random.default_rng(1))
    valid = samples.valid
    assert valid.mean() > 0.5 and (~valid).any()
    err = np.abs(samples.render.astype(int) - samples.target.astype(int)).mean(-1)
    assert err[valid].mean() < 0.5 * np.abs(np.roll(samples.target, 7, axis=2).astype(int)
                                            - samples.target.astype(int)).mean()
    assert np.all(samples.render[~valid] == 0) and np.all(samples.render_depth[~valid] == 0)


def test_anchor_masking_turns_dropped_pixels_into_holes():
    render = np.full((16, 16, 3), 200, np.uint8)
    valid = np.ones((16, 16), bool)
    r, v = AnchorMasking(patch_prob=1.0, drop_prob=0.0).apply(render, valid, np.random.default_rng(0))
    assert 0 < (~v).sum() < v.size and np.all(r[~v] == 0) and np.all(r[v] == 200)
    r, v = AnchorMasking(drop_prob=1.0).apply(render, valid, np.random.default_rng(0))
    assert not v.any() and not r.any()


def test_batch_depends_only_on_the_sample_seeds(clip):
    samples = build_samples(clip, 16, np.random.default_rng(0))
    a = make_batch(samples, [0, 1, 2], [5, 6, 7], AnchorMasking(patch_prob=1.0))
    b = make_batch(samples, [2], [7], AnchorMasking(patch_prob=1.0))
    assert a.render.shape == (3, 3, 16, 16) and float(a.target.min()) >= -1 and float(a.target.max()) <= 1
    assert np.array_equal(a.render[2].numpy(), b.render[0].numpy())


def test_sample_set_round_trips_through_npz(clip, tmp_path):
    samples = build_samples(clip, 16, np.random.default_rng(0))
    loaded = SampleSet.load(samples.save(tmp_path / "s.npz"))
    assert all(np.array_equal(getattr(samples, k), getattr(loaded, k)) for k in samples.__dataclass_fields__)


def test_concatenated_sets_keep_clips_apart(clip):
    a = build_samples(clip, 16, np.random.default_rng(0))
    both = SampleSet.concatenate([a, a])
    assert sorted(set(both.clip.tolist())) == [0, 1]


def _write_frames(folder: Path, clip) -> list[tuple[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(clip.num_frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), clip.images[i][..., ::-1])
        np.save(folder / f"{i:04d}_depth.npy", clip.depths[i])
        names.append((f"{i:04d}.png", f"{i:04d}_depth.npy"))
    return names


def test_nerf_transforms_loader_reads_back_a_clip(clip, tmp_path):
    names = _write_frames(tmp_path, clip)
    K = clip.K
    frames = [{"file_path": c, "depth_file_path": d, "transform_matrix": (clip.c2w[i] @ GL_TO_CV).tolist()}
              for i, (c, d) in enumerate(names)]
    meta = {"fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "w": 48, "h": 48, "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    loaded = nerf_clip(tmp_path / "transforms.json")
    np.testing.assert_allclose(loaded.c2w, clip.c2w, atol=1e-9)
    np.testing.assert_allclose(loaded.K, K)
    assert np.array_equal(loaded.images, clip.images) and np.array_equal(loaded.depths, clip.depths)


def test_nerf_loader_without_depth_names_the_missing_field(tmp_path):
    (tmp_path / "transforms.json").write_text(json.dumps({"camera_angle_x": 1.0, "frames": [
        {"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]}))
    with pytest.raises(SceneError, match="depth_file_path"):
        nerf_clip(tmp_path / "transforms.json")


def test_realestate10k_loader_reads_back_a_clip(clip, tmp_path):
    _write_frames(tmp_path / "frames", clip)
    for i in range(clip.num_frames):
        (tmp_path / "frames" / f"{i:04d}_depth.npy").rename(tmp_path / "frames" / f"d{i:04d}.npy")
    (tmp_path / "depth").mkdir()
    lines = ["https://www.youtube.com/watch?v=example"]
    K = clip.K
    for i in range(clip.num_frames):
        np.save(tmp_path / "depth" / f"{i:04d}.npy", np.load(tmp_path / "frames" / f"d{i:04d}.npy"))
        w2c = np.linalg.inv(clip.c2w[i])[:3].reshape(-1)
        intr = [K[0, 0] / 48, K[1, 1] / 48, (K[0, 2] + 0.5) / 48, (K[1, 2] + 0.5) / 48, 0, 0]
        lines.append(" ".join([f"{i:04d}", *(f"{float(x):.17g}" for x in [*intr, *w2c])]))
    (tmp_path / "cams.txt").write_text("\n".join(lines))
    loaded = realestate10k_clip(tmp_path / "cams.txt", tmp_path / "frames", tmp_path / "depth")
    np.testing.assert_allclose(loaded.c2w, clip.c2w, atol=1e-9)
    np.testing.assert_allclose(loaded.K, K, atol=1e-9)
    assert np.array_equal(loaded.images, clip.images)


def test_real_rgbd_folder_gives_samples_with_a_consistent_anchor():
    root = SHARED_DATA / "sevenscenes_redkitchen"
    if not root.is_dir():
        pytest.skip(f"real test data not present at {root}")
    clip = next(rgbd_clips(root, frames_per_clip=6, frame_step=2))
    assert clip.images.shape == (6, 480, 640, 3)
    samples = build_samples(clip, 32, np.random.default_rng(0), num_references=3)
    assert len(samples) == 3
    valid = samples.valid
    assert valid.mean() > 0.3
    err = np.abs(samples.render.astype(int) - samples.target.astype(int)).mean(-1)[valid].mean()
    assert err < 25
