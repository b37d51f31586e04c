"""``worldfm bench-sensors``: what each camera effect costs per frame.

One camera (``--size``, default 640x480, 90° hfov) on the bundled default room with the anchor
backend, driving forward at 0.5 m/s while turning at 0.8 rad/s (so the motion effects have
motion to show). For every configuration the same poses are rendered, configurations in
alternation frame by frame after one untimed warm-up frame each; the table reports the median
ms of the sensor stage and of the whole frame (render + select + backend + sensor).
"""

from __future__ import annotations

import argparse
import platform
import statistics
from typing import Any

from worldfm_ros.runtime import add_threads_argument

HELP = "time each camera effect (lens, noise, depth noise, motion blur, rolling shutter) per frame; print a table"

#: configuration name -> the rig camera fields it sets (beside the camera itself)
EFFECTS: dict[str, dict[str, Any]] = {
    "none": {},
    "lens plumb_bob": {"lens": {"model": "plumb_bob", "D": [-0.28, 0.07, 0.0002, -0.0001, 0.0]}},
    "lens equidistant": {"lens": {"model": "equidistant", "D": [0.01, -0.005, 0.001, 0.0]}},
    "photometric": {"photometric": {"enabled": True}},
    "photometric + jpeg 90": {"photometric": {"enabled": True, "jpeg_quality": 90}},
    "depth noise realsense_d435": {"depth_noise": {"preset": "realsense_d435"}},
    "motion blur 8 samples, 10 ms": {"motion_blur": {"exposure_s": 0.01, "samples": 8}},
    "rolling shutter 30 ms": {"rolling_shutter": {"readout_s": 0.03}},
    "all (plumb_bob)": {"lens": {"model": "plumb_bob", "D": [-0.28, 0.07, 0.0002, -0.0001, 0.0]},
                        "photometric": {"enabled": True}, "depth_noise": {"preset": "realsense_d435"},
                        "motion_blur": {"exposure_s": 0.01, "samples": 8}, "rolling_shutter": {"readout_s": 0.03}},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"), help="camera size, px")
    parser.add_argument("--frames", type=int, default=20, help="timed frames per configuration (default 20)")
    parser.add_argument("--effects", nargs="+", choices=sorted(EFFECTS), default=list(EFFECTS),
                        help="configurations to time (default: all)")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    add_threads_argument(parser, default=1)


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile
    from pathlib import Path

    import numpy as np
    import yaml

    from worldfm_ros.backends.config import BackendConfig
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator, planar_pose

    w, h = args.size
    sims = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.effects):
            camera = {"name": "camera", "camera": {"width": w, "height": h, "hfov_deg": 90.0}, **EFFECTS[name]}
            rig = Path(tmp) / f"rig{i}.yaml"
            rig.write_text(yaml.safe_dump({"cameras": [camera]}))
            sim = Simulator(SimConfig(rig=str(rig), backend=BackendConfig(name="anchor")))
            sim.load_scene("")
            sims[name] = sim
    twist = (np.array([0.5, 0.0, 0.0]), np.array([0.0, 0.0, 0.8]))
    poses = [planar_pose(3.5 + 0.05 * i, 2.5, 0.0, 0.08 * i) for i in range(args.frames + 1)]
    sensor = {name: [] for name in sims}
    total = {name: [] for name in sims}
    for k, pose in enumerate(poses):
        for name, sim in sims.items():
            frame = sim.render_cameras(pose, k * 100_000_000, [0], twist=twist)[0]
            if k == 0:
                continue  # warm-up
            t = frame.timings_ms
            sensor[name].append(t.get("sensor", 0.0))
            total[name].append(t["render"] + t["select"] + t["backend"] + t.get("sensor", 0.0))
    rows = [{"effect": name, "sensor_ms": statistics.median(sensor[name]), "frame_ms": statistics.median(total[name])}
            for name in sims]
    print(f"camera effects at {w}x{h}, anchor backend, {args.frames} frames each, {platform.machine()}")
    print(f"{'effect':<34}{'sensor ms':>11}{'frame ms':>10}")
    for r in rows:
        print(f"{r['effect']:<34}{r['sensor_ms']:>11.2f}{r['frame_ms']:>10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": [w, h], "frames": args.frames, "rows": rows}, f, indent=1)
    return 0
