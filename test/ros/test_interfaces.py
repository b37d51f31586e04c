"""The package's generated interfaces are built and usable over rclpy + DDS."""

from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402


def _spin_until(executor: SingleThreadedExecutor, done, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)


def test_frame_stats_message_travels_over_dds(ros_context):
    from worldfm_ros.msg import FrameStats

    pub_node = rclpy.create_node("stats_pub", context=ros_context)
    sub_node = rclpy.create_node("stats_sub", context=ros_context)
    received: list[FrameStats] = []
    sub_node.create_subscription(FrameStats, "frame_stats", received.append, 10)
    pub = pub_node.create_publisher(FrameStats, "frame_stats", 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    sent = FrameStats(frame_index=7, backend="anchor", reference_keyframe=3,
                      stage_names=["render", "backend"], stage_ms=[1.5, 2.25])
    sent.header.stamp.sec = 42

    def publish_and_check() -> bool:
        pub.publish(sent)
        return bool(received)

    _spin_until(executor, publish_and_check)
    executor.shutdown()
    assert received, "no FrameStats message arrived within 10 s"
    got = received[0]
    assert (got.frame_index, got.backend, got.reference_keyframe) == (7, "anchor", 3)
    assert list(got.stage_names) == ["render", "backend"]
    assert list(got.stage_ms) == pytest.approx([1.5, 2.25])
    assert got.header.stamp.sec == 42


def test_load_scene_service_round_trips_over_dds(ros_context):
    from worldfm_ros.srv import LoadScene

    server = rclpy.create_node("scene_server", context=ros_context)
    client_node = rclpy.create_node("scene_client", context=ros_context)

    def handle(request: LoadScene.Request, response: LoadScene.Response) -> LoadScene.Response:
        response.success = False
        response.message = f"{request.path}: no such scene"
        return response

    server.create_service(LoadScene, "load_scene", handle)
    client = client_node.create_client(LoadScene, "load_scene")
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(server)
    executor.add_node(client_node)
    _spin_until(executor, lambda: client.service_is_ready())
    future = client.call_async(LoadScene.Request(path="/nowhere"))
    _spin_until(executor, future.done)
    executor.shutdown()
    assert future.done(), "LoadScene call did not complete within 10 s"
    assert future.result().message == "/nowhere: no such scene"
    assert future.result().success is False


def test_tf_message_type_is_available():
    from tf2_msgs.msg import TFMessage
    from geometry_msgs.msg import TransformStamped

    msg = TFMessage(transforms=[TransformStamped(child_frame_id="base_link")])
    assert msg.transforms[0].child_frame_id == "base_link"
