"""The fallback transform tree honours tf2's lookup contract."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from worldfm_ros.ros.tf_tree import TransformLookupError, TransformTree


def pose(xyz, yaw=0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw).as_matrix()
    T[:3, 3] = xyz
    return T


def test_lookup_composes_the_chain_from_source_to_target():
    tree = TransformTree()
    tree.set_transform("map", "odom", pose((1, 0, 0)), 1_000_000_001)
    tree.set_transform("odom", "base_link", pose((0, 2, 0), np.pi / 2), 2_000_000_000)
    tree.set_transform("base_link", "camera", pose((0.5, 0, 1)), 0.0, static=True)
    T, stamp = tree.lookup("map", "camera")
    assert np.allclose(T, pose((1, 0, 0)) @ pose((0, 2, 0), np.pi / 2) @ pose((0.5, 0, 1)))
    assert stamp == 1_000_000_001


def test_lookup_between_sibling_branches_goes_through_the_common_parent():
    tree = TransformTree()
    tree.set_transform("base", "left", pose((0, 1, 0)), 0.0, static=True)
    tree.set_transform("base", "right", pose((0, -1, 0)), 0.0, static=True)
    T, stamp = tree.lookup("left", "right")
    assert np.allclose(T[:3, 3], (0, -2, 0)) and stamp is None


def test_unknown_frame_names_the_frame_and_the_known_ones():
    tree = TransformTree()
    tree.set_transform("map", "odom", np.eye(4), 0.0)
    with pytest.raises(TransformLookupError, match=r"'base_link' does not exist \(known frames: map, odom\)"):
        tree.lookup("map", "base_link")


def test_disconnected_frames_are_reported():
    tree = TransformTree()
    tree.set_transform("map", "odom", np.eye(4), 0.0)
    tree.set_transform("world", "robot", np.eye(4), 0.0)
    with pytest.raises(TransformLookupError, match="not connected"):
        tree.lookup("map", "robot")


def test_stale_data_is_reported_with_its_age():
    tree = TransformTree()
    tree.set_transform("map", "base_link", np.eye(4), 10_000_000_000)
    with pytest.raises(TransformLookupError, match="stale: newest data is 5.000 s old"):
        tree.lookup("map", "base_link", now_ns=15_000_000_000, max_age_s=1.0)


def test_older_sample_does_not_replace_a_newer_one():
    tree = TransformTree()
    tree.set_transform("map", "base_link", pose((2, 0, 0)), 5)
    tree.set_transform("map", "base_link", pose((1, 0, 0)), 4)
    T, stamp = tree.lookup("map", "base_link")
    assert T[0, 3] == 2.0 and stamp == 5


def test_nan_transform_is_rejected():
    tree = TransformTree()
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(TransformLookupError, match="NaN"):
        tree.set_transform("map", "base_link", bad, 0.0)


def test_cycle_is_rejected():
    tree = TransformTree()
    tree.set_transform("a", "b", np.eye(4), 0.0)
    with pytest.raises(TransformLookupError, match="cycle"):
        tree.set_transform("b", "a", np.eye(4), 0.0)


def test_time_jumping_back_more_than_a_second_resets_the_edge():
    tree = TransformTree()
    tree.set_transform("map", "base_link", pose((2, 0, 0)), 50_000_000_000)
    tree.set_transform("map", "base_link", pose((1, 0, 0)), 3_000_000_000)  # a bag looped
    T, stamp = tree.lookup("map", "base_link")
    assert T[0, 3] == 1.0 and stamp == 3_000_000_000
