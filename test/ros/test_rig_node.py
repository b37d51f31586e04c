"""The node with a stereo + IMU rig, over real rclpy + Fast DDS: what a VIO stack subscribes to."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, Imu  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from rosutil import Spinner, wait_for  # noqa: E402
from worldfm_ros.camera import PinholeCamera  # noqa: E402
from worldfm_ros.ros import conversions as conv  # noqa: E402
from worldfm_ros.ros.node import SimNode  # noqa: E402
from worldfm_ros.ros.tf_io import TF_STATIC_QOS  # noqa: E402
from worldfm_ros.build.procedural import make_room_scene, random_room  # noqa: E402
from worldfm_ros.scene.store import save_scene  # noqa: E402
from worldfm_ros.sensors.sensor_rig import rig_path  # noqa: E402
from worldfm_ros.srv import Reset, Step  # noqa: E402

W, H = 160, 120
G = 9.80665


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "room"
    room = random_room(seed=5, size=(6.0, 5.0, 2.8), num_obstacles=1)
    save_scene(make_room_scene(room, PinholeCamera.from_fov(W, H, 90.0), num_views=12, num_keyframes=4, stride=2), path)
    return path


@pytest.fixture(scope="module")
def rig_file(tmp_path_factory):
    """The bundled stereo_imu preset at 160x120 (the IMU and the baseline as shipped)."""
    data = yaml.safe_load(rig_path("stereo_imu").read_text())
    data["stereo"]["template"]["camera"].update(width=W, height=H)
    path = tmp_path_factory.mktemp("rig") / "stereo_imu_small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class RigProbe:
    def __init__(self, context) -> None:
        self.node = n = rclpy.create_node("rig_probe", context=context)
        self.images = {"left": [], "right": []}
        self.infos = {"left": [], "right": []}
        self.imu: list[Imu] = []
        self.odom: list[Odometry] = []
        self.static: dict[str, tuple[str, np.ndarray]] = {}
        for eye in ("left", "right"):
            n.create_subscription(Image, f"stereo/{eye}/image_raw", self.images[eye].append, qos_profile_sensor_data)
            n.create_subscription(CameraInfo, f"stereo/{eye}/camera_info", self.infos[eye].append,
                                  qos_profile_sensor_data)
        n.create_subscription(Imu, "imu/data", self.imu.append, 1000)
        n.create_subscription(Odometry, "odom", self.odom.append, 1000)
        n.create_subscription(TFMessage, "/tf_static", self._on_static, TF_STATIC_QOS)
        self.cmd = n.create_publisher(Twist, "cmd_vel", 10)

    def _on_static(self, msg: TFMessage) -> None:
        for t in msg.transforms:
            self.static[t.child_frame_id] = (t.header.frame_id, conv.transform_to_matrix(t.transform))


@pytest.fixture
def rig_node(ros_context, scene_dir, rig_file):
    made = []

    def make(**params):
        values = {"scene": str(scene_dir), "rig": str(rig_file), "initial_pose": [3.0, 2.5, 0.0, 0.0],
                  "rate_hz": 10.0, "backend.name": "anchor", **params}
        sim = SimNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        probe = RigProbe(ros_context)
        made.append((sim, probe, Spinner(ros_context, sim, probe.node)))
        return sim, probe

    yield make
    for sim, probe, spinner in made:
        spinner.stop()
        sim.destroy_node()
        probe.node.destroy_node()


def test_both_eyes_publish_pairs_with_one_stamp_and_the_stereo_camera_info(rig_node):
    _, probe = rig_node()
    wait_for(lambda: len(probe.images["right"]) >= 3 and len(probe.infos["right"]) >= 3, what="stereo frames")
    left = {conv.time_ns(m.header.stamp) for m in probe.images["left"]}
    right = {conv.time_ns(m.header.stamp) for m in probe.images["right"]}
    assert len(left & right) >= 2
    info_l, info_r = probe.infos["left"][-1], probe.infos["right"][-1]
    assert (info_l.header.frame_id, info_r.header.frame_id) == ("stereo_left_optical_frame", "stereo_right_optical_frame")
    assert info_r.p[3] == pytest.approx(-info_r.k[0] * 0.12) and info_l.p[3] == 0.0
    assert list(info_l.k) == list(info_r.k) and info_r.distortion_model == "plumb_bob"


def test_rig_frames_and_the_imu_mount_are_on_tf_static(rig_node):
    _, probe = rig_node()
    wait_for(lambda: {"stereo_right_optical_frame", "imu_link"} <= set(probe.static), what="rig static TF")
    assert probe.static["stereo_left_link"][0] == "base_link"
    assert probe.static["stereo_right_optical_frame"][0] == "stereo_right_link"
    parent, base_T_imu = probe.static["imu_link"]
    assert parent == "base_link" and np.allclose(base_T_imu[:3, 3], [0.1, 0.0, 1.0])
    left, right = probe.static["stereo_left_link"][1], probe.static["stereo_right_link"][1]
    assert np.allclose(np.linalg.inv(left) @ right, [[1, 0, 0, 0], [0, 1, 0, -0.12], [0, 0, 1, 0], [0, 0, 0, 1]])


def test_imu_at_rest_reads_gravity_at_200_hz_on_its_own_clock(rig_node):
    _, probe = rig_node()
    wait_for(lambda: len(probe.imu) >= 200, what="200 IMU samples")
    stamps = np.array([conv.time_ns(m.header.stamp) for m in probe.imu])
    assert np.all(np.diff(stamps) > 0)
    assert np.median(np.diff(stamps)) == pytest.approx(5_000_000, rel=1e-6)
    acc = np.array([[m.linear_acceleration.x, m.linear_acceleration.y, m.linear_acceleration.z] for m in probe.imu])
    assert np.abs(acc.mean(axis=0) - [0, 0, G]).max() < 0.05  # noise on: the EuRoC ADIS16448 densities
    assert probe.imu[-1].header.frame_id == "imu_link"
    assert probe.imu[-1].angular_velocity_covariance[0] > 0


def _yaw(q) -> float:
    return float(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_euler("xyz")[2])


def test_imu_orientation_follows_the_odometry_between_its_stamps_while_turning(rig_node):
    # Between two kinematic ticks the base turns at a constant rate, so the odometry's yaw
    # interpolated linearly to an IMU stamp is the IMU's yaw (map -> odom is identity here and
    # imu_link has base_link's axes).
    _, probe = rig_node()
    wait_for(lambda: probe.cmd.get_subscription_count() > 0 and probe.odom, what="cmd_vel and odom")
    cmd = Twist()
    cmd.linear.x, cmd.angular.z = 0.3, 0.8
    for _ in range(15):
        probe.cmd.publish(cmd)
        wait_for(lambda n=len(probe.odom): len(probe.odom) > n + 5, what="odometry")
    odom = sorted((conv.time_ns(m.header.stamp), _yaw(m.pose.pose.orientation), m.twist.twist.angular.z)
                  for m in list(probe.odom))
    times = np.array([t for t, _, _ in odom])
    checked = 0
    for m in list(probe.imu):
        s = conv.time_ns(m.header.stamp)
        i = int(np.searchsorted(times, s))
        if i == 0 or i >= len(odom) or odom[i][2] < 0.5:
            continue  # outside the odometry, or still accelerating
        (t0, y0, _), (t1, y1, _) = odom[i - 1], odom[i]
        expected = y0 + (s - t0) / (t1 - t0) * np.angle(np.exp(1j * (y1 - y0)))
        assert abs(np.angle(np.exp(1j * (_yaw(m.orientation) - expected)))) < 1e-6
        checked += 1
    assert checked > 50
    turning = [m for m in probe.imu if abs(m.angular_velocity.z - 0.8) < 0.05]
    assert len(turning) > 50  # the gyro reads the commanded rate (noise on: ADIS16448 densities)


def test_a_lockstep_step_returns_the_imu_samples_of_the_step(rig_node, ros_context):
    sim, probe = rig_node(lockstep=True)
    client = probe.node.create_client(Step, "/worldfm_sim/step")
    reset = probe.node.create_client(Reset, "/worldfm_sim/reset")
    assert reset.wait_for_service(timeout_sec=10) and client.wait_for_service(timeout_sec=10)
    future = reset.call_async(Reset.Request())
    wait_for(future.done, what="reset")
    request = Step.Request(dt=0.1)
    request.action.linear.x = 0.2
    future = client.call_async(request)
    wait_for(future.done, what="step")
    response = future.result()
    assert response.success, response.message
    stamps = [conv.time_ns(m.header.stamp) for m in response.imu]
    assert stamps == [5_000_000 * k for k in range(1, 21)]  # (0, 0.1 s] at 200 Hz
    assert response.image.header.frame_id == "stereo_left_optical_frame"
