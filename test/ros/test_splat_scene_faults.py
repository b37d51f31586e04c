"""A running ``sim_node`` process on a splat world, given broken splat scenes through ``~/load_scene``:
it answers with one line naming the file and what is wrong, keeps its old world and keeps publishing."""

from __future__ import annotations

import shutil
import signal

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from rosutil import SimProcess, Spinner, wait_for  # noqa: E402
from worldfm_ros.build.build_splats import splats_from_points  # noqa: E402
from worldfm_ros.build.procedural import make_room_scene, random_room  # noqa: E402
from worldfm_ros.camera import PinholeCamera  # noqa: E402
from worldfm_ros.ros import conversions as conv  # noqa: E402
from worldfm_ros.world.splats import SPLATS_PLY, SplatWorld, save_splat_world  # noqa: E402

W, H = 64, 48
START_S = 90.0  # a node process imports torch and loads a scene: slow on a busy 2-core machine


def truncate(ply) -> None:
    data = ply.read_bytes()
    ply.write_bytes(data[: len(data) // 2])


def garble(ply) -> None:
    """64 bytes of 0xff (NaN floats) into the first splats after the header."""
    data = bytearray(ply.read_bytes())
    body = data.index(b"end_header\n") + len(b"end_header\n")
    data[body: body + 64] = b"\xff" * 64
    ply.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """A good splat room (the launch-time scene) and broken copies of it, as a user keeps them."""
    root = tmp_path_factory.mktemp("splat_scenes")
    room = random_room(seed=3, size=(6.0, 5.0, 2.8), num_obstacles=1)
    anchor = make_room_scene(room, PinholeCamera.from_fov(W, H, 90.0), num_views=8, num_keyframes=2)
    world = SplatWorld(splats_from_points(anchor.points, anchor.colors, 0.05), anchor.map_T_scene, anchor.keyframes,
                       "splat_room")
    save_splat_world(world, root / "good")
    for name, spoil in (("truncated", truncate), ("garbled", garble)):
        shutil.copytree(root / "good", root / name)
        spoil(root / name / SPLATS_PLY)
    return root


@pytest.fixture(scope="module")
def node(scenes, tmp_path_factory):
    """A node process on the good splat room (standing still), and the images it publishes."""
    sim = SimProcess({"scene": str(scenes / "good"), "backend.name": "anchor", "camera.width": W, "camera.height": H,
                      "rate_hz": 10.0, "initial_pose": [3.0, 2.5, 0.0, 0.0]},
                     tmp_path_factory.mktemp("log") / "node.log")
    context = sim.context()
    observer = rclpy.create_node("splat_fault_observer", context=context)
    images: list[Image] = []
    observer.create_subscription(Image, "camera/image_raw", images.append, qos_profile_sensor_data)
    spinner = Spinner(context, observer)
    try:
        wait_for(lambda: images or sim.proc.poll() is not None, timeout_s=START_S, what="the first image")
        assert sim.proc.poll() is None, sim.output()
        yield sim, images
    finally:
        spinner.stop()
        observer.destroy_node()
        rclpy.shutdown(context=context)
        rc, out = sim.stop(signal.SIGINT)
        assert rc == 0 and "Traceback" not in out, out


@pytest.mark.parametrize("name, says", [
    ("truncated", "splats.ply: not a readable Gaussian-splat file"),
    ("garbled", "splats.ply: means: contains NaN or inf"),
])
def test_a_broken_splat_scene_is_refused_and_the_old_world_keeps_publishing(node, scenes, name, says):
    sim, images = node
    wait_for(lambda: len(images) >= 2, timeout_s=30, what="two images")
    before = conv.image_to_numpy(images[-1])
    assert before.mean() > 10, "the good splat room is drawn"
    out = sim.ros2("service", "call", "/worldfm_sim/load_scene", "worldfm_ros/srv/LoadScene",
                   f"{{path: '{scenes / name}'}}")
    assert "success=False" in out and f"{scenes / name}/{says}" in out, out
    assert "\\n" not in out.split("message=", 1)[1], f"one line: {out}"
    n = len(images)
    wait_for(lambda: len(images) >= n + 3, timeout_s=30, what="3 more images")
    assert np.array_equal(conv.image_to_numpy(images[-1]), before), "the node drew another world"
    assert sim.proc.poll() is None
