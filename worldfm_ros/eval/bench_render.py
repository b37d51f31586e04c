"""``worldfm bench-render``: point-cloud renderer speed against a plain torch z-buffer.

Synthetic scene: points spread uniformly over the walls, floor and ceiling of an
8 x 3 x 6 m room (fixed seed), seen from a camera inside it that turns through
``--views`` headings. For every point count, both implementations render the same
views on the same device, frame by frame in alternation, after one untimed warm-up
frame each; the table reports the median ms per frame (CUDA synchronised), FPS, the
speed-up over the baseline, and whether the outputs are identical: the same depth
image everywhere and the same colours wherever a single point holds the pixel's
minimum depth (at exact depth ties the baseline's colour write order is unspecified).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

from worldfm_ros.runtime import add_threads_argument

HELP = "time the point-cloud renderer against a plain torch scatter_reduce z-buffer; print a table"

ROOM_SIZE = (8.0, 3.0, 6.0)  # metres along the scene's x, y (down), z


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, nargs="+", default=[250_000, 1_000_000],
                        help="point counts to benchmark (default 250000 1000000)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    parser.add_argument("--repeats", type=int, default=40, help="timed frames per implementation (default 40)")
    parser.add_argument("--views", type=int, default=8, help="camera headings cycled through (default 8)")
    parser.add_argument("--width", type=int, default=640, help="image width, pixels (default 640)")
    parser.add_argument("--height", type=int, default=480, help="image height, pixels (default 480)")
    parser.add_argument("--hfov", type=float, default=70.0, help="horizontal field of view, degrees (default 70)")
    add_threads_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the cloud and the views (default 0)")
    parser.add_argument("--json", help="also write the figures to this JSON file")


def room_cloud(num_points: int, seed: int) -> tuple[Any, Any]:
    """(N, 3) float32 points uniform over the 6 faces of the room box (area-weighted), (N, 3) uint8 colours.

    Scene frame: OpenCV-like (y down), box [-4, 4] x [-1.5, 1.5] x [-3, 3] metres.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    half = np.array(ROOM_SIZE) / 2
    areas = np.array([ROOM_SIZE[1] * ROOM_SIZE[2], ROOM_SIZE[0] * ROOM_SIZE[2], ROOM_SIZE[0] * ROOM_SIZE[1]])
    axis = rng.choice(3, size=num_points, p=areas / areas.sum())
    points = rng.uniform(-half, half, size=(num_points, 3))
    points[np.arange(num_points), axis] = np.where(rng.random(num_points) < 0.5, -half[axis], half[axis])
    colors = rng.integers(0, 256, size=(num_points, 3), dtype=np.uint8)
    return points.astype(np.float32), colors


def room_views(count: int, seed: int) -> list[Any]:
    """``count`` (4, 4) camera-to-scene poses inside the room: headings around the vertical, slight tilts."""
    import numpy as np
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed + 1)
    poses = []
    for i in range(count):
        c2w = np.eye(4)
        yaw = 360.0 * i / count + rng.uniform(-10, 10)
        c2w[:3, :3] = Rotation.from_euler("yx", [yaw, rng.uniform(-15, 15)], degrees=True).as_matrix()
        c2w[:3, 3] = rng.uniform([-2.0, -0.5, -1.5], [2.0, 0.5, 1.5])
        poses.append(c2w)
    return poses


def project_points(points: Any, camera: Any, c2w: Any) -> tuple[Any, Any, Any]:
    """Pixel coordinates (rounded, float32) and camera z of torch points (N, 3), same arithmetic as the renderer."""
    import numpy as np

    w2c = np.linalg.inv(c2w).astype(np.float32)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    xc, yc, zc = (((x * float(w2c[i, 0]) + y * float(w2c[i, 1])) + z * float(w2c[i, 2])) + float(w2c[i, 3])
                  for i in range(3))
    fx, fy, cx, cy = (float(np.float32(v)) for v in (camera.fx, camera.fy, camera.cx, camera.cy))
    return (xc * fx / zc + cx).round(), (yc * fy / zc + cy).round(), zc


def baseline_render(points: Any, colors: Any, camera: Any, c2w: Any, near: float = 1e-3) -> tuple[Any, Any]:
    """The reference to beat: project all points, scatter_reduce(amin) z-buffer, write the winners' colours.

    points: (N, 3) float32 torch tensor (scene frame, metres); colors: (N, 3) uint8 tensor.
    Returns rgb (H, W, 3) uint8 and depth (H, W) float32 (0 = empty) on the points' device.
    """
    import torch

    w, h = camera.width, camera.height
    u, v, z = project_points(points, camera, c2w)
    ok = (z > near) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    pix = (v[ok] * w + u[ok]).long()
    z, c = z[ok], colors[ok]
    zbuf = torch.full((h * w,), float("inf"), device=points.device).scatter_reduce_(0, pix, z, "amin")
    win = z == zbuf[pix]
    rgb = torch.zeros((h * w, 3), dtype=torch.uint8, device=points.device)
    rgb[pix[win]] = c[win]
    depth = torch.where(torch.isinf(zbuf), 0.0, zbuf)
    return rgb.view(h, w, 3), depth.view(h, w)


def single_winner_pixels(points: Any, camera: Any, c2w: Any, depth: Any) -> Any:
    """(H, W) bool: pixels where exactly one point lies at the rendered minimum depth."""
    import torch

    w, h = camera.width, camera.height
    u, v, z = project_points(points, camera, c2w)
    ok = (z > 1e-3) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    pix = (v[ok] * w + u[ok]).long()
    at_min = (z[ok] == depth.reshape(-1)[pix]).long()
    count = torch.zeros(h * w, dtype=torch.long, device=points.device).scatter_add_(0, pix, at_min)
    return (count == 1).view(h, w)


def _time_interleaved(fns: list[Any], poses: list[Any], repeats: int, sync: Any) -> list[float]:
    """Median milliseconds per frame of each ``fn(pose)``, frames alternating between the fns.

    Alternating frame by frame exposes every implementation to the same machine load.
    """
    for fn in fns:
        fn(poses[0])
    sync()
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats):
        for fn, samples in zip(fns, times):
            t0 = time.perf_counter()
            fn(poses[i % len(poses)])
            sync()
            samples.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(samples) for samples in times]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run(args: argparse.Namespace) -> int:
    import os

    import numpy as np
    import torch

    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.errors import ConfigError
    from worldfm_ros.render.pointcloud import PointCloudRenderer, resolve_device

    if args.repeats < 1 or args.views < 1 or min(args.points) < 1:
        raise ConfigError("--repeats, --views and --points must be >= 1")
    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    camera = PinholeCamera.from_fov(args.width, args.height, args.hfov)
    poses = room_views(args.views, args.seed)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{_cpu_name()}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"
    print(f"# bench-render: {args.width}x{args.height}, hfov {args.hfov:g} deg, {args.views} views, "
          f"{args.repeats} frames each, median ms/frame; device {device} ({where}); torch {torch.__version__}")

    rows = []
    for n in args.points:
        points_np, colors_np = room_cloud(n, args.seed)
        points, colors = torch.from_numpy(points_np).to(device), torch.from_numpy(colors_np).to(device)
        renderer = PointCloudRenderer(points_np, colors_np, device=device)

        identical = True
        coverage = []
        for c2w in poses:
            ours = renderer.render_tensors(camera, c2w)
            rgb, depth = baseline_render(points, colors, camera, c2w)
            single = single_winner_pixels(points, camera, c2w, depth)
            identical &= bool(torch.equal(ours.depth, depth)) and bool(torch.equal(ours.valid, depth > 0))
            identical &= bool(torch.equal(ours.rgb[single], rgb[single]))
            coverage.append(float(ours.valid.float().mean()))

        ms_base, ms_ours = _time_interleaved(
            [lambda c2w: baseline_render(points, colors, camera, c2w),
             lambda c2w: renderer.render_tensors(camera, c2w)], poses, args.repeats, sync)
        print(f"\n{n:,} points, mean coverage {np.mean(coverage):.1%}\n")
        print("| implementation | ms/frame | FPS | speed-up | identical output |")
        print("|---|---:|---:|---:|---|")
        print(f"| baseline (torch scatter_reduce) | {ms_base:.2f} | {1e3 / ms_base:.1f} | 1.00x | reference |")
        print(f"| PointCloudRenderer | {ms_ours:.2f} | {1e3 / ms_ours:.1f} | {ms_base / ms_ours:.2f}x | "
              f"{'yes' if identical else 'NO'} |")
        rows.append({"points": n, "coverage": float(np.mean(coverage)), "baseline_ms": ms_base, "ms": ms_ours,
                     "fps": 1e3 / ms_ours, "speedup": ms_base / ms_ours, "identical": identical})
    if args.json:
        write_json(args.json, {"device": str(device), "where": where, "torch": torch.__version__,
                               "size": [args.width, args.height], "repeats": args.repeats, "rows": rows})
    return 0


def write_json(path: str, payload: dict) -> None:
    """Write a benchmark's figures as indented JSON, creating the folder."""
    import json
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")
