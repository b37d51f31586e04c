"""`worldfm bench-node`: end-to-end latency and sustained rate of the simulator node.

Runs the node in-process on the bundled scene (or --scene) in cmd_vel mode while a
driver turns the robot, and a separate subscriber node measures, per received image,
pose stamp → receipt latency (the image stamp is the time of the pose it was rendered
at), the received rate, the node's per-stage milliseconds (from camera/frame_stats)
and the frames it skipped.

``--soak N`` instead runs one rate until the node has published N frames and prints the
process's resident memory (RSS) after warm-up and at the end, the frames published,
received and lost (published but never delivered to the subscriber) and skipped.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

from worldfm_ros.ros.isolation import add_domain_argument
from worldfm_ros.runtime import add_threads_argument

HELP = "measure the node's pose-stamp → image latency, sustained rate and per-stage ms"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scene", default="", help="scene ('' = bundled default room)")
    parser.add_argument("--backend", default="anchor", help="frame backend")
    parser.add_argument("--model", default="", help="checkpoint for neural backends")
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"), help="camera size, px")
    parser.add_argument("--rate", type=float, nargs="+", default=[10.0, 30.0], help="camera rates to try, Hz")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement time per rate")
    parser.add_argument("--soak", type=int, default=0, metavar="N",
                        help="soak instead: run the first --rate until N frames are published; report RSS and losses")
    add_domain_argument(parser)
    add_threads_argument(parser)


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


class _Session:
    """The node in-process plus a probe node that drives it and records what it receives."""

    def __init__(self, rate_hz: float, args: argparse.Namespace) -> None:
        import rclpy
        from geometry_msgs.msg import Twist
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from worldfm_ros.msg import FrameStats
        from worldfm_ros.ros.conversions import time_ns
        from worldfm_ros.ros.isolation import domain_id
        from worldfm_ros.ros.node import SimNode

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id(args))
        params = {"scene": args.scene, "backend.name": args.backend, "backend.model": args.model,
                  "rate_hz": float(rate_hz), "camera.width": int(args.size[0]), "camera.height": int(args.size[1]),
                  "torch_threads": args.threads}
        self.sim = SimNode(context=self.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.probe = rclpy.create_node("bench_probe", context=self.context)
        self.latencies: list[float] = []
        self.arrivals: list[float] = []
        self.stages: dict[str, list[float]] = {}
        self.image_stamps: set[int] = set()
        self.frame_stamps: dict[int, int] = {}  # frame_index -> stamp, from camera/frame_stats

        def on_image(msg: Image) -> None:
            now = self.probe.get_clock().now().nanoseconds
            self.arrivals.append(time.monotonic())
            self.latencies.append((now - time_ns(msg.header.stamp)) * 1e-6)
            self.image_stamps.add(time_ns(msg.header.stamp))

        def on_stats(msg: FrameStats) -> None:
            self.frame_stamps[msg.frame_index] = time_ns(msg.header.stamp)
            for name, ms in zip(msg.stage_names, msg.stage_ms):
                self.stages.setdefault(name, []).append(ms)

        self.probe.create_subscription(Image, "camera/image_raw", on_image, qos_profile_sensor_data)
        self.probe.create_subscription(FrameStats, "camera/frame_stats", on_stats, 100)
        cmd = self.probe.create_publisher(Twist, "cmd_vel", 10)
        twist = Twist()
        twist.angular.z = 0.3
        self.probe.create_timer(0.05, lambda: cmd.publish(twist))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.sim)
        self.executor.add_node(self.probe)

    def spin_until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.executor.spin_once(timeout_sec=0.02)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        self.spin_until(lambda: time.monotonic() >= end)

    def reset(self) -> None:
        self.latencies.clear(), self.arrivals.clear(), self.stages.clear()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.sim.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)


def _rate(arrivals: list[float]) -> float:
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0


def measure(rate_hz: float, args: argparse.Namespace) -> dict:
    s = _Session(rate_hz, args)
    s.spin_for(2.0)  # warm-up
    s.reset()
    skipped0 = s.sim.frames_skipped
    s.spin_for(args.seconds)
    skipped = s.sim.frames_skipped - skipped0
    s.close()
    return {"target_hz": rate_hz, "rate_hz": _rate(s.arrivals), "frames": len(s.arrivals), "skipped": skipped,
            "latency_p50": _percentile(s.latencies, 50), "latency_p95": _percentile(s.latencies, 95),
            "stages": {k: _percentile(v, 50) for k, v in s.stages.items()}}


def soak(rate_hz: float, frames: int, args: argparse.Namespace) -> dict:
    """Publish ``frames`` frames after a warm-up; RSS in MB at the start and end, frames lost."""
    import psutil

    process = psutil.Process()
    s = _Session(rate_hz, args)
    s.spin_for(2.0)
    s.reset()
    published0, skipped0 = s.sim.frames_published, s.sim.frames_skipped
    rss_start = process.memory_info().rss / 1e6
    t0 = time.monotonic()
    s.spin_until(lambda: s.sim.frames_published - published0 >= frames)
    elapsed = time.monotonic() - t0
    s.sim._frame_timer.cancel()  # no new frames; deliver what is in flight
    s.spin_for(1.0)
    # The window's frames by index (camera/frame_stats is reliable): an image counts when its
    # stamp is one of theirs, so frames from before the window or in flight are not miscounted.
    window = {s.frame_stamps.get(i) for i in range(published0, published0 + frames)} - {None}
    received = len(window & s.image_stamps)
    rss_end = process.memory_info().rss / 1e6
    skipped = s.sim.frames_skipped - skipped0
    s.close()
    return {"published": frames, "received": received, "lost": frames - received,
            "skipped": skipped, "seconds": elapsed, "rate_hz": _rate(s.arrivals),
            "rss_start_mb": rss_start, "rss_end_mb": rss_end}


def run(args: argparse.Namespace) -> int:
    import platform

    w, h = args.size
    machine = platform.processor() or platform.machine()
    if args.soak > 0:
        r = soak(args.rate[0], args.soak, args)
        print(f"node soak: {w}x{h}, backend {args.backend}, {args.rate[0]:g} Hz target, {machine}")
        print("| frames published | received | lost | skipped | seconds | received Hz | RSS start MB | RSS end MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {r['published']} | {r['received']} | {r['lost']} | {r['skipped']} | {r['seconds']:.0f} | "
              f"{r['rate_hz']:.1f} | {r['rss_start_mb']:.0f} | {r['rss_end_mb']:.0f} |")
        return 0
    rows = [measure(r, args) for r in args.rate]
    print(f"node benchmark: {w}x{h}, backend {args.backend}, {args.seconds:g} s per rate, {machine}")
    print("| target Hz | received Hz | frames | skipped | latency p50 ms | latency p95 ms | "
          "render ms | select ms | backend ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s = r["stages"]
        print(f"| {r['target_hz']:g} | {r['rate_hz']:.1f} | {r['frames']} | {r['skipped']} | "
              f"{r['latency_p50']:.1f} | {r['latency_p95']:.1f} | {s.get('render', float('nan')):.1f} | "
              f"{s.get('select', float('nan')):.1f} | {s.get('backend', float('nan')):.1f} |")
    return 0
