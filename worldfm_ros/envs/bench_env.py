"""``worldfm bench-env``: step throughput of the in-process gymnasium env.

For every camera size, one ``WorldFMEnv`` on the scene drives a slow circle (0.3 m/s,
0.5 rad/s; dt 0.1 s), resetting when an episode ends, after a few untimed warm-up steps.
Each step integrates the kinematics, checks collisions, renders the anchor, picks the
reference keyframe and runs the frame backend. Prints steps/s and ms per step.

Beside it, in the same run, ``BatchedWorldFMEnv`` (``--envs``, default 1 4 16 robots in one shared
world) drives the same circle with every robot, and the table gives env-steps/s (robots x batched
steps per second), per core of the process (torch threads, 1 by default: the batch runs on one
core), env-steps per CPU second of the process (its user + system time: what the batch costs a
core whatever else runs on the machine), the ratio to the single env at that size, and the memory
each extra robot adds (resident memory of the process after building and stepping the batch, over
a batch of one in the same world).

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
    parser.add_argument("--envs", type=int, nargs="*", default=[1, 4, 16],
                        help="robots of the batched env, one row each (default 1 4 16; none: skip it)")
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
    single: dict[tuple[int, int], float] = {}
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
        single[(w, h)] = args.steps / total
    if args.envs and args.starts <= 0:
        _bench_batched(args, config, device, sizes, single, action)
    return 0


def _rss_mb() -> float:
    """Resident memory of this process, MiB (Linux)."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _bench_batched(args: argparse.Namespace, config, device: str, sizes: list[tuple[int, int]],
                   single: dict[tuple[int, int], float], action) -> None:
    """The batched env's table: env-steps/s against robots and camera size."""
    import dataclasses
    import time

    import numpy as np
    import torch

    from worldfm_ros.envs.batched import BatchedWorldFMEnv
    from worldfm_ros.world.store import open_world

    cores = max(1, torch.get_num_threads())
    print(f"\n## batched env (BatchedWorldFMEnv: robots in one shared world, one process, {cores} core(s))")
    print("\n| camera | robots | env-steps/s | per core | per CPU s | x single env | ms/batch step | MB per extra robot |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    world = open_world(config.scene or None, device=device)
    for w, h in sizes:
        sized = dataclasses.replace(config, camera=dataclasses.replace(config.camera, width=w, height=h))
        base = None
        for n in args.envs:
            before = _rss_mb()
            env = BatchedWorldFMEnv(n, sized, scene=world, dt=0.1, device=device, normalized_actions=False,
                                    start_poses=None)
            actions = np.tile(action, (n, 1))
            env.reset(seed=0)
            for _ in range(args.warmup):
                env.step(actions)
            steps = args.steps
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                env.step(actions)
            total, cpu = time.perf_counter() - start, time.process_time() - cpu
            grown = _rss_mb() - before
            rate = n * steps / total
            if n == 1 or base is None:
                base, per_robot = (n, grown), ""
            else:
                per_robot = f"{max(grown - base[1], 0.0) / (n - base[0]):.2f}"
            print(f"| {w}x{h} | {n} | {rate:.0f} | {rate / cores:.0f} | {n * steps / cpu:.0f} | {rate / single[(w, h)]:.1f} | "
                  f"{total / steps * 1e3:.2f} | {per_robot} |")
            env.close()
