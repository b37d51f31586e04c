"""`worldfm bench-node`: end-to-end latency and sustained rate of the simulator node.

Runs the node in-process on the bundled scene (or --scene) in cmd_vel mode while a
driver turns the robot, and a separate subscriber node measures, per received image,
pose stamp → receipt latency (the image stamp is the time of the pose it was rendered
at), the received rate, the node's per-stage milliseconds (from camera/frame_stats)
and the frames it skipped.
"""

from __future__ import annotations

import argparse
import time

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
    add_domain_argument(parser)
    add_threads_argument(parser)


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def measure(rate_hz: float, args: argparse.Namespace) -> dict:
    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from worldfm_ros.msg import FrameStats
    from worldfm_ros.ros.conversions import time_ns
    from worldfm_ros.ros.node import SimNode

    from worldfm_ros.ros.isolation import domain_id

    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain_id(args))
    params = {"scene": args.scene, "backend.name": args.backend, "backend.model": args.model,
              "rate_hz": float(rate_hz), "camera.width": int(args.size[0]), "camera.height": int(args.size[1]),
              "torch_threads": args.threads}
    sim = SimNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    probe = rclpy.create_node("bench_probe", context=context)
    latencies, arrivals, stages = [], [], {}

    def on_image(msg: Image) -> None:
        now = probe.get_clock().now().nanoseconds
        arrivals.append(time.monotonic())
        latencies.append((now - time_ns(msg.header.stamp)) * 1e-6)

    def on_stats(msg: FrameStats) -> None:
        for name, ms in zip(msg.stage_names, msg.stage_ms):
            stages.setdefault(name, []).append(ms)

    probe.create_subscription(Image, "camera/image_raw", on_image, qos_profile_sensor_data)
    probe.create_subscription(FrameStats, "camera/frame_stats", on_stats, 100)
    cmd = probe.create_publisher(Twist, "cmd_vel", 10)
    twist = Twist()
    twist.angular.z = 0.3
    probe.create_timer(0.05, lambda: cmd.publish(twist))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sim)
    executor.add_node(probe)
    warmup_end = time.monotonic() + 2.0
    while time.monotonic() < warmup_end:
        executor.spin_once(timeout_sec=0.02)
    latencies.clear(), arrivals.clear(), stages.clear()
    skipped0 = sim.frames_skipped
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.02)
    skipped = sim.frames_skipped - skipped0
    executor.shutdown()
    sim.destroy_node()
    probe.destroy_node()
    rclpy.shutdown(context=context)
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    return {"target_hz": rate_hz, "rate_hz": rate, "frames": len(arrivals), "skipped": skipped,
            "latency_p50": _percentile(latencies, 50), "latency_p95": _percentile(latencies, 95),
            "stages": {k: _percentile(v, 50) for k, v in stages.items()}}


def run(args: argparse.Namespace) -> int:
    import platform

    rows = [measure(r, args) for r in args.rate]
    w, h = args.size
    print(f"node benchmark: {w}x{h}, backend {args.backend}, {args.seconds:g} s per rate, "
          f"{platform.processor() or platform.machine()}")
    print("| target Hz | received Hz | frames | skipped | latency p50 ms | latency p95 ms | "
          "render ms | select ms | backend ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s = r["stages"]
        print(f"| {r['target_hz']:g} | {r['rate_hz']:.1f} | {r['frames']} | {r['skipped']} | "
              f"{r['latency_p50']:.1f} | {r['latency_p95']:.1f} | {s.get('render', float('nan')):.1f} | "
              f"{s.get('select', float('nan')):.1f} | {s.get('backend', float('nan')):.1f} |")
    return 0
