"""The demo runs the node on the bundled scene and writes a bag that a third-party reader accepts."""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.typesys import Stores, get_types_from_msg, get_typestore  # noqa: E402

from worldfm_ros.ros import demo  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_TYPES = {
    "/camera/image_raw": "sensor_msgs/msg/Image",
    "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
    "/camera/depth/image_raw": "sensor_msgs/msg/Image",
    "/camera/frame_stats": "worldfm_ros/msg/FrameStats",
    "/odom": "nav_msgs/msg/Odometry",
    "/tf": "tf2_msgs/msg/TFMessage",
    "/tf_static": "tf2_msgs/msg/TFMessage",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["-o", str(out), "--duration", "3", "--size", "160", "120",
                              "--rrd", str(out / "run.rrd")])
    assert demo.run(args) == 0
    return out


def read_bag(path: Path):
    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(get_types_from_msg((ROOT / "msg" / "FrameStats.msg").read_text(), "worldfm_ros/msg/FrameStats"))
    messages = defaultdict(list)
    with AnyReader([path], default_typestore=store) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, _, raw in reader.messages():
            messages[conn.topic].append(reader.deserialize(raw, conn.msgtype))
    return types, messages


def stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_demo_writes_a_contact_sheet_and_a_video(demo_output):
    assert (demo_output / "contact_sheet.png").stat().st_size > 1000
    assert (demo_output / "frames.mp4").stat().st_size > 1000


def test_demo_bag_has_every_published_topic_with_its_type_and_no_unpublished_clock(demo_output):
    # The demo's node runs on wall time and publishes no /clock, so the bag has no /clock channel.
    types, _ = read_bag(demo_output / "bag")
    assert types == EXPECTED_TYPES


def test_demo_bag_images_pair_with_camera_info_and_pose_stamps(demo_output):
    _, msgs = read_bag(demo_output / "bag")
    images = msgs["/camera/image_raw"]
    assert len(images) >= 5, "at least a few frames in 3 s"
    assert abs(len(msgs["/camera/camera_info"]) - len(images)) <= 1
    assert abs(len(msgs["/camera/depth/image_raw"]) - len(images)) <= 1
    info_stamps = {stamp(m) for m in msgs["/camera/camera_info"]}
    odom_stamps = {stamp(m) for m in msgs["/odom"]}
    paired = [stamp(m) in info_stamps for m in images]
    assert sum(paired) >= len(images) - 1
    # (the very first frame may race the recorder's discovery of /odom)
    assert all(stamp(m) in odom_stamps for m in images[1:]), "every image is stamped with a published pose time"
    assert all(m.encoding == "rgb8" and (m.width, m.height) == (160, 120) for m in images)
    assert [stamp(m) for m in images] == sorted(stamp(m) for m in images)


def test_demo_runs_in_its_own_domain_beside_another_simulator(ros_context, tmp_path):
    import numpy as np
    from rclpy.parameter import Parameter

    from rosutil import Spinner
    from worldfm_ros.ros.node import SimNode

    # A second simulator in the environment's (default) domain, as another user's robot would be.
    other = SimNode(context=ros_context, parameter_overrides=[
        Parameter("backend.name", value="anchor"), Parameter("camera.width", value=64),
        Parameter("camera.height", value=48), Parameter("rate_hz", value=10.0)])
    spinner = Spinner(ros_context, other)
    start_pose = other.sim.map_T_base.copy()
    try:
        parser = argparse.ArgumentParser()
        demo.add_arguments(parser)
        args = parser.parse_args(["-o", str(tmp_path / "out"), "--duration", "3", "--size", "160", "120",
                                  "--backend", "anchor"])
        assert demo.run(args) == 0
        assert np.allclose(other.sim.map_T_base, start_pose), "the demo's cmd_vel drove the other robot"
    finally:
        spinner.stop()
        other.destroy_node()
    _, msgs = read_bag(tmp_path / "out" / "bag")
    assert {(m.width, m.height) for m in msgs["/camera/image_raw"]} == {(160, 120)}
    indices = [m.frame_index for m in msgs["/camera/frame_stats"]]
    assert indices == sorted(set(indices)), "frame stats of one simulator only"
    odom = [stamp(m) for m in msgs["/odom"]]
    assert odom == sorted(odom), "one odometry stream, never going backwards"
    assert len(msgs["/tf_static"]) == 1


def test_demo_on_a_shared_domain_leaves_a_foreign_image_out_of_its_media_with_one_warning(tmp_path, capfd):
    import cv2
    import rclpy
    from sensor_msgs.msg import Image

    from rosutil import Spinner
    from worldfm_ros.ros.isolation import private_domain_id

    domain = private_domain_id(seed=7)
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("foreign_camera", context=context)
    pub = node.create_publisher(Image, "/camera/image_raw", 10)
    foreign = Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(range(12)))
    node.create_timer(0.05, lambda: pub.publish(foreign))
    spinner = Spinner(context, node)
    try:
        parser = argparse.ArgumentParser()
        demo.add_arguments(parser)
        args = parser.parse_args(["-o", str(tmp_path / "out"), "--duration", "3", "--size", "160", "120",
                                  "--backend", "anchor", "--domain-id", str(domain)])
        assert demo.run(args) == 0
    finally:
        spinner.stop()
        node.destroy_node()
        rclpy.shutdown(context=context)
    _, msgs = read_bag(tmp_path / "out" / "bag")
    assert {(m.width, m.height) for m in msgs["/camera/image_raw"]} == {(2, 2), (160, 120)}  # both were recorded
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning: demo media")]
    assert len(warnings) == 1 and "not the camera's 160x120 rgb8 frames" in warnings[0]
    sheet = cv2.imread(str(tmp_path / "out" / "contact_sheet.png"))
    assert sheet.shape[1] == 4 * 160 and sheet.shape[0] % 120 == 0  # tiles of the camera's frames only
    video = cv2.VideoCapture(str(tmp_path / "out" / "frames.mp4"))
    assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 120)
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == len([m for m in msgs["/camera/image_raw"] if m.width == 160])


def test_demo_rrd_logs_every_frame_the_bag_recorded_at_its_stamp(demo_output):
    pytest.importorskip("rerun", reason="rerun-sdk not installed (requirements/python.txt)")
    from rrdutil import frame_stamps, read_rrd

    _, msgs = read_bag(demo_output / "bag")
    bag_stamps = {stamp(m) for m in msgs["/camera/image_raw"]}
    rrd_stamps = frame_stamps(read_rrd(demo_output / "run.rrd"))
    assert bag_stamps <= set(rrd_stamps)
    # (the recorder may miss the very first frame while it discovers the camera topic)
    assert len(rrd_stamps) - len(bag_stamps) <= 1


@pytest.fixture(scope="module")
def stereo_imu_demo(tmp_path_factory):
    """The demo with the bundled stereo_imu rig (at 160x120 to keep the bag small), anchor backend."""
    import yaml

    from worldfm_ros.sensors.sensor_rig import rig_path

    base = tmp_path_factory.mktemp("stereo_demo")
    rig = yaml.safe_load(rig_path("stereo_imu").read_text())
    rig["stereo"]["template"]["camera"].update(width=160, height=120)
    (base / "rig.yaml").write_text(yaml.safe_dump(rig))
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["-o", str(base / "out"), "--duration", "3", "--backend", "anchor",
                              "--rig", str(base / "rig.yaml")])
    assert demo.run(args) == 0
    return base / "out"


def test_stereo_imu_demo_bag_holds_both_eyes_the_imu_and_tf_with_consistent_stamps(stereo_imu_demo):
    types, msgs = read_bag(stereo_imu_demo / "bag")
    for eye in ("left", "right"):
        assert types[f"/stereo/{eye}/image_raw"] == "sensor_msgs/msg/Image"
        assert types[f"/stereo/{eye}/camera_info"] == "sensor_msgs/msg/CameraInfo"
    assert types["/imu/data"] == "sensor_msgs/msg/Imu" and "/camera/image_raw" not in types
    left = [stamp(m) for m in msgs["/stereo/left/image_raw"]]
    right = {stamp(m) for m in msgs["/stereo/right/image_raw"]}
    assert len(left) >= 5 and sum(s in right for s in left) >= len(left) - 1  # one stamp per pair
    odom = {stamp(m) for m in msgs["/odom"]}
    assert all(s in odom for s in left[1:]), "every pair is stamped with a published pose time"
    imu = [stamp(m) for m in msgs["/imu/data"]]
    assert imu == sorted(imu) and all(s % 5_000_000 == 0 for s in imu)  # 200 Hz, on the IMU's own clock
    assert imu[0] <= left[1] and imu[-1] >= left[-2]  # the IMU covers the images
    assert len(imu) >= 150 * (left[-1] - left[0]) * 1e-9
    statics = {t.child_frame_id: t.header.frame_id for m in msgs["/tf_static"] for t in m.transforms}
    assert statics["stereo_left_link"] == statics["imu_link"] == "base_link"
    assert statics["stereo_right_optical_frame"] == "stereo_right_link"
    info = msgs["/stereo/right/camera_info"][-1]
    assert info.p[3] == pytest.approx(-info.k[0] * 0.12)
