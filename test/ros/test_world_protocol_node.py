"""The ROS node publishes a world of a kind the package does not know: the analytic box room of
test/boxworld.py, registered under a scene ``kind``, with no other change to the package."""

from __future__ import annotations

import pytest

from boxworld import FACE_COLOURS, H, W, box_config, box_scene  # noqa: F401  (box_scene: a fixture)


def test_the_ros_node_publishes_a_box_world(box_scene, ros_context) -> None:
    rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from rosutil import Spinner, wait_for
    from worldfm_ros.config import flatten, load_config
    from worldfm_ros.ros import conversions as conv
    from worldfm_ros.ros.node import SimNode
    from worldfm_ros.sim.config import SimConfig

    params = flatten(load_config(SimConfig, box_config(scene=str(box_scene), rate_hz=10.0)))
    node = SimNode(context=ros_context, parameter_overrides=[Parameter(k, value=params[k]) for k in
                                                            ("scene", "backend.name", "camera.width", "camera.height",
                                                             "camera.hfov_deg", "initial_pose", "rate_hz")])
    probe = rclpy.create_node("box_probe", context=ros_context)
    images, depths = [], []
    probe.create_subscription(Image, "camera/image_raw", images.append, qos_profile_sensor_data)
    probe.create_subscription(Image, "camera/depth/image_raw", depths.append, qos_profile_sensor_data)
    spinner = Spinner(ros_context, node, probe)
    try:
        wait_for(lambda: images and depths, what="an image and a depth image of the box world")
        rgb, depth = conv.image_to_numpy(images[-1]), conv.image_to_numpy(depths[-1])
        assert rgb.shape == (H, W, 3) and tuple(rgb[H // 2, W // 2]) == tuple(FACE_COLOURS[1])
        assert depth[H // 2, W // 2] == pytest.approx(6.0 - 3.0 - 0.1, abs=1e-3)
    finally:
        spinner.stop()
        node.destroy_node()
        probe.destroy_node()
