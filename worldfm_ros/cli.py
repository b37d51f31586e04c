"""``worldfm`` command line: one sub-command per tool, each living in its own module.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; it imports heavy dependencies inside ``run`` so that
``worldfm --help`` stays fast. A command that runs torch adds ``--threads`` with
:func:`worldfm_ros.runtime.add_threads_argument`; ``main`` applies it before ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from worldfm_ros.errors import WorldFMError

# sub-command name -> module implementing it
COMMANDS: dict[str, str] = {
    "scene-build": "worldfm_ros.build.cli_build",
    "scene-info": "worldfm_ros.world.cli_info",
    "scene-complete": "worldfm_ros.build.cli_complete",
    "scene-fit": "worldfm_ros.build.fit.cli",
    "bench-render": "worldfm_ros.eval.bench_render",
    "bench-splats": "worldfm_ros.eval.bench_splats",
    "bench-bag": "worldfm_ros.eval.bench_bag",
    "bench-completion": "worldfm_ros.eval.bench_completion",
    "bench-model": "worldfm_ros.eval.bench_model",
    "bench-density": "worldfm_ros.eval.bench_density",
    "bench-sensors": "worldfm_ros.eval.bench_sensors",
    "gpu-check": "worldfm_ros.eval.gpu_check",
    "bench-node": "worldfm_ros.ros.bench_node",
    "demo": "worldfm_ros.ros.demo",
    "record": "worldfm_ros.ros.cli_record",
    "bag-info": "worldfm_ros.cli_bag_info",
    "bag-reindex": "worldfm_ros.cli_bag_reindex",
    "render-trajectory": "worldfm_ros.sim.cli_render_trajectory",
    "render-batch": "worldfm_ros.scale.cli_render_batch",
    "rig-calibration": "worldfm_ros.sim.cli_rig",
    "bench-env": "worldfm_ros.envs.bench_env",
    "train": "worldfm_ros.train.cli_train",
    "distill": "worldfm_ros.train.cli_distill",
    "evaluate": "worldfm_ros.eval.evaluate",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser, with every command, or with only the command ``only``: each command's
    module is imported to build its arguments, and some import torch (seconds); ``worldfm record``
    started beside a launch must be subscribing before the first frames go by."""
    parser = argparse.ArgumentParser(prog="worldfm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv and argv[0] in COMMANDS else None).parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None:
            from worldfm_ros.runtime import apply_torch_threads

            apply_torch_threads(args.threads, "--threads")
        return int(args._run(args) or 0)
    except WorldFMError as exc:
        print(f"worldfm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
