"""IMU samples on ``imu/data`` from a thread of their own, at the pace a best-effort subscriber can take.

The kinematics tick integrates the IMU (two samples a tick at 200 Hz and 100 Hz kinematics).
When the node's process gets no CPU for a while (a render holding the GIL, other jobs on the
machine), the next tick integrates the whole stall and yields its samples at once, correctly
stamped. Published in one go, such a burst overruns a best-effort subscriber: with
``qos_profile_sensor_data`` its queue holds 5 samples, and a VIO front-end that did not take
them within the burst lost the rest (6.4 % of the samples in a run with 2 cameras, gaps up to
160 ms). Here the tick only queues its samples; this thread publishes them in stamp order, at
once while there is no backlog, and a backlog ``BURST`` sample at a time, ``PACE_S`` apart,
so that a subscriber can take each one before the next arrives. A backlog of n samples drains
in about n · PACE_S / (1 − PACE_S · rate), 1.7 n · PACE_S at 200 Hz.

A thread that wakes to publish waits for the GIL until the thread holding it (a render running
Python code) reaches Python's switch interval, 5 ms by default: a whole IMU period at 200 Hz,
so the backlog never drained while the cameras rendered. :func:`use_short_switch_interval` sets
it to ``SWITCH_INTERVAL_S`` for the node's process (``worldfm bench-node --cameras``,
benchmarks/RESULTS.md, "IMU delivery").
"""

from __future__ import annotations

import queue
import sys
import threading
import time

from rclpy.publisher import Publisher
from sensor_msgs.msg import Imu

#: the time between two publications of a backlog, s: a Python subscriber on a busy machine takes
#: one sample in it, and a backlog still drains 2.5x faster than samples come at 200 Hz
PACE_S = 0.002
#: samples published back to back in a backlog (3 at 1 ms apart lost 0.05-0.56 % where 1 at 2 ms lost none)
BURST = 1
#: the GIL switch interval of a node process, s (Python's default is 5 ms)
SWITCH_INTERVAL_S = 0.001


class ImuStream:
    """Publishes the ``Imu`` messages given to :meth:`put` on ``publisher`` from its own thread,
    in order, a backlog ``burst`` messages at a time, ``pace_s`` seconds apart; :meth:`close`
    publishes what is queued and stops the thread."""

    def __init__(self, publisher: Publisher, pace_s: float = PACE_S, burst: int = BURST) -> None:
        self.publisher, self.pace_s, self.burst = publisher, pace_s, burst
        self._queue: queue.SimpleQueue[Imu | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="worldfm_imu", daemon=True)
        self._thread.start()

    def put(self, msgs: list[Imu]) -> None:
        for msg in msgs:
            self._queue.put(msg)

    def _run(self) -> None:
        sent = 0
        while (msg := self._queue.get()) is not None:
            self.publisher.publish(msg)
            sent += 1
            if sent % self.burst == 0 and not self._queue.empty():
                time.sleep(self.pace_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Publish the queued samples, then stop the thread (waits at most ``timeout_s``)."""
        self._queue.put(None)
        self._thread.join(timeout=timeout_s)


def use_short_switch_interval() -> None:
    """Let a thread that wakes to publish take the GIL within SWITCH_INTERVAL_S (call once per process)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
