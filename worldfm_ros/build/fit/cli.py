"""``worldfm scene-fit SCENE -o OUT``: a splat world fitted to a scene's own keyframes; and the fit
options shared with ``worldfm scene-build rgbd --world splats`` and ``worldfm evaluate --world splats``.

SIGINT during a fit saves a checkpoint (``OUT`` + ``.fit-checkpoint.pt`` unless ``--checkpoint``
says where) and exits with status 130 without writing the scene; the same command with ``--resume``
goes on from it. A finished fit removes its checkpoint.
"""

from __future__ import annotations

import argparse
import signal
from contextlib import contextmanager
from pathlib import Path
from threading import Event

from worldfm_ros.build.fit.config import FitConfig
from worldfm_ros.runtime import add_threads_argument

HELP = "fit a Gaussian-splat world to a scene's keyframes (with depth): sharp where the camera looked"
_DEFAULTS = FitConfig()


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 320x240, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"fit size must be at least 16x16, got {text!r}")
    return w, h


def add_fit_arguments(p: argparse.ArgumentParser, resumable: bool = True) -> None:
    """The options of a splat fit (defaults: ``build.fit.fitter.FitConfig``); ``resumable`` adds the
    checkpoint options (a command that writes a scene)."""
    g = p.add_argument_group("splat fit (--world splats)")
    g.add_argument("--fit-iterations", type=int, default=_DEFAULTS.iterations,
                   help=f"optimisation steps, one frame each (default {_DEFAULTS.iterations})")
    g.add_argument("--fit-time", type=float, metavar="S", help="stop fitting after this many seconds")
    g.add_argument("--fit-size", type=_size, default=(320, 240), metavar="WxH",
                   help="camera size the views are fitted at (default 320x240)")
    g.add_argument("--fit-seed", type=int, default=_DEFAULTS.seed, help="seed of the frame order and splits")
    g.add_argument("--sh-degree", type=int, choices=(0, 1, 2, 3), default=_DEFAULTS.sh_degree,
                   help=f"view-dependent colour degree (default {_DEFAULTS.sh_degree})")
    g.add_argument("--refine-poses", action="store_true", help="fit an SE(3) correction of every frame's pose")
    g.add_argument("--no-exposure", dest="exposure", action="store_false",
                   help="no per-frame exposure term (fitted, never baked into the world)")
    g.add_argument("--max-gaussians", type=int, default=_DEFAULTS.max_gaussians,
                   help=f"densification stops at this many (default {_DEFAULTS.max_gaussians:,})")
    if resumable:
        g.add_argument("--checkpoint", type=Path, help="checkpoint file (default: OUTPUT.fit-checkpoint.pt)")
        g.add_argument("--resume", action="store_true", help="go on from the checkpoint when there is one")


def fit_config(args: argparse.Namespace) -> FitConfig:
    """The FitConfig the options of ``add_fit_arguments`` describe."""
    import dataclasses

    return dataclasses.replace(_DEFAULTS, iterations=args.fit_iterations, time_budget_s=args.fit_time,
                               seed=args.fit_seed, sh_degree=args.sh_degree, refine_poses=args.refine_poses,
                               exposure=args.exposure, max_gaussians=args.max_gaussians)


def checkpoint_path(args: argparse.Namespace, output: Path) -> Path:
    return args.checkpoint or output.with_name(output.name + ".fit-checkpoint.pt")


@contextmanager
def stop_on_sigint():
    """An Event set by SIGINT while the block runs (the fit checkpoints and stops at the next step)."""
    stop = Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def fit_and_save(anchor, views, args: argparse.Namespace, output: Path) -> int:
    """Fit, save atomically with report and sheet, print the report; 130 after SIGINT."""
    from worldfm_ros.build.fit.scene import SHEET_ROWS, contact_sheet, fit_world, format_report, save_fitted
    from worldfm_ros.build.fit.fitter import FitInterrupted

    checkpoint = checkpoint_path(args, output)
    try:
        with stop_on_sigint() as stop:
            world, report, _ = fit_world(anchor, views, fit_config(args), checkpoint, args.resume, stop)
    except FitInterrupted as exc:
        print(f"{exc}: no scene written (run the same command with --resume)")
        return 130
    import numpy as np

    rows = sorted({int(i) for i in np.linspace(0, len(views.images) - 1, min(SHEET_ROWS, len(views.images)))})
    save_fitted(world, report, output, contact_sheet(anchor, world, views, rows))
    checkpoint.unlink(missing_ok=True)
    print(format_report(report))
    print(f"saved {output}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scene", help="scene folder or .npz whose keyframes (with depth) the world is fitted to")
    parser.add_argument("-o", "--output", type=Path, required=True, help="splat scene folder to write")
    add_fit_arguments(parser)
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import logging

    from worldfm_ros.build.fit.scene import keyframe_fit_views
    from worldfm_ros.scene.store import load_scene

    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    anchor = load_scene(args.scene)
    views = keyframe_fit_views(anchor, args.fit_size, str(args.scene))
    return fit_and_save(anchor, views, args, args.output)
