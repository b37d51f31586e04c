"""Shared fixtures. ROS tests run over real rclpy + Fast DDS, kept on this machine."""

from __future__ import annotations

import os
import random
from pathlib import Path

# Set before rclpy creates any participant: discovery on loopback only, and a domain
# of our own so concurrent test runs on one machine do not see each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))

import pytest  # noqa: E402

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
