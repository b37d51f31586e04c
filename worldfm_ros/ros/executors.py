"""The executor that spins the simulator's nodes: rclpy's C++ events executor, or the Python one.

rclpy's ``SingleThreadedExecutor`` rebuilds its wait set in Python on every ``spin_once``: with a
100 Hz kinematics timer, a camera timer and a cmd_vel subscription, that alone held the GIL for
about a third of a core here and delayed the frame threads (``worldfm bench-node``, RESULTS.md).
``rclpy.experimental.EventsExecutor`` (rclpy >= 7.1 on Jazzy) dispatches the same callbacks from
C++. It is the default; 'single' keeps the Python executor (the fallback where rclpy lacks the
events executor, and the one to compare with).
"""

from __future__ import annotations

from typing import Any

from worldfm_ros.errors import ConfigError
from worldfm_ros.sim.config import EXECUTORS


def events_executor_available() -> bool:
    """Whether this rclpy has ``rclpy.experimental.EventsExecutor``."""
    try:
        from rclpy.experimental import EventsExecutor  # noqa: F401
    except ImportError:
        return False
    return True


def make_executor(kind: str = "events", context: Any = None) -> tuple[Any, str]:
    """(executor, the kind made) for ``kind`` in EXECUTORS, on ``context`` (None = rclpy's default).

    'events' falls back to 'single' where this rclpy has no events executor; the returned kind
    says which one runs.
    """
    if kind not in EXECUTORS:
        raise ConfigError(f"executor: expected one of {EXECUTORS}, got {kind!r}")
    if kind == "events" and events_executor_available():
        from rclpy.experimental import EventsExecutor

        return EventsExecutor(context=context), "events"
    from rclpy.executors import SingleThreadedExecutor

    return SingleThreadedExecutor(context=context), "single"
