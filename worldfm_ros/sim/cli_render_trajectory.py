"""``worldfm render-trajectory``: render a pose file offline to PNG frames, an MP4 and an MCAP bag."""

from __future__ import annotations

import argparse

from worldfm_ros.viz import add_view_arguments
from worldfm_ros.runtime import add_threads_argument

HELP = "render a pose trajectory (TUM or JSON/YAML 4x4 list) to PNG frames, an MP4 and a rosbag2 MCAP bag"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trajectory", help="pose file: TUM 't tx ty tz qx qy qz qw' lines, or .json/.yaml 4x4 list")
    parser.add_argument("--output", "-o", required=True, help="output folder (frames/, video.mp4, bag/); "
                                                                "its bag/ must not exist")
    parser.add_argument("--scene", default="", help="scene anchor ('' = bundled default room)")
    parser.add_argument("--kind", choices=("optical", "base"), default="optical",
                        help="poses are the camera optical frame (OpenCV axes) or base_link (default optical)")
    parser.add_argument("--world", choices=("map", "scene"), default="map",
                        help="poses are in the map frame or the scene anchor's own frame (default map)")
    parser.add_argument("--rate", type=float, default=10.0, help="Hz, stamps of a JSON/YAML file without 'stamps'")
    parser.add_argument("--backend", default="torch", help="frame backend (default torch: the bundled model)")
    parser.add_argument("--model", default="", help="frame-model checkpoint ('' = the bundled model)")
    parser.add_argument("--vae", default="", help="VAE folder for latent frame models")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (renderer and backend)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(640, 480), help="camera size, px")
    parser.add_argument("--hfov", type=float, default=90.0, help="horizontal field of view, degrees")
    parser.add_argument("--camera-info", default="", help="camera_calibration_parsers YAML (overrides --size/--hfov)")
    parser.add_argument("--mount-xyz", type=float, nargs=3, default=[0.1, 0.0, 1.0],
                        help="base_link -> camera_link translation, m (for --kind base and the bag's TF)")
    parser.add_argument("--mount-rpy", type=float, nargs=3, default=[0.0, 0.0, 0.0],
                        help="base_link -> camera_link roll pitch yaw, rad")
    parser.add_argument("--fps", type=float, default=0.0, help="video frame rate (0 = the trajectory's rate)")
    parser.add_argument("--no-png", action="store_true", help="do not write PNG frames")
    parser.add_argument("--no-video", action="store_true", help="do not write the MP4")
    parser.add_argument("--no-bag", action="store_true", help="do not write the bag")
    parser.add_argument("--no-compress", action="store_true", help="write the bag's MCAP chunks uncompressed")
    add_view_arguments(parser)
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import statistics

    from worldfm_ros.backends.registry import create_backend
    from worldfm_ros.config import load_config
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator
    from worldfm_ros.sim.trajectory import load_trajectory, render_trajectory
    from worldfm_ros.viz import RerunLog, targets_from_args

    targets = targets_from_args(args)
    trajectory = load_trajectory(args.trajectory, args.kind, args.world, args.rate)
    config = load_config(SimConfig, {
        "scene": args.scene, "torch_threads": args.threads,
        "camera": {"width": args.size[0], "height": args.size[1], "hfov_deg": args.hfov,
                   "camera_info_url": args.camera_info},
        "mount": {"xyz": list(args.mount_xyz), "rpy": list(args.mount_rpy)},
        "backend": {"name": args.backend, "model": args.model, "vae": args.vae, "device": args.device},
    })
    backend = create_backend(config.backend.name, config=config.backend)
    from worldfm_ros.devices import resolve_device

    sim = Simulator(config, backend, device=resolve_device(args.device))
    viz = RerunLog(targets, sim.rig.camera) if targets else None
    sim.load_scene(config.scene or None)
    if viz is not None:
        viz.log_anchor(sim.pipeline.anchor)
    try:
        summary = render_trajectory(sim.pipeline, trajectory, args.output, config.frames, png=not args.no_png,
                                    video=not args.no_video, bag=not args.no_bag, video_fps=args.fps or None,
                                    compress=not args.no_compress, on_frame=viz.log_frame if viz else None)
    finally:
        if viz is not None:
            viz.close()
    print(f"rendered {summary.frames} frames ({sim.rig.camera.width}x{sim.rig.camera.height}, backend "
          f"{args.backend}) in {summary.seconds:.2f} s: {summary.fps:.1f} frames/s including writing; "
          f"pipeline median {statistics.median(summary.render_ms):.1f} ms/frame")
    for path in summary.outputs:
        print(f"  {path}")
    for target in targets:
        print(f"  rerun: {target}")
    if viz is not None:
        print(f"  rerun logging median {statistics.median(viz.log_ms):.1f} ms/frame")
    return 0
