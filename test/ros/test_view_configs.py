"""The saved rviz2 config and Foxglove layout match the topics, types and QoS the running node offers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from rosutil import Spinner, wait_for  # noqa: E402

from worldfm_ros.ros.node import SimNode  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RVIZ = ROOT / "config" / "viz" / "worldfm.rviz"
FOXGLOVE = ROOT / "config" / "viz" / "foxglove_layout.json"

# rviz2 display class -> the message type it subscribes to.
RVIZ_TYPES = {"rviz_default_plugins/Image": "sensor_msgs/msg/Image",
              "rviz_default_plugins/Odometry": "nav_msgs/msg/Odometry",
              "rviz_default_plugins/PointCloud2": "sensor_msgs/msg/PointCloud2",
              "rviz_default_plugins/LaserScan": "sensor_msgs/msg/LaserScan"}


def rviz_subscriptions() -> list[tuple[str, str, str]]:
    """(topic, message type, reliability) of each rviz display that subscribes to a topic."""
    doc = yaml.safe_load(RVIZ.read_text())
    manager = doc["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "map"
    return [(d["Topic"]["Value"], RVIZ_TYPES[d["Class"]], d["Topic"]["Reliability Policy"])
            for d in manager["Displays"] if "Topic" in d]


def foxglove_topics() -> set[str]:
    """Every topic a panel of the Foxglove layout reads (3D topics, image/calibration topics, plot paths)."""
    layout = json.loads(FOXGLOVE.read_text())
    topics: set[str] = set()
    for config in layout["configById"].values():
        topics |= set(config.get("topics", {}))
        mode = config.get("imageMode", {})
        topics |= {mode[k] for k in ("imageTopic", "calibrationTopic") if k in mode}
        topics |= {re.match(r"(/[\w/]+)", p["value"]).group(1) for p in config.get("paths", [])}
    return topics


@pytest.fixture
def node(ros_context, tmp_path):
    sim = SimNode(context=ros_context, parameter_overrides=[
        Parameter("backend.name", value="anchor"), Parameter("camera.width", value=64),
        Parameter("camera.height", value=48), Parameter("publish_points", value=True),
        Parameter("publish_scan", value=True)])
    spinner = Spinner(ros_context, sim)
    yield sim
    spinner.stop()
    sim.destroy_node()


def publisher(node, topic: str):
    wait_for(lambda: node.get_publishers_info_by_topic(topic), timeout_s=5.0, what=f"a publisher of {topic}")
    return node.get_publishers_info_by_topic(topic)[0]


def test_every_rviz_display_subscribes_to_a_published_topic_of_its_type_with_a_matching_qos(node):
    subscriptions = rviz_subscriptions()
    assert {t for t, _, _ in subscriptions} >= {"/camera/image_raw", "/camera/depth/image_raw", "/odom",
                                                "/camera/points", "/scan"}
    for topic, msgtype, reliability in subscriptions:
        info = publisher(node, topic)
        assert info.topic_type == msgtype, topic
        # A reliable subscription does not match a best-effort publisher (DDS request/offer).
        offered = info.qos_profile.reliability
        assert reliability == "Best Effort" or offered == ReliabilityPolicy.RELIABLE, \
            f"{topic}: rviz asks Reliable, the node offers {offered.name}"


def test_every_foxglove_panel_reads_a_topic_the_node_publishes(node):
    topics = foxglove_topics()
    assert {"/camera/image_raw", "/camera/depth/image_raw", "/camera/camera_info", "/camera/frame_stats",
            "/odom", "/camera/points", "/scan"} <= topics
    for topic in topics:
        publisher(node, topic)
