"""Reference-keyframe selection by co-visibility on small constructed scenes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.render.pointcloud import PointCloudRenderer
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.world.pointcloud import PointCloudWorld
from worldfm_ros.frame.reference import KeyframeSelector, sample_grid

CAM = PinholeCamera(64, 48, fx=40.0, fy=40.0, cx=31.5, cy=23.5)


def pose(yaw_deg: float = 0.0, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    c2w[:3, 3] = t
    return c2w


def keyframe(c2w: np.ndarray, depth: np.ndarray | None = None, name: str = "") -> Keyframe:
    return Keyframe(np.zeros((CAM.height, CAM.width, 3), np.uint8), CAM.K, c2w, depth=depth, name=name)


def two_walls() -> tuple[np.ndarray, np.ndarray]:
    """A 12 x 12 m wall 5 m ahead (+z) and another 5 m behind (-z), 6 cm point spacing."""
    g = np.arange(-6.0, 6.0, 0.06)
    a, b = (m.ravel() for m in np.meshgrid(g, g))
    front = np.stack([a, b, np.full_like(a, 5.0)], 1)
    back = np.stack([a, b, np.full_like(a, -5.0)], 1)
    points = np.concatenate([front, back]).astype(np.float32)
    colors = np.full(points.shape, 128, np.uint8)
    return points, colors


def anchor_with(keyframes: list[Keyframe]) -> SceneAnchor:
    points, colors = two_walls()
    return SceneAnchor(points, colors, keyframes=keyframes)


def target_depth(anchor: SceneAnchor, c2w: np.ndarray) -> np.ndarray:
    return PointCloudRenderer(anchor.points, anchor.colors).render(CAM, c2w, point_radius=1).depth


def test_picks_the_keyframe_that_sees_the_same_surface():
    keyframes = [keyframe(pose(180.0), name="back"), keyframe(pose(45.0, (3.0, 0, 0)), name="side"),
                 keyframe(pose(0.0, (0.4, 0.1, 0.3)), name="close")]
    anchor = anchor_with(keyframes)
    target = pose(0.0)
    choice = KeyframeSelector(PointCloudWorld(anchor)).select(target_depth(anchor, target), CAM, target)
    assert choice.index == 2
    assert choice.score > 0.9
    assert choice.scores[0] == 0.0
    assert 0.0 < choice.scores[1] < choice.scores[2]
    assert choice.num_samples > 200


def test_keyframe_depth_is_used_when_present():
    # Same pose twice; the second keyframe's own depth shows an occluder 1 m away over its left half.
    occluded = target_depth(anchor_with([keyframe(pose())]), pose())
    occluded[:, : CAM.width // 2] = 1.0
    keyframes = [keyframe(pose(), depth=occluded), keyframe(pose())]
    anchor = anchor_with(keyframes)
    choice = KeyframeSelector(PointCloudWorld(anchor)).select(target_depth(anchor, pose()), CAM, pose())
    assert choice.index == 1
    assert 0.3 < choice.scores[0] < 0.7 and choice.scores[1] > 0.95


def test_rendered_keyframe_depth_is_cached():
    anchor = anchor_with([keyframe(pose())])
    selector = KeyframeSelector(PointCloudWorld(anchor))
    assert selector.keyframe_depth(0) is selector.keyframe_depth(0)
    assert np.median(selector.keyframe_depth(0)[selector.keyframe_depth(0) > 0]) == pytest.approx(5.0)


def test_the_same_view_asked_again_reuses_the_choice_and_a_changed_one_is_scored_anew(monkeypatch):
    from worldfm_ros.frame import reference

    keyframes = [keyframe(pose(180.0)), keyframe(pose(0.0, (0.4, 0.1, 0.3)))]
    anchor = anchor_with(keyframes)
    selector = KeyframeSelector(PointCloudWorld(anchor))
    scored = []
    count = reference.covisible_counts
    monkeypatch.setattr(reference, "covisible_counts", lambda *a, **k: scored.append(1) or count(*a, **k))
    depth = target_depth(anchor, pose())
    first = selector.select(depth, CAM, pose())
    assert selector.select(depth.copy(), CAM, pose()) is first and len(scored) == 1
    moved = pose(0.0, (0.0, 0.0, 0.01))
    assert selector.select(target_depth(anchor, moved), CAM, moved).index == first.index
    assert len(scored) == 2


def test_equal_scores_go_to_the_lowest_index():
    keyframes = [keyframe(pose(180.0)), keyframe(pose(0.0, (0.2, 0, 0))), keyframe(pose(0.0, (0.2, 0, 0)))]
    anchor = anchor_with(keyframes)
    choice = KeyframeSelector(PointCloudWorld(anchor)).select(target_depth(anchor, pose()), CAM, pose())
    assert choice.scores[1] == choice.scores[2] > 0.9
    assert choice.index == 1


def test_no_valid_samples_falls_back_to_the_nearest_camera():
    keyframes = [keyframe(pose(0.0, (3.0, 0, 0))), keyframe(pose(90.0, (0.5, 0, 0))), keyframe(pose(0.0, (-2.0, 0, 0)))]
    anchor = anchor_with(keyframes)
    choice = KeyframeSelector(PointCloudWorld(anchor)).select(np.zeros((CAM.height, CAM.width), np.float32), CAM, pose())
    assert (choice.index, choice.score, choice.num_samples) == (1, 0.0, 0)


def test_sample_grid_has_an_outer_grid_and_a_dense_centre_grid():
    uv = sample_grid(640, 480, outer_grid=10, centre_grid=15)
    assert len(uv) == len(np.unique(uv, axis=0)) == 100 + 225
    centre = (uv[:, 0] >= 160) & (uv[:, 0] < 480) & (uv[:, 1] >= 120) & (uv[:, 1] < 360)
    # The centre grid plus the outer-grid points inside it: u = 32 + 64 i for i = 2..6 (160..416),
    # v = 24 + 48 j for j = 2..6 (120..312).
    assert centre.sum() == 225 + 25
    assert uv[:, 0].min() >= 0 and uv[:, 0].max() < 640 and uv[:, 1].max() < 480


def test_scene_without_keyframes_raises_config_error():
    with pytest.raises(ConfigError, match="keyframe"):
        KeyframeSelector(PointCloudWorld(anchor_with([])))
