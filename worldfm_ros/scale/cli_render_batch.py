"""``worldfm render-batch``: many trajectories in many scenes, here or on a Ray cluster."""

from __future__ import annotations

import argparse

from worldfm_ros.sim.cli_render_trajectory import CONFIG_FLAGS, add_render_arguments, output_options

HELP = ("render many trajectories in many scenes (render-trajectory per task), in this process or as Ray tasks "
        "(--ray local|auto|HOST:PORT); resumable, each output written whole or not at all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trajectories", nargs="+", help="pose files (as render-trajectory takes them)")
    parser.add_argument("--output", "-o", required=True,
                        help="job folder: each task writes <output>/<scene>/<trajectory>/ (frames/, video.mp4, bag/)")
    parser.add_argument("--scenes", nargs="+", default=None,
                        help="scene folders; every trajectory is rendered in each (default: --scene or the bundled room)")
    parser.add_argument("--ray", default=None, metavar="MODE",
                        help="local (start Ray here with --workers slots) | auto (the cluster on this machine) | "
                             "HOST:PORT (a cluster's head); default: no Ray, one task after the other")
    parser.add_argument("--workers", type=int, default=2, help="with --ray local: worker processes (default 2)")
    parser.add_argument("--retries", type=int, default=3, help="runs again of a task whose worker died (default 3)")
    parser.add_argument("--connect-timeout", type=float, default=30.0,
                        help="seconds to wait for a Ray address to answer (default 30)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_render_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import time

    from worldfm_ros.errors import ConfigError
    from worldfm_ros.scale.render_batch import DONE, FAILED, SKIPPED, plan_tasks, run_batch, todo_count
    from worldfm_ros.sim.cli_config import sim_config_from_args

    if args.workers < 1 or args.retries < 0:
        raise ConfigError(f"--workers must be >= 1 and --retries >= 0, got {args.workers} and {args.retries}")
    config = sim_config_from_args(args, CONFIG_FLAGS)
    scenes = args.scenes if args.scenes else [config.scene]
    tasks = plan_tasks(args.trajectories, scenes, args.output, config, kind=args.kind, world=args.world,
                       rate_hz=args.rate, options=output_options(args))
    startup, pool = 0.0, None
    if args.ray and todo_count(tasks):
        from worldfm_ros.scale.render_batch import start_workers

        t0 = time.perf_counter()
        pool = start_workers(tasks, args.ray, args.workers, args.retries, args.connect_timeout)
        startup = time.perf_counter() - t0
    start = time.perf_counter()
    results = run_batch(tasks, ray=args.ray, workers=args.workers, retries=args.retries,
                        timeout_s=args.connect_timeout, progress=not args.no_progress, pool=pool)
    seconds = time.perf_counter() - start
    count = {s: sum(r.status == s for r in results) for s in (DONE, SKIPPED, FAILED)}
    frames = sum(r.frames for r in results)
    print(f"render-batch: {len(tasks)} tasks ({count[DONE]} rendered, {count[SKIPPED]} already there, "
          f"{count[FAILED]} failed), {frames} poses in {seconds:.2f} s: {count[DONE] / seconds:.2f} tasks/s, "
          f"{frames / seconds:.1f} poses/s; ray {args.ray or 'off'}"
          + (f" (joined or started, {len(pool or [])} workers warmed up, in {startup:.2f} s, not counted)"
             if args.ray else ""))
    for r in results:
        if r.status == FAILED:
            print(f"  failed: {r.error}")
    return 1 if count[FAILED] else 0
