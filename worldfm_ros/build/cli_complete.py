"""``worldfm scene-complete SCENE -o OUT``: close a room scene with its fitted floor, ceiling and
walls, textured from what the capture saw (``build.complete``), and report what was added."""

from __future__ import annotations

import argparse

HELP = "close a room scene: fit floor, ceiling and walls, texture what was not seen, store them in a copy"


def add_completion_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``CompletionConfig`` a user may want to set (defaults from it)."""
    from worldfm_ros.build.complete import CompletionConfig

    d = CompletionConfig()
    p.add_argument("--ceiling-height", type=float, default=d.ceiling_height, metavar="M",
                   help=f"room height assumed when no ceiling was seen (default {d.ceiling_height} m; raised to clear "
                        "the highest surface and camera)")
    p.add_argument("--wall-margin", type=float, default=d.margin, metavar="M",
                   help=f"how far beyond the cameras a wall nobody saw is put (default {d.margin} m)")
    p.add_argument("--texel", type=float, default=d.cell, metavar="M",
                   help="texel size of the added surfaces (default 0: the scene's point spacing, 1-3 cm)")
    p.add_argument("--completion-seed", type=int, default=d.seed, help="seed of the texture synthesis (default 0)")


def completion_config(args: argparse.Namespace):
    from worldfm_ros.build.complete import CompletionConfig

    return CompletionConfig(ceiling_height=args.ceiling_height, margin=args.wall_margin, cell=args.texel,
                            seed=args.completion_seed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scene", help="scene folder to complete (any kind: points or splats); never changed")
    parser.add_argument("-o", "--output", required=True, help="scene folder to write: a copy with the layout added")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    add_completion_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from worldfm_ros.build.complete import NotARoom, complete_scene, format_report

    try:
        layout = complete_scene(args.scene, args.output, completion_config(args), force=args.force)
    except NotARoom as exc:
        print(f"{args.scene}: {exc}; nothing written")
        return 2
    print(format_report(layout))
    print(f"saved {args.output} in {layout.report['seconds']:.1f} s")
    return 0
