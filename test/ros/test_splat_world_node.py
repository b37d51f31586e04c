"""The node publishes a Gaussian-splat world like any other (over DDS)."""

from __future__ import annotations

import numpy as np
import pytest


def test_the_ros_node_publishes_the_bundled_splat_world_without_holes(ros_context) -> None:
    rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from rosutil import Spinner, wait_for
    from worldfm_ros.resources import splat_scene_path
    from worldfm_ros.ros import conversions as conv
    from worldfm_ros.ros.node import SimNode

    node = SimNode(context=ros_context, parameter_overrides=[
        Parameter("scene", value=str(splat_scene_path())), Parameter("backend.name", value="anchor"),
        Parameter("camera.width", value=160), Parameter("camera.height", value=120), Parameter("rate_hz", value=5.0)])
    probe = rclpy.create_node("splat_probe", context=ros_context)
    depths = []
    probe.create_subscription(Image, "camera/depth/image_raw", depths.append, qos_profile_sensor_data)
    spinner = Spinner(ros_context, node, probe)
    try:
        wait_for(lambda: depths, what="a depth image of the splat world")
        depth = conv.image_to_numpy(depths[-1])
        assert depth.shape == (120, 160) and np.mean(depth > 0) > 0.9  # holes only where no capture view looked
    finally:
        spinner.stop()
        node.destroy_node()
        probe.destroy_node()
