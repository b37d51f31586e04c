"""``worldfm bench-completion``: what closing a world (``scene-complete``) changes, where users go.

* ``--scene PATH`` (repeatable): the hole fraction (pixels with no surface) at ``--poses`` random
  poses in the free space of the room, the scene as it is beside the scene completed: camera
  height 0.3-1.8 m above the floor, any yaw, pitch within +-30 deg, at least ``--clearance`` m from
  every surface, inside the fitted room. The same poses for both.
* ``--rgbd FOLDER`` (repeatable): held-out real views. The anchor is built from the first half of
  the recording (``scene-build rgbd``), completed, and the later frames' recorded poses are
  rendered through the frame pipeline with the anchor backend; PSNR against the recorded images
  on today's hole pixels (push-pull fill before, the layout after), on the whole frame, and on
  the pixels the anchor covered (which completion must not make worse), with the flicker of both.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

HELP = "hole fraction at random free poses and held-out PSNR, before | after closing the world"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scene", action="append", default=[], help="scene folder (repeatable)")
    parser.add_argument("--rgbd", action="append", default=[], help="posed RGB-D folder for held-out views (repeatable)")
    parser.add_argument("--poses", type=int, default=500, help="random free poses per scene (default 500)")
    parser.add_argument("--size", type=int, nargs=2, default=(160, 120), metavar=("W", "H"),
                        help="camera size for the hole fraction (default 160 120; 90 deg horizontal field of view)")
    parser.add_argument("--clearance", type=float, default=0.25, help="metres from every surface (default 0.25)")
    parser.add_argument("--heldout-step", type=int, default=2, help="score every N-th held-out frame (default 2)")
    parser.add_argument("--heldout-size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    parser.add_argument("--sheet", help="folder for before | after contact sheets (five poses per scene)")
    parser.add_argument("--seed", type=int, default=0)


def free_poses(world, layout, n: int, clearance: float, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` (4, 4) camera-to-scene poses (OpenCV axes) inside ``layout``'s room, ``clearance`` m from
    every surface of ``world`` and of the layout, heights 0.3-1.8 m, any yaw, pitch +-30 deg."""
    from scipy.spatial import cKDTree

    from worldfm_ros.geometry import map_T_camera
    from worldfm_ros.world.base import points_in_map

    surface = np.concatenate([points_in_map(world, world.surface_points(400_000)[0]), layout.points(0.05)[0]])
    tree = cKDTree(surface)
    lo, hi = layout.footprint.min(axis=0), layout.footprint.max(axis=0)
    scene_T_map = np.linalg.inv(world.map_T_scene)
    poses = []
    for _ in range(200 * n):
        if len(poses) == n:
            break
        xy = rng.uniform(lo, hi)
        z = layout.floor_z + rng.uniform(0.3, 1.8)
        yaw, pitch = rng.uniform(-math.pi, math.pi), math.radians(rng.uniform(-30, 30))
        if not layout.contains(xy[None], clearance)[0] or tree.query([xy[0], xy[1], z])[0] < clearance:
            continue
        poses.append(scene_T_map @ map_T_camera((xy[0], xy[1], z), yaw, pitch))
    return poses


def hole_table(args: argparse.Namespace) -> None:
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.build.complete import complete_world, format_report
    from worldfm_ros.world.base import RenderStyle
    from worldfm_ros.world.completed import CompletedWorld
    from worldfm_ros.world.store import load_world

    w, h = args.size
    f = w / 2 / math.tan(math.radians(45))
    camera = PinholeCamera.from_K(np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]]), w, h)
    style = RenderStyle(splat="auto")
    print(f"\n## Hole fraction at {args.poses} random free poses, {w}x{h} px, 90 deg HFOV")
    print("| scene | completion s | holes before (mean / median / p90) | poses seeing nothing before | "
          "holes after (mean / max) | observed after | ms before | ms after |")
    print("|---|---:|---|---:|---|---:|---:|---:|")
    for path in args.scene:
        world = load_world(path)
        world = getattr(world, "base", world)
        t0 = time.perf_counter()
        layout = complete_world(world)
        seconds = time.perf_counter() - t0
        print(f"<!-- {path}: " + format_report(layout).replace("\n", "; ") + " -->")
        closed = CompletedWorld(world, layout)
        poses = free_poses(world, layout, args.poses, args.clearance, np.random.default_rng(args.seed))
        before, after, observed, ms_b, ms_a, sheet = [], [], [], [], [], []
        for k, c2w in enumerate(poses):
            t0 = time.perf_counter()
            b = world.render([camera], [c2w], style)[0]
            t1 = time.perf_counter()
            a = closed.render([camera], [c2w], style)[0]
            t2 = time.perf_counter()
            ms_b.append((t1 - t0) * 1e3)
            ms_a.append((t2 - t1) * 1e3)
            before.append(1 - b.coverage)
            after.append(1 - a.coverage)
            observed.append(float(a.observed.mean()))
            if k < 5:
                sheet.append(np.concatenate([b.rgb, a.rgb], axis=1))
        before, after = np.array(before), np.array(after)
        print(f"| {path} | {seconds:.1f} | {100 * before.mean():.1f} / {100 * np.median(before):.1f} / "
              f"{100 * np.percentile(before, 90):.1f} % | {100 * np.mean(before > 0.999):.1f} % | "
              f"{100 * after.mean():.2f} / {100 * after.max():.2f} % | {100 * np.mean(observed):.1f} % | "
              f"{np.median(ms_b):.1f} | {np.median(ms_a):.1f} |")
        if args.sheet and sheet:
            from pathlib import Path

            from worldfm_ros.scene.io import write_image

            out = Path(args.sheet)
            out.mkdir(parents=True, exist_ok=True)
            write_image(out / f"completion_{Path(path).name}.png", np.concatenate(sheet, axis=0))


def heldout_table(args: argparse.Namespace) -> None:
    from worldfm_ros.backends.fill_backend import FillBackend
    from worldfm_ros.eval.metrics import psnr, ssim_map
    from worldfm_ros.eval.rgbd_split import load_views, pooled_psnr_ssim, render_views, split_indices
    from worldfm_ros.build.build_rgbd import build_rgbd, read_sequence
    from worldfm_ros.build.complete import complete_world
    from worldfm_ros.world.completed import CompletedWorld
    from worldfm_ros.world.pointcloud import PointCloudWorld

    print(f"\n## Held-out views (split first, every {args.heldout_step}-th later frame, "
          f"{args.heldout_size[0]}x{args.heldout_size[1]} px, anchor backend)")
    print("| recording | views | today's holes | PSNR holes before -> after | PSNR frame before -> after | "
          "PSNR covered before -> after | SSIM frame before -> after |")
    print("|---|---:|---:|---|---|---|---|")
    for root in args.rgbd:
        n = len(read_sequence(root).frames)
        anchor_idx, heldout_idx = split_indices(n, "first", 0.5, 4, args.heldout_step)
        anchor = build_rgbd(root, frames=anchor_idx)
        world = PointCloudWorld(anchor)
        closed = CompletedWorld(world, complete_world(world))
        views = load_views(root, heldout_idx, tuple(args.heldout_size))
        rgb_b, _, covered, _ = render_views(world, FillBackend(fill="push_pull"), views)
        rgb_a, _, _, _ = render_views(closed, FillBackend(fill="push_pull"), views)
        row = []
        for rgb in (rgb_b, rgb_a):
            maps = [ssim_map(x, y) for x, y in zip(rgb, views.images)]
            whole = float(np.mean([min(100.0, psnr(x, y)) for x, y in zip(rgb, views.images)]))
            holes = pooled_psnr_ssim(rgb, views.images, ~covered, maps)[0]
            cov = pooled_psnr_ssim(rgb, views.images, covered, maps)[0]
            row.append((holes, whole, cov, float(np.mean([m.mean() for m in maps]))))
        (hb, wb, cb, sb), (ha, wa, ca, sa) = row
        print(f"| {root} | {len(views.frames)} | {100 * (1 - covered.mean()):.1f} % | {hb:.2f} -> {ha:.2f} "
              f"({ha - hb:+.2f}) | {wb:.2f} -> {wa:.2f} ({wa - wb:+.2f}) | {cb:.2f} -> {ca:.2f} ({ca - cb:+.2f}) | "
              f"{sb:.3f} -> {sa:.3f} |")


def run(args: argparse.Namespace) -> int:
    import logging

    from worldfm_ros.eval.bench_render import _cpu_name

    logging.basicConfig(level=logging.WARNING)
    print(f"# bench-completion on {_cpu_name()}, {time.strftime('%Y-%m-%d')}")
    if args.scene:
        hole_table(args)
    if args.rgbd:
        heldout_table(args)
    return 0
