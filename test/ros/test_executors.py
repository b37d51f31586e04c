"""What spins the node: rclpy's events executor by default, the Python one on request."""

from __future__ import annotations

import pytest

from worldfm_ros.config import load_config
from worldfm_ros.errors import ConfigError
from worldfm_ros.sim.config import SimConfig

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from worldfm_ros.ros.executors import events_executor_available, make_executor  # noqa: E402


@pytest.fixture
def context():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def test_the_default_configuration_spins_with_the_events_executor(context):
    assert events_executor_available(), "Jazzy's rclpy (7.1) has rclpy.experimental.EventsExecutor"
    executor, kind = make_executor(SimConfig().executor, context=context)
    assert kind == "events" and type(executor).__name__ == "EventsExecutor"
    executor.shutdown()


def test_single_is_rclpys_python_single_threaded_executor(context):
    from rclpy.executors import SingleThreadedExecutor

    executor, kind = make_executor("single", context=context)
    assert kind == "single" and isinstance(executor, SingleThreadedExecutor)
    executor.shutdown()


def test_the_events_executor_runs_timers_and_subscriptions_of_the_node(context):
    from std_msgs.msg import String

    node = rclpy.create_node("executor_probe", context=context)
    got: list[str] = []
    node.create_subscription(String, "chatter", lambda m: got.append(m.data), 10)
    pub = node.create_publisher(String, "chatter", 10)
    node.create_timer(0.01, lambda: pub.publish(String(data="tick")))
    executor, _ = make_executor("events", context=context)
    executor.add_node(node)
    for _ in range(200):
        executor.spin_once(timeout_sec=0.05)
        if len(got) >= 5:
            break
    executor.shutdown()
    node.destroy_node()
    assert got[:5] == ["tick"] * 5


def test_an_unknown_executor_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match=r"executor: expected one of \('events', 'single'\), got 'multi'"):
        load_config(SimConfig, {"executor": "multi"})
