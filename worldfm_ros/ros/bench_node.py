"""`worldfm bench-node`: end-to-end latency and sustained rate of the simulator node.

Runs the node in-process on the bundled scene (or --scene) in cmd_vel mode, with the executor
of ``ros2 run``, while a driver turns the robot. Consumers in processes of their own (by default
one for camera/image_raw and one for camera/depth/image_raw, as a perception stack has them)
record, per received image, pose stamp → receipt latency (the image stamp is the time of the
pose it was rendered at). Printed: the received rates, the latency percentiles, the node's
per-stage milliseconds (medians, from camera/frame_stats) and the frames it skipped.

``--soak N`` instead runs one rate until the node has published N frames and prints the
process's resident memory (RSS) after warm-up and at the end, the frames published,
received and lost (published but never delivered to the subscriber) and skipped.

``--cameras N [N ...]`` instead runs, per N, a rig of N cameras and an IMU at 200 Hz at the
first --rate, and prints each camera's rate and largest frame gap, and the IMU samples lost by
a best-effort and a reliable subscriber (:mod:`worldfm_ros.ros.bench_rig`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

from worldfm_ros.ros.isolation import add_domain_argument
from worldfm_ros.runtime import add_threads_argument
from worldfm_ros.sim.config import EXECUTORS
from worldfm_ros.sim.cli_config import add_config_arguments

HELP = "measure the node's pose-stamp → image latency, sustained rate and per-stage ms"

#: this command's flags and the SimConfig fields they set (beside the common ones; --rate is per session)
CONFIG_FLAGS: dict[str, str] = {"rig": "rig", "executor": "executor"}
#: what the consumer processes read, by --consumers name; any other name with a '/' is a topic
CONSUMER_TOPICS = {"image": "camera/image_raw", "depth": "camera/depth/image_raw"}


def consumer_topic(name: str) -> str:
    """The topic of a --consumers entry: a CONSUMER_TOPICS name, or an image topic itself."""
    if name in CONSUMER_TOPICS:
        return CONSUMER_TOPICS[name]
    if "/" in name:
        return name
    raise ValueError(f"--consumers {name!r}: expected one of {sorted(CONSUMER_TOPICS)} or an image topic "
                     "(e.g. stereo/right/image_raw)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--rate", type=float, nargs="+", default=[10.0, 30.0], help="camera rates to try, Hz")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement time per rate")
    parser.add_argument("--soak", type=int, default=0, metavar="N",
                        help="soak instead: run the first --rate until N frames are published; report RSS and losses")
    parser.add_argument("--consumers", nargs="+", type=_consumer, default=["image", "depth"],
                        help="topics read by consumer processes: image, depth or an image topic such as "
                             "stereo/right/image_raw (the first gives the rate and latency columns)")
    parser.add_argument("--cameras", type=int, nargs="+", default=[], metavar="N",
                        help="rig sweep instead: N cameras (--size, default 640x480) and an IMU at 200 Hz per session, "
                             "at the first --rate; prints per-camera rates and gaps and the IMU samples lost")
    parser.add_argument("--rig", default=None, help="sensor rig: stereo | stereo_imu | a rig YAML (default: one camera)")
    parser.add_argument("--executor", choices=EXECUTORS, default=None,
                        help="what spins the node: events (rclpy's C++ events executor) | single (rclpy's Python "
                             "SingleThreadedExecutor) (default: the configuration's, events)")
    parser.add_argument("--stats-camera", default="camera",
                        help="the camera whose frame_stats give the stage and skip columns (stereo/left for the rigs)")
    parser.add_argument("--fastdds-defaults", action="store_true",
                        help="leave Fast DDS at its defaults instead of the node's camera profile (to compare)")
    parser.add_argument("--json", default="", metavar="FILE", help="also write the figures to FILE")
    add_domain_argument(parser)
    add_threads_argument(parser, default=None, default_text="torch_threads of the configuration, 1")


def _consumer(name: str) -> str:
    try:
        consumer_topic(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


class _Consumers:
    """One ``bench_consumer`` process per topic (an image topic, or ``imu/data <qos>`` for an IMU
    subscriber with that QoS); ``results()`` stops them and reads their records, by that key."""

    def __init__(self, topics: list[str], domain: int) -> None:
        import subprocess
        import sys

        def argv(key: str) -> list[str]:
            topic, _, imu_qos = key.partition(" ")
            return ["--topic", topic, "--domain-id", str(domain)] + (["--imu", imu_qos] if imu_qos else [])

        self.procs = {t: subprocess.Popen([sys.executable, "-m", "worldfm_ros.ros.bench_consumer", *argv(t)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                      for t in topics}
        for topic, proc in self.procs.items():
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"bench consumer for {topic} did not start (exit code {proc.poll()})")

    def kill(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()

    def results(self) -> dict[str, dict]:
        import json

        out = {}
        for topic, proc in self.procs.items():
            stdout, _ = proc.communicate(input="", timeout=30)
            out[topic] = json.loads(stdout.strip().splitlines()[-1])
        return out


class _Session:
    """The node in-process, a probe node that drives it and reads its frame stats, and the
    consumers of its images in processes of their own."""

    def __init__(self, rate_hz: float, args: argparse.Namespace, rig: str = "", cameras: tuple[str, ...] = (),
                 consumers: tuple[str, ...] = ()) -> None:
        import rclpy
        from geometry_msgs.msg import Twist
        from rclpy.parameter import Parameter

        from worldfm_ros.msg import FrameStats
        from worldfm_ros.ros.conversions import time_ns
        from worldfm_ros.ros.dds import use_camera_profile
        from worldfm_ros.ros.executors import make_executor
        from worldfm_ros.ros.imu_stream import use_short_switch_interval
        from worldfm_ros.ros.isolation import domain_id
        from worldfm_ros.ros.node import SimNode
        from worldfm_ros.sim.cli_config import changed_fields, sim_config_from_args

        params = {**changed_fields(sim_config_from_args(args, CONFIG_FLAGS)), "rate_hz": float(rate_hz)}
        if rig:
            params["rig"] = rig
        if not args.fastdds_defaults:
            use_camera_profile()  # as ros.node.main does
        use_short_switch_interval()  # as ros.node.main does
        domain = domain_id(args)
        self.consumers = _Consumers(list(consumers) or [consumer_topic(c) for c in args.consumers], domain)
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain)
        try:
            self.sim = SimNode(context=self.context,
                               parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        except BaseException:
            self.consumers.kill()
            rclpy.shutdown(context=self.context)
            raise
        self.probe = rclpy.create_node("bench_probe", context=self.context)
        self.window_start_ns = 0
        self.stages: dict[str, list[float]] = {}
        self.frame_stamps: dict[int, int] = {}  # frame_index -> stamp, from camera/frame_stats
        self.camera_stamps: dict[str, list[int]] = {c: [] for c in cameras}  # every frame's stamp, per camera

        def on_stats(msg: FrameStats) -> None:
            self.frame_stamps[msg.frame_index] = time_ns(msg.header.stamp)
            for name, ms in zip(msg.stage_names, msg.stage_ms):
                self.stages.setdefault(name, []).append(ms)

        stats_cameras = cameras or (args.stats_camera,)
        self.probe.create_subscription(FrameStats, f"{stats_cameras[0]}/frame_stats", on_stats, 100)
        for name in cameras:
            self.probe.create_subscription(
                FrameStats, f"{name}/frame_stats",
                lambda msg, n=name: self.camera_stamps[n].append(time_ns(msg.header.stamp)), 100)
        cmd = self.probe.create_publisher(Twist, "cmd_vel", 10)
        twist = Twist()
        twist.angular.z = 0.3
        self.probe.create_timer(0.05, lambda: cmd.publish(twist))
        # The node's own executor (ros.node.main); the probe's work in it is one small message per frame.
        self.executor, self.executor_kind = make_executor(self.sim.cfg.executor, context=self.context)
        self.executor.add_node(self.sim)
        self.executor.add_node(self.probe)

    def spin_until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.executor.spin_once(timeout_sec=0.02)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        self.spin_until(lambda: time.monotonic() >= end)

    def reset(self) -> None:
        """Start the measurement window now."""
        self.stages.clear()
        self.window_start_ns = time.time_ns()

    def close(self) -> dict[str, dict]:
        """Stop the node, then the consumers; their records of the window, by topic."""
        import rclpy

        self.executor.shutdown()
        self.sim.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)
        time.sleep(0.5)  # let the consumers take what is in flight
        records = self.consumers.results()
        for r in records.values():
            r["all_stamps_ns"] = set(r["stamps_ns"])
            keep = [i for i, t in enumerate(r["receipt_ns"]) if t >= self.window_start_ns]
            for key in ("stamps_ns", "receipt_ns", "convert_ms"):
                r[key] = [r[key][i] for i in keep] if r[key] else []  # an IMU record has no convert_ms
        return records


def _rate(receipt_ns: list[int]) -> float:
    return (len(receipt_ns) - 1) / ((receipt_ns[-1] - receipt_ns[0]) * 1e-9) if len(receipt_ns) > 1 else 0.0


def _latencies_ms(record: dict) -> list[float]:
    return [(r - s) * 1e-6 for s, r in zip(record["stamps_ns"], record["receipt_ns"])]


def measure(rate_hz: float, args: argparse.Namespace) -> dict:
    s = _Session(rate_hz, args)
    s.spin_for(2.0)  # warm-up (and discovery of the consumers)
    s.reset()
    skipped0, published0 = s.sim.frames_skipped, s.sim.frames_published
    s.spin_for(args.seconds)
    skipped, published1 = s.sim.frames_skipped - skipped0, s.sim.frames_published
    stages = {k: _percentile(v, 50) for k, v in s.stages.items()}
    window = {s.frame_stamps.get(i) for i in range(published0, published1)} - {None}
    records = s.close()
    topics = {name: records[consumer_topic(name)] for name in args.consumers}
    first = topics[args.consumers[0]]
    latencies = _latencies_ms(first)
    return {"target_hz": rate_hz, "executor": s.executor_kind, "rate_hz": _rate(first["receipt_ns"]),
            "published": len(window), "frames": len(first["receipt_ns"]), "skipped": skipped,
            "latency_p50": _percentile(latencies, 50), "latency_p95": _percentile(latencies, 95),
            "consumers": {name: {"rate_hz": _rate(r["receipt_ns"]), "frames": len(r["receipt_ns"]),
                                 "lost": len(window - r["all_stamps_ns"]),
                                 "latency_p95": _percentile(_latencies_ms(r), 95)} for name, r in topics.items()},
            "stages": stages}


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
    s.sim.stop_frames()  # no new frames; deliver what is in flight
    s.spin_for(1.0)
    rss_end = process.memory_info().rss / 1e6
    skipped = s.sim.frames_skipped - skipped0
    frame_stamps = dict(s.frame_stamps)
    first = s.close()[consumer_topic(args.consumers[0])]
    # The window's frames by index (camera/frame_stats is reliable): an image counts when its
    # stamp is one of theirs, so frames from before the window or in flight are not miscounted.
    window = {frame_stamps.get(i) for i in range(published0, published0 + frames)} - {None}
    received = len(window & first["all_stamps_ns"])
    return {"published": frames, "received": received, "lost": frames - received,
            "skipped": skipped, "seconds": elapsed, "rate_hz": _rate(first["receipt_ns"]),
            "rss_start_mb": rss_start, "rss_end_mb": rss_end}


def measure_rig(cameras: int, args: argparse.Namespace) -> dict:
    """One session of a rig of ``cameras`` cameras and an IMU (worldfm_ros.ros.bench_rig) at the first --rate."""
    import tempfile

    from worldfm_ros.ros import bench_rig
    from worldfm_ros.sim.cli_config import sim_config_from_args

    config = sim_config_from_args(args, CONFIG_FLAGS)
    names = bench_rig.camera_names(cameras)
    imu = {q: f"imu/data {q}" for q in ("sensor_data", "reliable")}
    with tempfile.TemporaryDirectory() as tmp:
        rig = bench_rig.write_rig(Path(tmp) / "rig.yaml", cameras, config.camera.width, config.camera.height)
        s = _Session(args.rate[0], args, rig=str(rig), cameras=tuple(names),
                     consumers=(f"{names[0]}/image_raw", *imu.values()))
        s.spin_for(2.0)
        s.reset()
        skipped0 = s.sim.frames_skipped
        s.spin_for(args.seconds)
        end_ns = time.time_ns()
        skipped = s.sim.frames_skipped - skipped0
        stamps = {n: list(v) for n, v in s.camera_stamps.items()}
        stages = {k: _percentile(v, 50) for k, v in s.stages.items()}
        records = s.close()
    start_ns = s.window_start_ns
    received = records[f"{names[0]}/image_raw"]
    return {"cameras": cameras, "target_hz": args.rate[0], "executor": s.executor_kind, "skipped": skipped,
            "per_camera": {n: bench_rig.stream_figures(stamps[n], start_ns, end_ns) for n in names},
            "received_hz": _rate(received["receipt_ns"]),
            "imu": {q: bench_rig.imu_figures(records[k]["stamps_ns"], records[k]["receipt_ns"], start_ns, end_ns,
                                             bench_rig.IMU_RATE_HZ) for q, k in imu.items()},
            "stages": stages}


def _print_rig(rows: list[dict], args: argparse.Namespace, header: str, stage_columns: tuple[str, ...]) -> None:
    from worldfm_ros.ros.bench_rig import IMU_RATE_HZ

    print(f"rig benchmark: {header}, {args.seconds:g} s per rig, IMU {IMU_RATE_HZ:g} Hz, {rows[0]['executor']} executor")
    print("| cameras | target Hz | per-camera Hz | per-camera max gap ms | skipped | cam0 received Hz | "
          "IMU best-effort lost % | max gap ms | IMU reliable lost % | max gap ms | IMU max receipt gap ms"
          + "".join(f" | {k} ms" for k in stage_columns) + " |")
    print("|---:|" + "---:|" * (10 + len(stage_columns)))
    for r in rows:
        cams, be, rel, st = r["per_camera"].values(), r["imu"]["sensor_data"], r["imu"]["reliable"], r["stages"]
        print(f"| {r['cameras']} | {r['target_hz']:g} | " + " / ".join(f"{c['rate_hz']:.1f}" for c in cams)
              + " | " + " / ".join(f"{c['max_gap_ms']:.0f}" for c in cams)
              + f" | {r['skipped']} | {r['received_hz']:.1f} | {be['lost_pct']:.2f} ({be['lost']} of {be['expected']})"
              + f" | {be['max_gap_ms']:.0f} | {rel['lost_pct']:.2f} ({rel['lost']} of {rel['expected']})"
              + f" | {rel['max_gap_ms']:.0f} | {be['max_receipt_gap_ms']:.0f}"
              + "".join(f" | {st.get(k, float('nan')):.1f}" for k in stage_columns) + " |")


def run(args: argparse.Namespace) -> int:
    import platform

    from worldfm_ros.sim.cli_config import sim_config_from_args
    from worldfm_ros.frame.pipeline import FRAME_STAGES  # imports torch: not at module level, read by every CLI start

    stage_columns = (*FRAME_STAGES, "publish")  # per-stage ms: the frame's stages, then the publishing thread's
    config = sim_config_from_args(args, CONFIG_FLAGS)
    w, h, backend, threads = config.camera.width, config.camera.height, config.backend.name, config.torch_threads
    machine = platform.processor() or platform.machine()
    if args.cameras:
        rows = [measure_rig(n, args) for n in args.cameras]
        _print_rig(rows, args, f"{w}x{h}, backend {backend}, torch {threads} thread(s), {machine}", stage_columns)
        if args.json:
            import json

            Path(args.json).write_text(json.dumps({"size": [w, h], "backend": backend, "rigs": rows}, indent=1))
        return 0
    if args.soak > 0:
        r = soak(args.rate[0], args.soak, args)
        print(f"node soak: {w}x{h}, backend {backend}, {args.rate[0]:g} Hz target, {machine}")
        print("| frames published | received | lost | skipped | seconds | received Hz | RSS start MB | RSS end MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {r['published']} | {r['received']} | {r['lost']} | {r['skipped']} | {r['seconds']:.0f} | "
              f"{r['rate_hz']:.1f} | {r['rss_start_mb']:.0f} | {r['rss_end_mb']:.0f} |")
        return 0
    rows = [measure(r, args) for r in args.rate]
    names = args.consumers
    print(f"node benchmark: {w}x{h}, backend {backend}, {args.seconds:g} s per rate, consumers "
          f"{' + '.join(names)} in their own processes, torch {threads} thread(s), {rows[0]['executor']} executor, "
          f"{machine}")
    print("| target Hz | " + " | ".join(f"{n} Hz" for n in names) + " | published | skipped | "
          + " | ".join(f"{n} lost" for n in names) + " | latency p50 ms | "
          + " | ".join(f"{n} p95 ms" for n in names) + "".join(f" | {k} ms" for k in stage_columns) + " |")
    print("|---:|" + "---:|" * (3 * len(names) + 3 + len(stage_columns)))
    for r in rows:
        s, c = r["stages"], r["consumers"]
        print(f"| {r['target_hz']:g} | " + " | ".join(f"{c[n]['rate_hz']:.1f}" for n in names)
              + f" | {r['published']} | {r['skipped']} | " + " | ".join(str(c[n]["lost"]) for n in names)
              + f" | {r['latency_p50']:.1f} | " + " | ".join(f"{c[n]['latency_p95']:.1f}" for n in names)
              + "".join(f" | {s.get(k, float('nan')):.1f}" for k in stage_columns) + " |")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({"size": [w, h], "backend": backend, "rates": rows}, indent=1))
    return 0
