"""Following a pose on /tf (input_mode tf): the pose a frame renders and the velocity of the robot,
from transforms in a tf tree."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from worldfm_ros.ros.tf_follow import TfFollower
from worldfm_ros.ros.tf_tree import TransformTree
from worldfm_ros.sensors.mount import MountConfig
from worldfm_ros.sensors.rig import CameraConfig, CameraRig
from worldfm_ros.sim.config import SimConfig

NOW = 10_000_000_000


def pose(x: float, yaw: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw).as_matrix()
    T[0, 3] = x
    return T


def follower(tree: TransformTree, reports: list[str], rig: CameraRig | None = None) -> TfFollower:
    rig = rig or CameraRig(CameraConfig().build(), np.eye(4))
    return TfFollower(tree.lookup, rig.base_from_optical_in_map, lambda message, key: reports.append(message))


def test_the_twist_is_the_motion_between_the_last_two_followed_poses_over_their_stamp_gap():
    tree, reports = TransformTree(), []
    follow, cfg = follower(tree, reports), SimConfig(input_mode="tf", tf_source="base")
    twists = []
    for stamp, x, yaw in ((NOW - 100_000_000, 0.0, 0.0), (NOW, 0.05, 0.02)):
        tree.set_transform("map", "base_link", pose(x, yaw), stamp)
        followed = follow.pose(cfg, NOW)
        assert followed is not None and followed[1] == stamp
        twists.append(follow.twist(followed))
    assert twists[0] is None, "the first pose has no velocity"
    linear, angular = twists[1]
    np.testing.assert_allclose(linear, [0.5, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(angular, [0.0, 0.0, 0.2], atol=1e-9)
    assert not reports


def test_an_optical_pose_is_followed_as_the_base_pose_that_puts_the_camera_there():
    tree, reports = TransformTree(), []
    rig = CameraRig(CameraConfig().build(), MountConfig([0.2, 0.0, 1.0], [0.0, 0.1, 0.0]).matrix())
    map_T_base = pose(3.0, 0.4)
    tree.set_transform("map", "camera_optical_frame", rig.optical_in_map(map_T_base), NOW)
    followed = follower(tree, reports, rig).pose(SimConfig(input_mode="tf"), NOW)
    np.testing.assert_allclose(followed[0], map_T_base, atol=1e-12)


def test_a_pose_stamped_ahead_of_the_clock_is_refused_and_reported():
    tree, reports = TransformTree(), []
    tree.set_transform("map", "base_link", pose(1.0, 0.0), NOW + 2_000_000_000)
    cfg = SimConfig(input_mode="tf", tf_source="base", tf_future_tolerance_s=0.5)
    assert follower(tree, reports).pose(cfg, NOW) is None
    assert reports == ["/tf rejected: map -> base_link is stamped 2.000 s ahead of the node's clock "
                       "(tf_future_tolerance_s 0.5); images would carry that stamp"]


def test_a_missing_frame_is_reported_as_waiting_for_the_pose():
    reports = []
    assert follower(TransformTree(), reports).pose(SimConfig(input_mode="tf", tf_source="base"), NOW) is None
    assert len(reports) == 1 and reports[0].startswith("waiting for pose on /tf: frame 'map' does not exist")
