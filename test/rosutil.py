"""Helpers for tests that run real nodes over rclpy + DDS."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor


class Spinner:
    """Spins nodes of one context in a background thread."""

    def __init__(self, context, *nodes) -> None:
        # Callbacks are short (the node renders in its own thread); a multi-threaded executor's
        # spin_once loop would busy-poll and starve that thread of the GIL.
        self.executor = SingleThreadedExecutor(context=context)
        for n in nodes:
            self.executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._stop = False
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop:
            try:
                self.executor.spin_once(timeout_sec=0.02)
            except rclpy.executors.ExternalShutdownException:
                return

    def add(self, node) -> None:
        self.executor.add_node(node)

    def stop(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self.executor.shutdown()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


REPO_ROOT = Path(__file__).resolve().parents[1]
SIM_NODE = REPO_ROOT / "install" / "worldfm_ros" / "lib" / "worldfm_ros" / "sim_node"


_domains = itertools.count()


def fresh_domain_id() -> int:
    """A ROS domain of its own (1..101, stepping from this test run's ROS_DOMAIN_ID), so that a node
    process and its observers see no other test's node."""
    return (int(os.environ.get("ROS_DOMAIN_ID", "0")) + 37 * (1 + next(_domains))) % 101 + 1


class SimProcess:
    """A real ``sim_node`` process from the colcon install (what ``ros2 run worldfm_ros sim_node`` runs),
    started with ``--ros-args -p name:=value`` for each parameter in a ROS domain of its own
    (``domain_id``); output goes to ``log``. ``context()`` and ``ros2()`` reach it in that domain."""

    def __init__(self, params: dict, log: Path) -> None:
        if not SIM_NODE.is_file():
            pytest.skip(f"{SIM_NODE} missing: run scripts/setup.sh (colcon install)")
        args = [str(SIM_NODE), "--ros-args"]
        for key, value in params.items():
            args += ["-p", f"{key}:={_ros_value(value)}"]
        self.domain_id = fresh_domain_id()
        self.env = dict(os.environ, ROS_DOMAIN_ID=str(self.domain_id))
        self.log = log
        self._out = open(log, "w")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT, text=True, env=self.env)

    def context(self):
        """A new rclpy context in the node's domain (the caller shuts it down)."""
        context = rclpy.context.Context()
        rclpy.init(context=context, domain_id=self.domain_id)
        return context

    def ros2(self, *args: str, timeout_s: float = 60.0) -> str:
        """Run the real ``ros2`` CLI in the node's domain (skips when it is not installed)."""
        exe = shutil.which("ros2")
        if exe is None:
            pytest.skip("ros2 CLI not installed (scripts/setup.sh installs it from ../shared/ros2)")
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout_s, env=self.env)
        return done.stdout + done.stderr

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 30.0) -> tuple[int, str]:
        """Send ``sig``, wait for the exit; (return code, everything the node printed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._out.close()
        return rc, self.log.read_text()


def _ros_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_ros_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)
