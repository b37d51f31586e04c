"""Shared fixtures. ROS tests run over real rclpy + Fast DDS, kept on this machine."""

from __future__ import annotations

import os
import random
from pathlib import Path

# Set before rclpy creates any participant: discovery on loopback only, and a domain
# of our own so concurrent test runs on one machine do not see each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))

# Nodes made in this process get the DDS set-up the node's main() gives a real node: with
# Fast DDS's 512 KiB shared-memory segment, a 640x480 frame crowds out the camera_info sent
# after it, and reliable subscribers in other processes lose it. Tests of the processes that
# apply it themselves (launch, bench-node) take the variable out of their children's environment.
from worldfm_ros.ros.dds import use_camera_profile  # noqa: E402

use_camera_profile()

import signal  # noqa: E402

import pytest  # noqa: E402

# A suite started in the background (`cmd &` in a script, nohup) inherits SIGINT ignored, and
# so would every process it starts: `ros2 launch` and `rerun` would never stop on Ctrl-C.
# A handled signal is reset to the default in the child at exec.
signal.signal(signal.SIGINT, signal.default_int_handler)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """Path of the real captured test data (../shared/data); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def ros_context():
    """A fresh rclpy context, shut down after the test."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)
