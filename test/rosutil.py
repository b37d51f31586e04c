"""Helpers for tests that run real nodes over rclpy + DDS."""

from __future__ import annotations

import threading
import time
from typing import Callable

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
