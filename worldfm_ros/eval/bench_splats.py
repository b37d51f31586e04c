"""``worldfm bench-splats``: the CPU splat rasterizer's ms per frame, per stage, against splat count
and image size, beside the point renderer on the same room.

Scene: ``bench-render``'s synthetic room (points uniform over its faces, fixed seed); each point
becomes a surface disc one point spacing wide (``build.build_splats.splats_from_points``), so both
renderers draw the same surfaces. Views: ``bench-render``'s headings inside the room. Figures are
medians over ``--repeats`` frames, the two renderers alternating frame by frame.
"""

from __future__ import annotations

import argparse
import statistics
import time

from worldfm_ros.runtime import add_threads_argument

HELP = "time the CPU splat rasterizer (project / sort+bin / rasterize) against splat count and size, beside points"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--splats", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="splat counts (default 100000 1000000)")
    parser.add_argument("--sizes", nargs="+", default=["320x240", "640x480"], help="image sizes WxH")
    parser.add_argument("--repeats", type=int, default=10, help="timed frames per renderer and size (default 10)")
    parser.add_argument("--hfov", type=float, default=70.0, help="horizontal field of view, degrees (default 70)")
    parser.add_argument("--device", default="cpu",
                        help="cpu (the numba rasterizer, per stage) or cuda[:N] (gsplat, whole frames) (default cpu)")
    add_threads_argument(parser)


def room_splats(n: int):
    """``bench-render``'s room of ``n`` points (seed 0), and the points as surface discs one spacing wide."""
    import numpy as np

    from worldfm_ros.eval.bench_render import ROOM_SIZE, room_cloud
    from worldfm_ros.build.build_splats import splats_from_points

    area = 2 * (ROOM_SIZE[0] * ROOM_SIZE[1] + ROOM_SIZE[1] * ROOM_SIZE[2] + ROOM_SIZE[0] * ROOM_SIZE[2])
    points, colors = room_cloud(n, 0)
    return points, colors, splats_from_points(points, colors, float(np.sqrt(area / n)))


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.eval.bench_render import _cpu_name, room_views
    from worldfm_ros.render.pointcloud import PointCloudRenderer
    from worldfm_ros.render.splats import SplatRenderer

    if args.device != "cpu":
        return _run_device(args)
    poses = room_views(8, 0)
    print(f"# bench-splats on {_cpu_name()}, {time.strftime('%Y-%m-%d')}; medians of {args.repeats} frames")
    print("| splats | size | project ms | sort+bin ms | rasterize ms | splats ms | FPS | coverage | points ms | points coverage |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.splats:
        points, colors, gaussians = room_splats(n)
        splats = SplatRenderer(gaussians)
        cloud = PointCloudRenderer(points, colors)
        for size in args.sizes:
            w, h = (int(v) for v in size.lower().split("x"))
            camera = PinholeCamera.from_fov(w, h, args.hfov)
            splats.render(camera, poses[0])  # compiles on the first call of a process
            stages: dict[str, list[float]] = {"project": [], "bin": [], "rasterize": [], "points": []}
            cover, point_cover = [], []
            for i in range(args.repeats):
                pose = poses[i % len(poses)]
                t0 = time.perf_counter()
                proj = splats.project(camera, pose)
                t1 = time.perf_counter()
                tiles = splats.bin(camera, proj)
                t2 = time.perf_counter()
                image = splats.composite(camera, proj, tiles)
                t3 = time.perf_counter()
                view = cloud.render(camera, pose)
                t4 = time.perf_counter()
                for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    stages[key].append(dt * 1e3)
                cover.append(image.result().coverage)
                point_cover.append(view.coverage)
            med = {k: statistics.median(v) for k, v in stages.items()}
            total = med["project"] + med["bin"] + med["rasterize"]
            print(f"| {n:,} | {w}x{h} | {med['project']:.1f} | {med['bin']:.1f} | {med['rasterize']:.1f} | {total:.1f} | "
                  f"{1e3 / total:.1f} | {np.mean(cover):.3f} | {med['points']:.1f} | {np.mean(point_cover):.3f} |",
                  flush=True)
    return 0


def _run_device(args: argparse.Namespace) -> int:
    """Whole-frame ms of the splat world's renderer on ``args.device`` (gsplat on CUDA, synchronised
    by the copy of each frame back to host memory, as the node receives it)."""
    import numpy as np

    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.eval.bench_render import room_views
    from worldfm_ros.world.splats import make_splat_renderer

    poses = room_views(8, 0)
    print(f"# bench-splats on {args.device}, {time.strftime('%Y-%m-%d')}; medians of {args.repeats} frames")
    print("| splats | size | ms per frame | FPS | coverage |")
    print("|---:|---|---:|---:|---:|")
    for n in args.splats:
        renderer = make_splat_renderer(room_splats(n)[2], args.device)
        for size in args.sizes:
            w, h = (int(v) for v in size.lower().split("x"))
            camera = PinholeCamera.from_fov(w, h, args.hfov)
            renderer.render(camera, poses[0])
            times, cover = [], []
            for i in range(args.repeats):
                t0 = time.perf_counter()
                view = renderer.render(camera, poses[i % len(poses)])
                times.append((time.perf_counter() - t0) * 1e3)
                cover.append(view.coverage)
            ms = statistics.median(times)
            print(f"| {n:,} | {w}x{h} | {ms:.2f} | {1e3 / ms:.0f} | {np.mean(cover):.3f} |", flush=True)
    return 0
