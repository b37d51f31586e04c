"""``worldfm bench-env``: step throughput of the in-process gymnasium env.

For every camera size, one ``WorldFMEnv`` on the scene drives a slow circle (0.3 m/s,
0.5 rad/s; dt 0.1 s), resetting when an episode ends, after a few untimed warm-up steps.
Each step integrates the kinematics, checks collisions, renders the anchor, picks the
reference keyframe and runs the frame backend. Prints steps/s and ms per step.

``--starts N`` times resets instead: N seeded resets (seeds 0..N-1) at random collision-free
starts (``start_poses='random'``) with ``--min-start-coverage``, and prints the coverage of the
first frames (``info['coverage']``): its mean, how many see no surface at all, and ms per reset.
"""

from __future__ import annotations

import argparse

from worldfm_ros.envs.spaces import DEFAULT_MIN_START_COVERAGE
from worldfm_ros.runtime import add_threads_argument
from worldfm_ros.sim.cli_config import add_config_arguments

#: this command's flags and the SimConfig fields they set (beside the common ones)
CONFIG_FLAGS = {"vae": "backend.vae", "device": "backend.device"}

HELP = "time the in-process gymnasium env (steps/s) at one or more camera sizes; print a table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, size=False)
    parser.add_argument("--vae", default=None, help="VAE folder for latent frame models (backend.vae)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda, renderer and backend (backend.device, default auto)")
    parser.add_argument("--sizes", nargs="+", default=["64x48", "320x240"], help="camera sizes WxH")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per size (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--starts", type=int, default=0,
                        help="time N seeded resets at random starts instead, and print their coverage")
    parser.add_argument("--min-start-coverage", type=float, default=DEFAULT_MIN_START_COVERAGE,
                        help=f"with --starts: the env's min_start_coverage (default {DEFAULT_MIN_START_COVERAGE})")
    add_threads_argument(parser, default=None, default_text="torch_threads of the configuration, 1")


def _size(text: str) -> tuple[int, int]:
    from worldfm_ros.errors import ConfigError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--sizes: expected WxH like 64x48, got {text!r}") from None
    return w, h


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import os
    import statistics
    import time

    import numpy as np
    import torch

    from worldfm_ros.envs.sim_env import WorldFMEnv
    from worldfm_ros.eval.bench_render import _cpu_name
    from worldfm_ros.runtime import apply_torch_threads
    from worldfm_ros.sim.cli_config import sim_config_from_args

    sizes = [_size(s) for s in args.sizes]
    config = sim_config_from_args(args, CONFIG_FLAGS)
    device = config.backend.torch_device()
    apply_torch_threads(config.torch_threads)
    where = torch.cuda.get_device_name() if device.startswith("cuda") else \
        f"{_cpu_name()}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"
    if args.starts > 0:
        print(f"# bench-env: backend {config.backend.name}, device {device} ({where}), {args.starts} seeded "
              f"resets at random starts, min_start_coverage {args.min_start_coverage:g}, scene "
              f"{config.scene or 'bundled default'}")
        print("\n| camera | mean coverage | no surface (coverage 0) | min coverage | below 0.5 | ms/reset |")
        print("|---|---:|---:|---:|---:|---:|")
    else:
        print(f"# bench-env: backend {config.backend.name}, device {device} ({where}), {args.steps} steps "
              f"after {args.warmup} warm-up, dt 0.1 s")
        print("\n| camera | steps/s | ms/step median | ms/step p90 | episodes |")
        print("|---|---:|---:|---:|---:|")
    action = np.array([0.3, 0.5], np.float32)
    for w, h in sizes:
        sized = dataclasses.replace(config, camera=dataclasses.replace(config.camera, width=w, height=h))
        if args.starts > 0:
            env = WorldFMEnv(sized, device=device, min_start_coverage=args.min_start_coverage)
            start = time.perf_counter()
            coverage = np.array([env.reset(seed=s)[1]["coverage"] for s in range(args.starts)])
            total = time.perf_counter() - start
            env.close()
            print(f"| {w}x{h} | {coverage.mean():.3f} | {np.mean(coverage == 0):.1%} | {coverage.min():.3f} | "
                  f"{np.mean(coverage < 0.5):.1%} | {total / args.starts * 1e3:.0f} |")
            continue
        env = WorldFMEnv(sized, dt=0.1, device=device, normalized_actions=False, start_poses=None)
        env.reset(seed=0)
        for _ in range(args.warmup):
            env.step(action)
        env.reset(seed=1)
        times, episodes = [], 1
        start = time.perf_counter()
        for _ in range(args.steps):
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            times.append((time.perf_counter() - t0) * 1e3)
            if terminated or truncated:
                env.reset()
                episodes += 1
        total = time.perf_counter() - start
        env.close()
        print(f"| {w}x{h} | {args.steps / total:.1f} | {statistics.median(times):.2f} | "
              f"{float(np.percentile(times, 90)):.2f} | {episodes} |")
    return 0
