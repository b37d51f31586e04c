"""``worldfm bench-density``: how closed the neural backends' canvas is on a panorama scene.

A synthetic panorama (``synthetic_panorama``: a textured 7 x 2.5 x 5.5 m box room seen from
1.5 m above its floor, exact ray distances) is built into a scene with our builder (point
budget ``--max-points``, keyframes from it) and with ``--profile release`` (the release's
4096 x 2048 resample, one point per pixel, its 42 views). Each scene is rendered on the
released model's 512² canvas (K = [[320, 0, 256], [0, 320, 256]], the demo's) from the
panorama centre at yaw 0 and 90° and from a pose 0.5 m off centre, at radius 0 and at the
radius ``render.density.closing_radius`` chooses. Prints the empty fraction and the gap
fraction (empty pixels between covered ones) per scene and radius.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

HELP = "hole fraction of a panorama scene's 512x512 model canvas, by builder and splat radius"

ROOM_LO = np.array([-3.0, -1.0, -2.5])  # metres, panorama world (+y down): floor 1.5 m below
ROOM_HI = np.array([4.0, 1.5, 3.0])


def synthetic_panorama(width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 panorama and (H, W) float32 ray distance (metres) of the box room, H = W / 2."""
    from worldfm_ros.build.build_panorama import panorama_directions

    d = panorama_directions(width, width // 2)  # (H, W, 3)
    safe = np.where(np.abs(d) < 1e-12, 1e-12, d)
    r = np.min(np.where(safe > 0, ROOM_HI, ROOM_LO) / safe, axis=-1)  # (H, W)
    p = d * r[..., None]
    checker = (np.floor(p[..., 0] * 4) + np.floor(p[..., 1] * 4) + np.floor(p[..., 2] * 4)) % 2
    rgb = np.stack([80 + 120 * checker, 60 + 40 * np.sin(p[..., 0] * 7) ** 2 * 3, 90 + 60 * (p[..., 1] > 1.4)], -1)
    return np.clip(rgb, 0, 255).astype(np.uint8), r.astype(np.float32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--widths", type=int, nargs="+", default=[1920, 4096],
                        help="panorama widths to build (default 1920, HunyuanWorld's, and 4096)")
    parser.add_argument("--max-points", type=int, default=2_000_000, help="our builder's point budget")
    parser.add_argument("--work-dir", default=None, help="where the panorama files go (default a temp dir)")


def _poses() -> dict[str, np.ndarray]:
    from worldfm_ros.build.build_panorama import reference_pose

    off = reference_pose(30.0, 0.0)
    off[:3, 3] = [0.4, 0.0, -0.3]
    return {"centre, yaw 0": reference_pose(0.0, 0.0), "centre, yaw 90": reference_pose(90.0, 0.0),
            "0.5 m off centre, yaw 30": off}


def run(args: argparse.Namespace) -> int:
    import tempfile

    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.render.density import closing_radius, gap_fraction
    from worldfm_ros.render.pointcloud import PointCloudRenderer
    from worldfm_ros.render.release import ReleaseRenderer
    from worldfm_ros.build.build_panorama import build_panorama
    from worldfm_ros.scene.io import write_image

    canvas = PinholeCamera(512, 512, 320.0, 320.0, 256.0, 256.0)
    rows: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for width in args.widths:
            rgb, dist = synthetic_panorama(width)
            write_image(work / f"pano{width}.png", rgb)
            np.save(work / f"dist{width}.npy", dist)
            for profile in ("default", "release"):
                t0 = time.perf_counter()
                anchor = build_panorama(work / f"pano{width}.png", work / f"dist{width}.npy", profile=profile,
                                        max_points=args.max_points)
                build_s = time.perf_counter() - t0
                kind = ReleaseRenderer if profile == "release" else PointCloudRenderer
                renderer = kind(anchor.points, anchor.colors)
                chosen = 0 if profile == "release" else closing_radius(
                    lambda r: [renderer.render(canvas, kf.c2w, r).valid for kf in anchor.keyframes])
                for name, c2w in _poses().items():
                    for radius in sorted({0, chosen}):
                        valid = renderer.render(canvas, c2w, radius).valid
                        rows.append((width, profile, len(anchor.points), f"{build_s:.0f}", name, radius,
                                     100 * (1 - valid.mean()), 100 * gap_fraction(valid)))
    print("canvas 512x512, fx = fy = 320 px (the released demo's K); radius = splat half-size in pixels")
    print()
    print("| panorama | builder | points | build s | pose | radius | empty % | gaps % |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for width, profile, n, build_s, name, radius, empty, gaps in rows:
        print(f"| {width}x{width // 2} | {profile} | {n:,} | {build_s} | {name} | {radius} | {empty:.2f} "
              f"| {gaps:.2f} |")
    return 0
