"""``worldfm distill``: Stage III DMD distillation of a trained frame model into a 1- or 2-step generator."""

from __future__ import annotations

import argparse

from worldfm_ros.runtime import add_threads_argument

HELP = "distill a trained frame model (DMD) into a 1- or 2-step generator; resumable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML file of a DistillConfig (e.g. config/train/distill_res128.yaml)")
    parser.add_argument("--teacher", help="override teacher (the Stage II .safetensors model)")
    parser.add_argument("--out-dir", help="override out_dir (checkpoint, log.jsonl, model.safetensors)")
    parser.add_argument("--steps", type=int, help="override the total number of steps")
    parser.add_argument("--num-steps", type=int, choices=(1, 2), help="override the generator's sampling steps")
    parser.add_argument("--cache", help="override data.cache (the .npz sample set)")
    parser.add_argument("--stop-at", type=int, help="stop (checkpointed) after this step; resume later")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_argument(parser, default=None, default_text="the config's threads")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from worldfm_ros.config import load_config
    from worldfm_ros.errors import ConfigError
    from worldfm_ros.train.config import DistillConfig
    from worldfm_ros.train.dmd import distill

    cfg = load_config(DistillConfig, args.config)
    overrides = {k: v for k, v in (("teacher", args.teacher), ("out_dir", args.out_dir), ("steps", args.steps),
                                   ("num_steps", args.num_steps), ("threads", args.threads)) if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    if args.cache is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cache=args.cache))
    if not cfg.teacher:
        raise ConfigError(f"{args.config}: teacher: the Stage II model to distil is not set (or pass --teacher)")
    path = distill(cfg, stop_at=args.stop_at, progress=not args.no_progress)
    if path.is_file():
        print(f"model: {path}")
    return 0
