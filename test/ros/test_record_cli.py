"""`worldfm record` closes its bag cleanly on SIGINT, keeping every message received before it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from nav_msgs.msg import Odometry  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from rosutil import wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_sigint_leaves_a_readable_bag_with_every_message_sent_before_it(ros_context, tmp_path):
    bag = tmp_path / "bag"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen([sys.executable, "-m", "worldfm_ros.cli", "record", "-o", str(bag)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("odom_source", context=ros_context)
    pub = node.create_publisher(Odometry, "odom", 100)
    wait_for(lambda: pub.get_subscription_count() > 0, timeout_s=30, what="the recorder's subscription")
    sent = 50
    for i in range(sent):
        msg = Odometry()
        msg.header.stamp.sec = 1000 + i
        pub.publish(msg)
        time.sleep(0.005)
    time.sleep(1.0)  # delivery on loopback is fast; give the recorder time to write
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    node.destroy_node()
    assert proc.returncode == 0, out
    assert (bag / "metadata.yaml").is_file(), "the bag was not finalised"
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        stamps = [reader.deserialize(raw, c.msgtype).header.stamp.sec
                  for c, _, raw in reader.messages() if c.topic == "/odom"]
    assert stamps == [1000 + i for i in range(sent)]
