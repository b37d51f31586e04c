"""The bag recorder writes rosbag2 MCAP that third-party readers accept, with the offered QoS."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from rosutil import Spinner, wait_for  # noqa: E402
from worldfm_ros.ros.recorder import BagRecorder, simulator_topics  # noqa: E402
from worldfm_ros.ros.tf_io import TfPublisher  # noqa: E402


def test_static_transforms_are_recorded_with_transient_local_qos(ros_context, tmp_path):
    rec_node = rclpy.create_node("rec", context=ros_context)
    pub_node = rclpy.create_node("pub", context=ros_context)
    recorder = BagRecorder(rec_node, tmp_path / "bag", simulator_topics())
    spinner = Spinner(ros_context, rec_node, pub_node)
    TfPublisher(pub_node).send_static([(np.eye(4), 0, "base_link", "camera_link")])
    wait_for(lambda: recorder.counts.get("/tf_static", 0) >= 1, what="a recorded /tf_static message")
    spinner.stop()
    recorder.close()
    meta = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"] for t in meta["topics_with_message_count"]}
    qos = topics["/tf_static"]["offered_qos_profiles"]
    qos = yaml.safe_load(qos) if isinstance(qos, str) else qos
    assert str(qos[0]["durability"]).lower() in ("1", "transient_local")
    assert str(qos[0]["reliability"]).lower() in ("1", "reliable")
    with AnyReader([tmp_path / "bag"], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                if c.topic == "/tf_static"]
    assert msgs[0].transforms[0].child_frame_id == "camera_link"


def test_recorder_refuses_to_overwrite_an_existing_bag(ros_context, tmp_path):
    (tmp_path / "bag").mkdir()
    node = rclpy.create_node("rec2", context=ros_context)
    with pytest.raises(Exception, match="already exists"):
        BagRecorder(node, tmp_path / "bag", simulator_topics())
