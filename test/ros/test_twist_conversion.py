"""geometry_msgs/Twist and the simulator's body twist convert in one place, both ways."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from geometry_msgs.msg import Twist  # noqa: E402

from worldfm_ros.ros import conversions as conv  # noqa: E402


def test_a_twist_message_and_a_body_twist_round_trip_component_by_component():
    linear, angular = np.array([0.5, -0.25, 0.125]), np.array([-1.0, 0.75, 1.5])
    msg = conv.set_twist(Twist(), linear, angular)
    assert (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z) == (
        0.5, -0.25, 0.125, -1.0, 0.75, 1.5)
    body = conv.twist_to_body(msg)
    assert np.array_equal(body.linear, linear) and np.array_equal(body.angular, angular)
