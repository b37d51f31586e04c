"""``worldfm render-trajectory``: render a pose file offline to PNG frames, an MP4 and an MCAP bag."""

from __future__ import annotations

import argparse

from worldfm_ros.viz import add_view_arguments
from worldfm_ros.runtime import add_threads_argument, apply_torch_threads
from worldfm_ros.sim.cli_config import add_config_arguments, sim_config_from_args

#: this command's flags and the SimConfig fields they set (beside the common ones)
CONFIG_FLAGS = {"vae": "backend.vae", "device": "backend.device", "hfov": "camera.hfov_deg",
                "camera_info": "camera.camera_info_url", "mount_xyz": "mount.xyz", "mount_rpy": "mount.rpy",
                "rig": "rig"}

HELP = "render a pose trajectory (TUM or JSON/YAML 4x4 list) to PNG frames, an MP4 and a rosbag2 MCAP bag"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trajectory", help="pose file: TUM 't tx ty tz qx qy qz qw' lines, or .json/.yaml 4x4 list")
    parser.add_argument("--output", "-o", required=True, help="output folder (frames/, video.mp4, bag/); "
                                                                "its bag/ must not exist")
    add_render_arguments(parser)
    add_view_arguments(parser)


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of how a trajectory is rendered and what is written (shared with render-batch)."""
    add_config_arguments(parser)
    parser.add_argument("--kind", choices=("optical", "base"), default="optical",
                        help="poses are the camera optical frame (OpenCV axes) or base_link (default optical)")
    parser.add_argument("--world", choices=("map", "scene"), default="map",
                        help="poses are in the map frame or the scene anchor's own frame (default map)")
    parser.add_argument("--rate", type=float, default=10.0, help="Hz, stamps of a JSON/YAML file without 'stamps'")
    parser.add_argument("--vae", default=None, help="VAE folder for latent frame models (backend.vae)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda, renderer and backend (backend.device, default auto)")
    parser.add_argument("--hfov", type=float, default=None, help="horizontal field of view, degrees (camera.hfov_deg, default 90)")
    parser.add_argument("--camera-info", default=None,
                        help="camera_calibration_parsers YAML, overrides the size and field of view (camera.camera_info_url)")
    parser.add_argument("--mount-xyz", type=float, nargs=3, default=None,
                        help="base_link -> camera_link translation, m, for --kind base and the bag's TF (mount.xyz, default 0.1 0 1)")
    parser.add_argument("--mount-rpy", type=float, nargs=3, default=None,
                        help="base_link -> camera_link roll pitch yaw, rad (mount.rpy, default 0 0 0)")
    parser.add_argument("--rig", default=None,
                        help="sensor rig: stereo | stereo_imu | a rig YAML (default: one camera); every camera is "
                             "rendered as the node does, into frames/<camera>/ and the bag with the IMU (rig)")
    parser.add_argument("--fps", type=float, default=0.0, help="video frame rate (0 = the trajectory's rate)")
    parser.add_argument("--no-png", action="store_true", help="do not write PNG frames")
    parser.add_argument("--no-video", action="store_true", help="do not write the MP4")
    parser.add_argument("--no-bag", action="store_true", help="do not write the bag")
    parser.add_argument("--no-compress", action="store_true", help="write the bag's MCAP chunks uncompressed")
    add_threads_argument(parser, default=None, default_text="torch_threads of the configuration, 1")


def output_options(args: argparse.Namespace) -> dict:
    """The ``render_trajectory`` keywords of this command's output flags."""
    return dict(png=not args.no_png, video=not args.no_video, bag=not args.no_bag, video_fps=args.fps or None,
                compress=not args.no_compress)


def open_simulator(config):
    """A Simulator of ``config`` (its backend, renderer device and scene loaded)."""
    from worldfm_ros.backends.registry import create_backend
    from worldfm_ros.devices import resolve_device
    from worldfm_ros.sim.simulator import Simulator

    apply_torch_threads(config.torch_threads)
    sim = Simulator(config, create_backend(config.backend.name, config=config.backend),
                    device=resolve_device(config.backend.device))
    sim.load_scene(config.scene or None)
    return sim


def run(args: argparse.Namespace) -> int:
    import statistics

    from worldfm_ros.sim.trajectory import load_trajectory, render_trajectory
    from worldfm_ros.viz import RerunLog, targets_from_args

    targets = targets_from_args(args)
    trajectory = load_trajectory(args.trajectory, args.kind, args.world, args.rate)
    config = sim_config_from_args(args, CONFIG_FLAGS)
    sim = open_simulator(config)
    viz = RerunLog(targets, sim.rig.camera) if targets else None
    if viz is not None:
        viz.log_world(sim.world)
    try:
        summary = render_trajectory(sim, trajectory, args.output, on_frame=viz.log_frame if viz else None,
                                    **output_options(args))
    finally:
        if viz is not None:
            viz.close()
    cams = sim.sensors.cameras
    print(f"rendered {summary.frames} poses x {len(cams)} camera{'s' * (len(cams) > 1)} "
          f"({sim.rig.camera.width}x{sim.rig.camera.height}, backend "
          f"{config.backend.name}) in {summary.seconds:.2f} s: {summary.fps:.1f} frames/s including writing; "
          f"pipeline median {statistics.median(summary.render_ms):.1f} ms per pose")
    for path in summary.outputs:
        print(f"  {path}")
    for target in targets:
        print(f"  rerun: {target}")
    if viz is not None:
        print(f"  rerun logging median {statistics.median(viz.log_ms):.1f} ms/frame")
    return 0
