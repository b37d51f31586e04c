"""``worldfm scene-build KIND``: build a scene anchor, save it and print its statistics."""

from __future__ import annotations

import argparse

HELP = ("build a scene (coloured points + posed keyframes) from RGB-D frames, a robot's bag, an image, a photo, "
        "a panorama, a PLY, a WorldFM meta.json or a procedural room")

_UP_HELP = ("which way is up: auto (the source's default), camera (keyframes' average up, refined by the "
            "floor plane), a scene axis such as -y or +z (known gravity), or none (scene frame = map frame)")


def _up(value: str) -> str:
    from worldfm_ros.build.assemble import UP_CHOICES
    from worldfm_ros.build.ground import parse_axis

    if value not in UP_CHOICES:
        try:
            parse_axis(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected auto, camera, none or an axis (+x … -z), got {value!r}") from None
    return value


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_rgbd_fusion_arguments(p: argparse.ArgumentParser) -> None:
    """``--depth-registration`` (how an RGB-D folder's depth maps relate to its colour images) and
    ``--fuse-voxel``."""
    from worldfm_ros.build.build_rgbd import DEPTH_REGISTRATIONS
    from worldfm_ros.build.rgbd_fusion import DEFAULT_FUSE_VOXEL

    p.add_argument("--depth-registration", choices=DEPTH_REGISTRATIONS, default="auto",
                   help="auto (default): register raw depth to the colour camera when the folder has "
                        "color-intrinsics.txt (+ color_T_depth.txt) or is 7-Scenes (Kinect v1); registered: depth "
                        "is already aligned with the colour images; kinect_v1: the folder's intrinsics are a "
                        "Kinect v1 depth camera's")
    p.add_argument("--fuse-voxel", type=float, default=DEFAULT_FUSE_VOXEL, metavar="M",
                   help=f"RGB-D fusion cell edge in metres (default {DEFAULT_FUSE_VOXEL}; 0 keeps every point)")


def add_complete_argument(p: argparse.ArgumentParser) -> None:
    """``--complete`` and its options: close the room after building (``worldfm scene-complete``)."""
    from worldfm_ros.build.cli_complete import add_completion_arguments

    p.add_argument("--complete", action="store_true",
                   help="close the room: fit floor, ceiling and walls and texture what was not seen "
                        "(as worldfm scene-complete; a scene directory only)")
    add_completion_arguments(p)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="scene to write: a directory, or a file ending in .npz")
    add_complete_argument(p)
    p.add_argument("--name", help="scene name (default: from the input)")
    p.add_argument("--max-points", type=int, default=2_000_000, help="point budget, met by voxel downsampling (default 2,000,000)")
    p.add_argument("--up", type=_up, default="auto", help=_UP_HELP)
    p.add_argument("--plane-threshold", type=float, default=0.02, metavar="M",
                   help="RANSAC floor inlier distance in metres (default 0.02)")
    p.add_argument("--splat", choices=("square", "footprint"), default="square",
                   help="how the node splats the scene when its splat parameter is auto (scene.yaml render.splat): "
                        "square (default; point_radius squares, steady on noisy depth) or footprint (each point by "
                        "its footprint, the cloud's spacing measured and recorded; dense fusions of clean depth, "
                        "e.g. ICL-NUIM: benchmarks/RESULTS.md)")


def _depth_scale(p: argparse.ArgumentParser, default_text: str) -> None:
    p.add_argument("--depth-scale", type=float, metavar="M_PER_UNIT",
                   help=f"metres per stored depth unit (default: {default_text})")


def add_refine_argument(p: argparse.ArgumentParser, default: str, poses: str) -> None:
    """``--refine``: how the builder registers ``poses`` (words for the help) before it fuses them."""
    from worldfm_ros.build.pose_refine import REFINE

    p.add_argument("--refine", choices=REFINE, default=default,
                   help=f"register {poses} by their RGB-D frames before fusing: rgbd = RGB-D odometry and a pose "
                        f"graph; icp = point-to-plane ICP and a pose graph (more accurate where the views hold shapes, "
                        f"about 3x the time of rgbd); "
                        f"none = keep them (default {default})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")

    p = kinds.add_parser("rgbd", help="posed RGB-D frames: TUM RGB-D, 7-Scenes, Open3D/ICL or the simple folder format",
                         description="Fuse posed RGB-D frames (camera-to-world, OpenCV axes) into a scene. Layouts: "
                                     "TUM (rgb.txt, depth.txt, groundtruth.txt); per-frame *.color.png + *.depth.png + "
                                     "*.pose.txt (7-Scenes); image/ + depth/ + poses.txt or trajectory.log (Open3D/ICL); "
                                     "intrinsics from intrinsics.txt, camera-intrinsics.txt or camera_intrinsics.json.")
    p.add_argument("folder", help="sequence folder")
    p.add_argument("--K", nargs=4, type=float, metavar=("FX", "FY", "CX", "CY"), help="intrinsics in pixels (required for TUM)")
    _depth_scale(p, "1/5000 for TUM, 0.001 (mm) for other 16-bit PNGs, 1 for float maps")
    p.add_argument("--frame-step", type=int, default=1, help="use every N-th frame (default 1)")
    p.add_argument("--max-frames", type=int, help="use at most this many frames")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--keyframes", type=int, default=8, help="number of keyframes, evenly spaced (default 8)")
    group.add_argument("--keyframe-every", type=int, help="make every N-th used frame a keyframe instead")
    p.add_argument("--keyframe-size", type=int, nargs=2, metavar=("W", "H"),
                   help="store the keyframes resampled to this size in pixels (default: as recorded)")
    p.add_argument("--pixel-stride", type=int, default=2, help="back-project every N-th pixel (default 2)")
    p.add_argument("--max-depth", type=float, metavar="M", help="ignore depth beyond this many metres")
    p.add_argument("--max-dt", type=float, default=0.02, metavar="S", help="TUM association tolerance in seconds (default 0.02)")
    add_rgbd_fusion_arguments(p)
    add_refine_argument(p, "none", "the folder's poses (when they come from an odometry, not a motion-capture system)")
    p.add_argument("--world", choices=("points", "splats"), default="points",
                   help="points: the fused cloud (default); splats: Gaussians fitted to the frames (slow: minutes)")
    from worldfm_ros.build.fit.cli import add_fit_arguments
    from worldfm_ros.runtime import add_threads_argument

    add_fit_arguments(p)
    add_threads_argument(p)
    _common(p)

    p = kinds.add_parser("image", help="one RGB image + its depth map, at the identity pose")
    p.add_argument("image", help="RGB image")
    p.add_argument("depth", help="z-depth map: .npy (metres), 16-bit .png (mm) or .exr")
    cam = p.add_mutually_exclusive_group(required=True)
    cam.add_argument("--K", nargs=4, type=float, metavar=("FX", "FY", "CX", "CY"), help="intrinsics in pixels")
    cam.add_argument("--hfov", type=float, metavar="DEG", help="horizontal field of view in degrees")
    _depth_scale(p, "0.001 (mm) for integer maps, 1 for float maps")
    p.add_argument("--max-depth", type=float, metavar="M", help="drop points beyond this many metres")
    _common(p)

    p = kinds.add_parser("panorama", help="equirectangular panorama + ray-distance map, with perspective keyframes")
    p.add_argument("panorama", help="2:1 equirectangular RGB panorama")
    p.add_argument("distance", help="ray distance per panorama pixel: .npy (metres), 16-bit .png (mm) or .exr")
    _depth_scale(p, "0.001 (mm) for integer maps, 1 for float maps")
    p.add_argument("--stride", type=int, default=1, help="use every N-th panorama pixel for the cloud (default 1)")
    p.add_argument("--max-distance", type=float, metavar="M", help="drop points farther than this (e.g. a sky shell)")
    p.add_argument("--crop-size", type=int, default=512, help="keyframe size in pixels, square (default 512)")
    p.add_argument("--crop-fov", type=float, default=None, metavar="DEG",
                   help="keyframe horizontal field of view (default: the release's 76.4)")
    p.add_argument("--yaws", type=_floats, default=None, metavar="DEG,...",
                   help="keyframe yaws, degrees, positive = right (default 0,45,90,135,180,-135,-90,-45)")
    p.add_argument("--pitches", type=_floats, default=None, metavar="DEG,...",
                   help="keyframe pitches, degrees, positive = up (default 0,30,-30)")
    p.add_argument("--profile", choices=("default", "release"), default="default",
                   help="release: build what the released WorldFM pipeline builds (4096x2048 resample, "
                        "one point per pixel, its 42 reference views at 504 px resized to 512)")
    _common(p)

    p = kinds.add_parser("ply", help="a PLY point cloud + optional keyframes (YAML/JSON list of image, K, c2w)")
    p.add_argument("ply", help="PLY file (x y z, optional red green blue)")
    p.add_argument("--keyframes", metavar="FILE", help="keyframe list: image, K or hfov_deg, c2w, optional depth")
    _common(p)

    p = kinds.add_parser("worldfm", help="official WorldFM meta.json + a z-depth map of its input image")
    p.add_argument("meta", help="meta.json (name, image, K, c2w)")
    p.add_argument("depth", help="z-depth of meta.json's image, same size: .npy (metres), 16-bit .png (mm) or .exr")
    _depth_scale(p, "0.001 (mm) for integer maps, 1 for float maps")
    p.add_argument("--fov", type=float, default=80.0, metavar="DEG",
                   help="field of view across the image's longer side (default 80, as the release pastes it)")
    p.add_argument("--max-depth", type=float, metavar="M", help="drop points beyond this many metres")
    _common(p)
    _add_procedural(kinds)
    _add_splats(kinds)
    _add_bag(kinds)
    _add_photo(kinds)


def _add_photo(kinds) -> None:
    p = kinds.add_parser("photo", help="one photo: metric depth from a local transformers depth model, then as 'image'",
                         description="Predict metric depth for a photo with a transformers depth-estimation model "
                                     "loaded from a local folder (e.g. Depth Anything V2 Metric), and build the "
                                     "one-keyframe scene 'scene-build image' builds. Intrinsics from the EXIF 35 mm "
                                     "focal length, or --fov.")
    p.add_argument("image", help="photo (JPEG, PNG, ...)")
    p.add_argument("--depth-model", required=True, metavar="DIR",
                   help="folder of a metric depth-estimation model (config.json, model.safetensors, "
                        "preprocessor_config.json)")
    p.add_argument("--fov", type=float, metavar="DEG", help="horizontal field of view (default: from EXIF)")
    p.add_argument("--max-depth", type=float, metavar="M", help="drop points beyond this many metres")
    _common(p)


def _add_bag(kinds) -> None:
    from worldfm_ros.build.rgbd_fusion import DEFAULT_FUSE_VOXEL

    p = kinds.add_parser("bag", help="a robot's recording: rosbag2 (MCAP, sqlite3) or ROS 1 bag with colour, depth, "
                                     "camera_info and /tf (or odometry)",
                         description="Fuse the RGB-D frames of a bag into a scene: topics found by type (or named), "
                                     "colour and depth paired by stamp, poses from /tf + /tf_static (or an odometry "
                                     "topic) refined by RGB-D registration, frames kept by motion. The bag's world "
                                     "frame (map, else odom) becomes the map frame.")
    p.add_argument("bag", help="rosbag2 folder (with metadata.yaml) or ROS 1 .bag file")
    p.add_argument("--color-topic", help="colour Image / CompressedImage topic (default: found by type)")
    p.add_argument("--depth-topic", help="depth Image / CompressedImage topic, registered to the colour camera")
    p.add_argument("--info-topic", help="colour camera_info topic (default: the one beside the colour topic)")
    p.add_argument("--odom-topic", help="take the base pose from this nav_msgs/Odometry topic instead of /tf")
    p.add_argument("--world-frame", help="frame the poses are in (default: map, else odom, else the TF root)")
    p.add_argument("--camera-frame", help="optical frame of the camera (default: camera_info's frame_id)")
    p.add_argument("--max-dt", type=float, default=0.02, metavar="S", help="colour/depth pairing tolerance (default 0.02)")
    p.add_argument("--tf-tolerance", type=float, default=0.05, metavar="S",
                   help="how far a stamp may lie outside the /tf samples (default 0.05)")
    _depth_scale(p, "0.001 (mm) for 16UC1, metres for 32FC1")
    p.add_argument("--keyframe-distance", type=float, default=0.1, metavar="M",
                   help="keep a frame after this much travel since the last kept one (default 0.1; 0 with "
                        "--keyframe-angle 0 keeps every frame)")
    p.add_argument("--keyframe-angle", type=float, default=10.0, metavar="DEG",
                   help="... or this much turn (default 10)")
    p.add_argument("--max-frames", type=int, help="stop after this many kept frames")
    from worldfm_ros.build.build_bag import BagConfig

    add_refine_argument(p, BagConfig.refine, "the recorded poses (wheel odometry drifts)")
    p.add_argument("--keyframes", type=int, default=8, help="reference keyframes among the kept frames (default 8)")
    p.add_argument("--pixel-stride", type=int, default=2, help="back-project every N-th pixel (default 2)")
    p.add_argument("--max-depth", type=float, metavar="M", help="ignore depth beyond this many metres")
    p.add_argument("--fuse-voxel", type=float, default=DEFAULT_FUSE_VOXEL, metavar="M",
                   help=f"fusion cell edge in metres (default {DEFAULT_FUSE_VOXEL}; 0 keeps every point)")
    _common(p)


def _add_splats(kinds) -> None:
    from worldfm_ros.build.build_splats import FRAMES

    p = kinds.add_parser("splats", help="a Gaussian-splat world from a 3DGS .ply, .compressed.ply, .spz or .splat file, "
                                        "or from a point-cloud scene (points become surface discs)",
                         description="Import Gaussian splats as a splat world (kind: splats): the file's frame is the "
                                     "scene frame, the lowest horizontal plane of its opaque surfaces the floor, and "
                                     "keyframes are rendered from the splats around the room's centre.")
    p.add_argument("source", help="splat file (.ply, .compressed.ply, .spz, .splat) or a point-cloud scene")
    p.add_argument("-o", "--output", required=True, help="scene directory to write")
    add_complete_argument(p)
    p.add_argument("--name", help="scene name (default: from the input)")
    p.add_argument("--frame", choices=sorted(FRAMES), default=None,
                   help="the file's axes: opencv (y down: COLMAP, INRIA 3DGS, gsplat; default for .ply/.splat), "
                        "rub (SPZ's right-up-back; default for .spz), zup, upside-down")
    p.add_argument("--up", type=_up, default="auto", help="the file's up axis (+x ... -z), instead of --frame")
    p.add_argument("--scale", type=float, default=1.0, help="metres per file unit (default 1)")
    p.add_argument("--keyframes", type=int, default=8, help="keyframes rendered around the centre (default 8)")
    p.add_argument("--keyframe-size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"),
                   help="keyframe size in pixels (default 320 240)")
    p.add_argument("--keyframe-hfov", type=float, default=90.0, metavar="DEG", help="keyframe field of view (default 90)")
    p.add_argument("--camera-height", type=float, default=1.2, metavar="M",
                   help="keyframe camera height above the floor (default 1.2)")


def _add_procedural(kinds) -> None:
    p = kinds.add_parser("procedural", help="a random textured room with box obstacles, fused from exact ray-cast views")
    p.add_argument("--seed", type=int, default=0, help="room seed: size, colours, obstacles (default 0)")
    p.add_argument("--size", type=float, nargs=3, metavar=("X", "Y", "Z"), help="room extent in metres (default: random)")
    p.add_argument("--obstacles", type=int, default=4, help="number of box obstacles (default 4)")
    p.add_argument("--width", type=int, default=320, help="capture camera width, px (default 320)")
    p.add_argument("--height", type=int, default=240, help="capture camera height, px (default 240)")
    p.add_argument("--hfov", type=float, default=90.0, metavar="DEG", help="capture horizontal FOV (default 90)")
    p.add_argument("--views", type=int, default=16, help="views fused into the cloud (default 16)")
    p.add_argument("--keyframes", type=int, default=8, help="views kept as keyframes (default 8)")
    p.add_argument("--pixel-stride", type=int, default=1, help="back-project every N-th pixel (default 1)")
    p.add_argument("-o", "--output", required=True, help="scene to write: a directory, or a file ending in .npz")
    p.add_argument("--name", help="scene name (default procedural_room_<seed>)")
    p.add_argument("--max-points", type=int, default=2_000_000, help="point budget (default 2,000,000)")
    add_complete_argument(p)


def _K(values: list[float] | None):
    from worldfm_ros.scene.io import K_from_values

    return None if values is None else K_from_values(*values)


def _rgbd_frames(args: argparse.Namespace):
    """(indices, c2ws) of the frames ``scene-build rgbd`` uses: every --frame-step-th, at most
    --max-frames; c2ws (N, 4, 4) camera-to-scene, OpenCV axes, metres: the folder's poses or, with
    --refine, the registered ones."""
    import numpy as np

    from worldfm_ros.build.build_rgbd import read_sequence, refine_sequence_poses
    from worldfm_ros.build.pose_refine import RefineConfig, refine_config

    frames = read_sequence(args.folder, args.max_dt, args.depth_registration).frames
    indices = list(range(len(frames)))[::args.frame_step][:args.max_frames]
    c2ws = np.stack([frames[i].c2w for i in indices])
    if args.refine != "none":
        cfg = refine_config(args.refine, max_depth=args.max_depth or RefineConfig.max_depth)
        c2ws, _ = refine_sequence_poses(args.folder, indices, c2ws, _K(args.K), args.depth_scale, args.max_dt,
                                        args.depth_registration, cfg)
    return indices, c2ws


def _build(args: argparse.Namespace, rgbd_frames=None):
    if args.kind == "splats":
        from worldfm_ros.build.build_splats import build_splats

        return build_splats(args.source, args.up, args.frame, args.scale, args.keyframes, tuple(args.keyframe_size),
                            args.keyframe_hfov, args.camera_height, args.name)
    if args.kind == "procedural":
        from worldfm_ros.build.procedural import build_procedural

        return build_procedural(args.seed, tuple(args.size) if args.size else None, args.obstacles, args.width,
                                args.height, args.hfov, args.views, args.keyframes, args.pixel_stride,
                                args.max_points, args.name)
    common = dict(max_points=args.max_points, up=args.up, plane_threshold=args.plane_threshold, name=args.name)
    if args.kind == "bag":
        from worldfm_ros.build.build_bag import BagConfig, build_bag

        cfg = BagConfig(args.color_topic, args.depth_topic, args.info_topic, args.odom_topic, args.world_frame,
                        args.camera_frame, args.max_dt, args.tf_tolerance, args.depth_scale, args.keyframe_distance,
                        args.keyframe_angle, args.max_frames, args.refine, args.keyframes, args.pixel_stride,
                        args.max_depth, fuse_voxel=args.fuse_voxel, **common)
        return build_bag(args.bag, cfg)[0]
    if args.kind == "rgbd":
        from worldfm_ros.build.build_rgbd import build_rgbd

        indices, c2ws = rgbd_frames
        anchor = build_rgbd(args.folder, K=_K(args.K), depth_scale=args.depth_scale, frames=indices,
                            poses=c2ws if args.refine != "none" else None, num_keyframes=args.keyframes,
                            keyframe_every=args.keyframe_every, pixel_stride=args.pixel_stride,
                            max_depth=args.max_depth, max_dt=args.max_dt, depth_registration=args.depth_registration,
                            fuse_voxel=args.fuse_voxel, **common)
        if args.keyframe_size:
            from worldfm_ros.camera import check_image_size
            from worldfm_ros.errors import SceneError

            check_image_size(*args.keyframe_size, "--keyframe-size", SceneError)
            anchor.keyframes = [kf.resized(*args.keyframe_size) for kf in anchor.keyframes]
        return anchor
    if args.kind == "photo":
        from worldfm_ros.build.build_photo import build_photo

        return build_photo(args.image, args.depth_model, hfov_deg=args.fov, max_depth=args.max_depth, **common)
    if args.kind == "image":
        from worldfm_ros.build.build_image import build_image

        return build_image(args.image, args.depth, K=_K(args.K), hfov_deg=args.hfov, depth_scale=args.depth_scale,
                           max_depth=args.max_depth, **common)
    if args.kind == "panorama":
        from worldfm_ros.build import build_panorama as bp

        return bp.build_panorama(
            args.panorama, args.distance, depth_scale=args.depth_scale, stride=args.stride,
            max_distance=args.max_distance, crop_size=args.crop_size,
            crop_fov_deg=bp.RELEASE_CROP_FOV_DEG if args.crop_fov is None else args.crop_fov,
            yaws=bp.DEFAULT_YAWS if args.yaws is None else args.yaws,
            pitches=bp.DEFAULT_PITCHES if args.pitches is None else args.pitches, profile=args.profile, **common)
    if args.kind == "ply":
        from worldfm_ros.build.build_ply import build_ply

        return build_ply(args.ply, args.keyframes, **common)
    from worldfm_ros.build.build_worldfm import build_worldfm

    return build_worldfm(args.meta, args.depth, depth_scale=args.depth_scale, fov_deg=args.fov,
                         max_depth=args.max_depth, **common)


def run(args: argparse.Namespace) -> int:
    import logging
    import time

    import dataclasses

    from worldfm_ros.scene.downsample import point_spacing
    from worldfm_ros.scene.store import save_scene
    from worldfm_ros.scene.summary import scene_summary

    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    start = time.perf_counter()
    rgbd_frames = _rgbd_frames(args) if args.kind == "rgbd" else None
    anchor = _build(args, rgbd_frames)
    if getattr(args, "world", "points") == "splats":
        return _fit_rgbd(args, anchor, rgbd_frames)
    if args.kind == "splats":
        from worldfm_ros.world.splats import save_splat_world

        path = save_splat_world(anchor, args.output)
        from worldfm_ros.scene.summary import world_summary

        print(world_summary(anchor))
    else:
        # The spacing sizes footprint splats and the anti-aliasing filter; measured once here, not at every load.
        anchor = dataclasses.replace(anchor, splat=getattr(args, "splat", "square"),
                                     point_spacing=point_spacing(anchor.points))
        path = save_scene(anchor, args.output)
        print(scene_summary(anchor))
        if args.kind == "rgbd":
            _write_recorded_path(path, rgbd_frames[1])
    print(f"saved {path} in {time.perf_counter() - start:.1f} s")
    return complete_built(args, path)


def _fit_rgbd(args: argparse.Namespace, anchor, rgbd_frames) -> int:
    """``rgbd --world splats``: the fused scene initialises Gaussians fitted to the frames it used
    (``rgbd_frames``: their indices and poses, ``_rgbd_frames``)."""
    import dataclasses
    from pathlib import Path

    from worldfm_ros.build.fit.scene import rgbd_fit_views
    from worldfm_ros.build.fit.cli import fit_and_save

    indices, c2ws = rgbd_frames
    views = rgbd_fit_views(args.folder, indices, args.fit_size, _K(args.K), args.depth_scale, args.depth_registration)
    rc = fit_and_save(anchor, dataclasses.replace(views, c2w=c2ws), args, Path(args.output))
    if rc:
        return rc
    _write_recorded_path(Path(args.output), c2ws)
    return complete_built(args, args.output)


def _write_recorded_path(scene, c2ws) -> None:
    """An rgbd scene folder gets the camera path of the frames it used (scene.store.TRAJECTORY_TUM):
    c2ws (N, 4, 4) camera-to-scene, OpenCV axes, metres."""
    from pathlib import Path

    from worldfm_ros.build.build_rgbd import write_recorded_path
    from worldfm_ros.scene.store import TRAJECTORY_TUM

    if not Path(scene).is_dir():
        return
    print(f"camera path: {write_recorded_path(Path(scene) / TRAJECTORY_TUM, c2ws)}")


def complete_built(args: argparse.Namespace, path) -> int:
    """``--complete``: close the room of the scene just saved at ``path``, in place; a scene that is
    not a room is kept as built, with one line saying why."""
    if not getattr(args, "complete", False):
        return 0
    from worldfm_ros.errors import SceneError
    from worldfm_ros.build.cli_complete import completion_config
    from worldfm_ros.build.complete import NotARoom, complete_scene, format_report

    if str(path).lower().endswith(".npz"):
        raise SceneError(f"{path}: --complete needs a scene directory, not a .npz archive")
    try:
        layout = complete_scene(path, path, completion_config(args), force=True)
    except NotARoom as exc:
        print(f"--complete: {exc}; the scene is saved without a layout")
        return 0
    print(format_report(layout))
    return 0
