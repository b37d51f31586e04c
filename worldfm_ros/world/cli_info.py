"""``worldfm scene-info PATH``: load a scene (validating it) and print its statistics."""

from __future__ import annotations

import argparse

HELP = ("check a saved scene (directory or .npz) and print its points or splats, bounds, keyframes and "
        "scene-to-map transform")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scene", help="scene directory (holding scene.yaml) or .npz file")
    parser.add_argument("--keyframes", action="store_true", help="list every keyframe with its map-frame pose")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from worldfm_ros.scene.summary import world_summary
    from worldfm_ros.world.store import load_world

    world = load_world(args.scene)
    print(world_summary(world, per_keyframe=args.keyframes))
    print("  map_T_scene (scene.yaml scene_to_map):")
    for row in world.map_T_scene:
        print("    " + np.array2string(row, precision=6, suppress_small=True, floatmode="fixed"))
    return 0
