"""The node publishes the observed mask of a closed world: which pixels were captured and which
synthesised (``publish_observed``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rooms import BOX_3_WALLS, room_points
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.scene.store import save_scene


def test_the_node_publishes_which_pixels_were_synthesised(ros_context, tmp_path):
    rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from rosutil import Spinner, wait_for
    from worldfm_ros.ros import conversions as conv
    from worldfm_ros.ros.node import SimNode
    from worldfm_ros.build.complete import complete_scene

    src = save_scene(SceneAnchor(*room_points([(0, 0, 4, 3)], BOX_3_WALLS), name="box"), tmp_path / "box")
    complete_scene(src, tmp_path / "closed")
    params = {"scene": str(tmp_path / "closed"), "camera.width": 64, "camera.height": 48, "camera.hfov_deg": 90.0,
              "initial_pose": [2.0, 1.0, 0.0, math.pi / 2], "rate_hz": 10.0, "publish_observed": True}
    sim = SimNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    probe = rclpy.create_node("observed_probe", context=ros_context)
    images, masks = [], []
    probe.create_subscription(Image, "camera/image_raw", images.append, 10)
    probe.create_subscription(Image, "camera/observed", masks.append, 10)
    spinner = Spinner(ros_context, sim, probe)
    try:
        wait_for(lambda: masks and images and any(m.header.stamp == images[-1].header.stamp for m in masks),
                 what="an observed mask beside an image")
        mask = conv.image_to_numpy(masks[-1])
        assert masks[-1].encoding == "mono8" and mask.shape[:2] == (48, 64)
        assert set(np.unique(mask)) <= {0, 255}
        assert 0.0 < np.mean(mask == 255) < 0.5  # the floor was captured, the wall ahead was not
    finally:
        spinner.stop()
        sim.destroy_node()
        probe.destroy_node()
