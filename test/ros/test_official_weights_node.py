"""The node's ``backend.model`` parameter runs an official-layout checkpoint (random weights, the
release's ``{"state_dict": ...}`` layout; test/official.py)."""

from __future__ import annotations

import pytest

from official import TINY_OFFICIAL, official_pth, vae_dir  # noqa: F401  (fixtures)


def test_node_parameter_backend_model_runs_an_official_pth(official_pth, vae_dir, ros_context, tmp_path):
    pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from rosutil import Spinner, wait_for
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.ros.node import SimNode
    from worldfm_ros.build.procedural import make_room_scene, random_room
    from worldfm_ros.scene.store import save_scene

    scene = tmp_path / "room"
    save_scene(make_room_scene(random_room(seed=5, size=(6.0, 5.0, 2.8), num_obstacles=1),
                               PinholeCamera.from_fov(80, 60, 90.0), num_views=8, num_keyframes=2), scene)
    params = {"scene": str(scene), "camera.width": 80, "camera.height": 60, "initial_pose": [3.0, 2.5, 0.0, 0.0],
              "rate_hz": 5.0, "backend.name": "torch", "backend.model": str(official_pth[0]),
              "backend.vae": str(vae_dir), "backend.steps": 2, "backend.device": "cpu"}
    sim = SimNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    probe = __import__("rclpy").create_node("probe", context=ros_context)
    images: list[Image] = []
    probe.create_subscription(Image, "camera/image_raw", images.append, qos_profile_sensor_data)
    spinner = Spinner(ros_context, sim, probe)
    try:
        assert sim.backend.name == "torch"
        assert sim.backend.model.cfg == TINY_OFFICIAL
        wait_for(lambda: images, what="an image from the official-layout model")
        assert (images[-1].width, images[-1].height) == (80, 60)
    finally:
        spinner.stop()
        sim.destroy_node()
        probe.destroy_node()
