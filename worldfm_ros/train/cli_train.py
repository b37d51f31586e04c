"""``worldfm train``: Stage II training of a frame model from a YAML config (resumes from out_dir)."""

from __future__ import annotations

import argparse

from worldfm_ros.runtime import add_threads_argument

HELP = "train a frame model (Stage II) on multi-view samples; resumable, torchrun-ready"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML file of a Stage2Config (e.g. config/train/stage2_res128.yaml)")
    parser.add_argument("--out-dir", help="override out_dir (checkpoint, log.jsonl, model.safetensors)")
    parser.add_argument("--steps", type=int, help="override the total number of steps")
    parser.add_argument("--cache", help="override data.cache (the .npz sample set)")
    parser.add_argument("--stop-at", type=int, help="stop (checkpointed) after this step; resume later")
    parser.add_argument("--prepare-only", action="store_true", help="build the data cache and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_argument(parser, default=None, default_text="the config's threads")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from worldfm_ros.config import load_config
    from worldfm_ros.train.config import Stage2Config
    from worldfm_ros.train.dataset import prepare_samples
    from worldfm_ros.train.stage2 import train_stage2

    cfg = load_config(Stage2Config, args.config)
    overrides = {k: v for k, v in (("out_dir", args.out_dir), ("steps", args.steps),
                                                      ("threads", args.threads)) if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    if args.cache is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cache=args.cache))
    if args.prepare_only:
        samples = prepare_samples(cfg.data, progress=not args.no_progress)
        print(f"{len(samples)} samples of {samples.image_size} px in {cfg.data.cache or '(not cached)'}")
        return 0
    path = train_stage2(cfg, stop_at=args.stop_at, progress=not args.no_progress)
    if path.is_file() and os.environ.get("RANK", "0") == "0":  # torchrun: one line, not one per process
        print(f"model: {path}")
    return 0
