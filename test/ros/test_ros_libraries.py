"""Where a ROS install has the library, our conventions agree with it.

sensor_msgs_py and tf_transformations come with ROS 2 (apt) and, for tests here, from
../shared/ros2; without them these tests skip.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from worldfm_ros.ros import conversions as conv  # noqa: E402
from worldfm_ros.camera import LINK_T_OPTICAL  # noqa: E402
from worldfm_ros.sensors.rig import MountConfig  # noqa: E402
from worldfm_ros.sim.simulator import planar_pose  # noqa: E402


def random_cloud(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-5, 5, (n, 3)), rng.integers(0, 256, (n, 3), dtype=np.uint8)


def test_point_cloud_from_sensor_msgs_py_has_the_bytes_of_the_numpy_fallback():
    pytest.importorskip("sensor_msgs_py", reason="sensor_msgs_py comes with a ROS install (or ../shared/ros2)")
    assert conv._point_cloud2 is not None, "sensor_msgs_py is importable, so the node must use it"
    points, colors = random_cloud()
    ros = conv.point_cloud_msg(points, colors, 1_234_000_000, "camera_optical_frame")
    fallback = conv._point_cloud_msg_numpy(conv._point_records(points, colors), 1_234_000_000,
                                           "camera_optical_frame")
    assert bytes(ros.data) == bytes(fallback.data)
    for field in ("height", "width", "point_step", "row_step", "is_bigendian", "is_dense", "fields", "header"):
        assert getattr(ros, field) == getattr(fallback, field), field


def test_point_cloud_reads_back_with_sensor_msgs_py_as_points_and_packed_rgb():
    point_cloud2 = pytest.importorskip("sensor_msgs_py.point_cloud2",
                                       reason="sensor_msgs_py comes with a ROS install (or ../shared/ros2)")
    points, colors = random_cloud()
    msg = conv.point_cloud_msg(points, colors, 0, "camera_optical_frame")
    back = point_cloud2.read_points(msg, field_names=("x", "y", "z", "rgb"))
    xyz = np.stack([back["x"], back["y"], back["z"]], axis=1)
    np.testing.assert_allclose(xyz, points.astype(np.float32))
    rgb = back["rgb"].astype("<f4").view("<u4")
    np.testing.assert_array_equal(np.stack([rgb >> 16 & 255, rgb >> 8 & 255, rgb & 255], axis=1), colors)


@pytest.fixture
def tft():
    return pytest.importorskip("tf_transformations",
                               reason="tf_transformations comes with a ROS install (or ../shared/ros2)")


def same_rotation_quaternion(a, b) -> bool:
    return np.allclose(a, b, atol=1e-9) or np.allclose(a, -np.asarray(b), atol=1e-9)


def test_transform_messages_carry_quaternions_in_tf_transformations_order(tft):
    rng = np.random.default_rng(1)
    for _ in range(20):
        T = np.eye(4)
        T[:3, :3] = Rotation.random(random_state=rng).as_matrix()
        T[:3, 3] = rng.normal(size=3)
        r = conv.transform_msg(T).rotation
        assert same_rotation_quaternion([r.x, r.y, r.z, r.w], tft.quaternion_from_matrix(T))


@pytest.mark.parametrize("rotvec", [(0, 0, 0), (np.pi, 0, 0), (0, np.pi, 0), (0, 0, np.pi), (2.0, -1.0, 0.5),
                                    (np.pi - 1e-9, 0, 0), (0, 1e-12, 0), (-2.2, 0.1, 2.0)])
def test_transform_messages_of_half_turns_and_near_identity_carry_tf_transformations_quaternion(tft, rotvec):
    # Each branch of the closed-form conversion: trace largest, then each diagonal entry largest.
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    r = conv.transform_msg(T).rotation
    q = [r.x, r.y, r.z, r.w]
    assert r.w >= 0.0 and abs(np.linalg.norm(q) - 1.0) < 1e-12
    assert same_rotation_quaternion(q, tft.quaternion_from_matrix(T))


def test_a_quaternion_from_tf_transformations_reads_back_as_its_matrix(tft):
    from geometry_msgs.msg import Pose

    q = tft.quaternion_from_euler(0.3, -0.2, 2.5)
    pose = Pose()
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = q
    pose.position.x, pose.position.y, pose.position.z = 1.0, 2.0, 3.0
    expected = tft.quaternion_matrix(q)
    expected[:3, 3] = [1.0, 2.0, 3.0]
    np.testing.assert_allclose(conv.pose_to_matrix(pose), expected, atol=1e-12)


def test_mount_rpy_is_tf_transformations_static_xyz_euler(tft):
    mount = MountConfig(xyz=[0.1, -0.2, 1.0], rpy=[0.1, -0.4, 0.7])
    expected = tft.euler_matrix(0.1, -0.4, 0.7, "sxyz")
    expected[:3, 3] = [0.1, -0.2, 1.0]
    np.testing.assert_allclose(mount.matrix(), expected, atol=1e-12)


def test_planar_yaw_is_a_rotation_about_z_as_in_tf_transformations(tft):
    T = planar_pose(1.0, 2.0, 0.0, 0.8)
    np.testing.assert_allclose(T[:3, :3], tft.euler_matrix(0.0, 0.0, 0.8)[:3, :3], atol=1e-12)


def test_optical_frame_rotation_is_the_ros_camera_optical_quaternion(tft):
    # REP-103: camera_link -> camera_optical_frame is roll -90 deg, yaw -90 deg: q = (-0.5, 0.5, -0.5, 0.5).
    assert same_rotation_quaternion(tft.quaternion_from_matrix(LINK_T_OPTICAL), [-0.5, 0.5, -0.5, 0.5])
    np.testing.assert_allclose(tft.euler_matrix(-np.pi / 2, 0.0, -np.pi / 2, "sxyz"), LINK_T_OPTICAL, atol=1e-12)
