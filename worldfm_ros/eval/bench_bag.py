"""``worldfm bench-bag``: what ``scene-build bag`` recovers from recordings of known worlds, and what it costs.

* round trip: a drive through a procedural room recorded as the simulator records it
  (``sim.trajectory.TrajectoryBag``: rgb8, 32FC1 depth, camera_info, /tf, /tf_static), rebuilt,
  and rendered at the recorded poses by the same simulator: PSNR against the recorded images;
* drift: the same drive with its odometry drifting linearly to ``drift_m`` / ``drift_deg`` at the
  end: pose error of the recorded and the refined poses, and the rebuilt world's PSNR against the
  clean-pose one;
* real sequence: frames of ICL-NUIM (``../shared/data``) written as a robot records them (colour
  and depth on their own stamps, /tf odom → base_link, /tf_static base_link → camera optical frame)
  and built by ``scene-build bag`` and by ``scene-build rgbd`` from the same frames, both scored
  on held-out frames;
* cost: build time and peak RSS (this process's, ``ru_maxrss``) per bag size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

HELP = "measure scene-build bag: round trip, drift recovery, a real sequence vs scene-build rgbd, time and memory"


def drifted(map_T_base: np.ndarray, drift_m: float, drift_deg: float) -> np.ndarray:
    """(N, 4, 4) base poses whose error grows linearly from 0 to ``drift_m`` along +x of the map
    and ``drift_deg`` of yaw at the last pose, as wheel odometry drifts."""
    out = np.array(map_T_base, np.float64, copy=True)
    n = len(out)
    for i in range(n):
        s = i / max(n - 1, 1)
        out[i, :3, :3] = Rotation.from_euler("z", drift_deg * s, degrees=True).as_matrix() @ out[i, :3, :3]
        out[i, 0, 3] += drift_m * s
    return out


def record_drive(sim, map_T_base: np.ndarray, stamps_ns: np.ndarray, path: str | Path,
                 recorded_T_base: np.ndarray | None = None, keep: bool = True) -> list:
    """Record the simulator's camera at the base poses (N, 4, 4) into the bag folder ``path`` with
    the simulator's bag writer; ``recorded_T_base``: the poses written to /tf and odom instead of the
    true ones (a drifting odometry). Returns the rendered frames (none unless ``keep``)."""
    from worldfm_ros.sim.trajectory import TrajectoryBag, body_velocities

    recorded = map_T_base if recorded_T_base is None else recorded_T_base
    linear, angular = body_velocities(recorded, stamps_ns)
    bag = TrajectoryBag(path, sim.sensors, sim.config.frames)
    frames = []
    try:
        for i, (T, stamp) in enumerate(zip(map_T_base, stamps_ns)):
            rendered = sim.render_cameras(T, int(stamp), [0], seed=i)
            bag.write(rendered, recorded[i], linear[i], angular[i])
            if keep:
                frames.append(rendered[0])
    finally:
        bag.close()
    return frames


def room_simulator(width: int, height: int, scene_dir: Path, seed: int = 5):
    """A simulator on the anchor backend in a procedural room (saved to ``scene_dir``)."""
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.config import load_config
    from worldfm_ros.build.procedural import make_room_scene, random_room
    from worldfm_ros.scene.store import save_scene
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator

    if not (scene_dir / "scene.yaml").is_file():
        room = random_room(seed=seed, size=(6.0, 5.0, 2.8), num_obstacles=3)
        save_scene(make_room_scene(room, PinholeCamera.from_fov(2 * width, 2 * height, 90.0), num_views=24,
                                   num_keyframes=4), scene_dir)
    return simulator(width, height, scene_dir)


def simulator(width: int, height: int, scene):
    from worldfm_ros.config import load_config
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator

    sim = Simulator(load_config(SimConfig, {"camera": {"width": width, "height": height, "hfov_deg": 90.0},
                                            "backend": {"name": "anchor"}}))
    sim.load_scene(scene)
    return sim


def drive(n: int, per_loop: int = 180, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, 4) base poses circling the procedural room's middle (``per_loop`` poses a lap, facing
    along the path) and (N,) stamps at 10 Hz."""
    from worldfm_ros.sim.simulator import planar_pose

    theta = 2 * np.pi * np.arange(n) / per_loop
    poses = np.stack([planar_pose(3.0 + radius * np.cos(t), 2.5 + radius * np.sin(t), 0.0, t + np.pi / 2)
                      for t in theta])
    return poses, 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 100_000_000


def replay_psnr(scene, frames: list, map_T_base: np.ndarray, width: int, height: int) -> float:
    """Mean PSNR (dB) of ``scene`` rendered by the simulator at the base poses against ``frames``, its
    points splatted by their footprint (as ``scene-build ... --splat footprint`` asks)."""
    import dataclasses

    from worldfm_ros.eval.metrics import psnr
    from worldfm_ros.scene.downsample import point_spacing

    scene = dataclasses.replace(scene, splat="footprint", point_spacing=point_spacing(scene.points))
    sim = simulator(width, height, scene)
    values = [psnr(sim.render_cameras(T, 0, [0], seed=i)[0].rgb, f.rgb) for i, (T, f) in enumerate(zip(map_T_base, frames))]
    return float(np.mean(values))


def pose_errors(estimated: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(max translation error m, max rotation error deg) of (N, 4, 4) poses."""
    from worldfm_ros.geometry import pose_errors as per_pose

    metres, degrees = per_pose(estimated, truth)
    return float(metres.max()), float(degrees.max())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="outputs/bench_bag", help="work folder (default outputs/bench_bag)")
    parser.add_argument("--frames", type=int, default=40, help="frames of the round-trip drive (default 40)")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"),
                        help="round-trip camera size (default 320 240)")
    parser.add_argument("--real-frames", type=int, default=60, help="ICL-NUIM frames written to a bag (default 60)")
    parser.add_argument("--memory-frames", type=int, nargs="*", default=[100, 300],
                        help="sizes of 640x480 bags to time (default 100 300)")
    parser.add_argument("--refine", nargs="+", choices=("rgbd", "icp"), default=["rgbd", "icp"],
                        help="registrations compared beside none (default rgbd icp)")
    parser.add_argument("--parts", nargs="+", choices=tuple(PARTS), default=list(PARTS),
                        help="what to measure (default all: round-trip real cost)")


def write_rgbd_sequence_bag(root: Path, indices: list[int], path: Path, depth_delay_ns: int = 1_000_000) -> None:
    """Frames ``indices`` of an RGB-D folder written as a robot records them: colour (rgb8) and camera_info at t,
    depth (16UC1 mm) on its own stamp t + ``depth_delay_ns``, /tf odom -> base_link at t and at the depth stamp,
    /tf_static base_link -> camera_optical_frame (a camera 0.2 m ahead and 1 m up, looking forward)."""
    from rosbags.typesys import Stores, get_typestore

    from worldfm_ros.bags import open_writer
    from worldfm_ros.camera import LINK_T_OPTICAL, PinholeCamera
    from worldfm_ros.messages import MessageBuilder
    from worldfm_ros.build.build_rgbd import read_sequence

    store = get_typestore(Stores.ROS2_JAZZY)
    msg = MessageBuilder(store.types.__getitem__, lambda a: a)
    seq = read_sequence(root)
    writer = open_writer(path)
    topics = {"color": ("/camera/color/image_raw", "sensor_msgs/msg/Image"),
              "info": ("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo"),
              "depth": ("/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image"),
              "tf": ("/tf", "tf2_msgs/msg/TFMessage"), "static": ("/tf_static", "tf2_msgs/msg/TFMessage")}
    conns = {k: writer.add_connection(t, ty, typestore=store) for k, (t, ty) in topics.items()}

    def put(key, m, stamp):
        writer.write(conns[key], stamp, store.serialize_cdr(m, conns[key].msgtype))

    base_T_optical = np.eye(4)
    base_T_optical[:3, 3] = (0.2, 0.0, 1.0)
    base_T_optical = base_T_optical @ LINK_T_OPTICAL
    t0 = 1_700_000_000_000_000_000
    put("static", msg.tf_message([msg.transform_stamped(base_T_optical, t0, "base_link", "camera_optical_frame")]), t0)
    try:
        for n, i in enumerate(indices):
            frame = seq.frames[i]
            image, depth = seq.load(frame)
            camera = PinholeCamera.from_K(seq.K, image.shape[1], image.shape[0])
            stamp = t0 + n * 200_000_000
            odom_T_base = frame.c2w @ np.linalg.inv(base_T_optical)
            for s in (stamp, stamp + depth_delay_ns):  # the robot was still there a millisecond later
                put("tf", msg.tf_message([msg.transform_stamped(odom_T_base, s, "odom", "base_link")]), s)
            put("color", msg.rgb_image(image, stamp, "camera_optical_frame"), stamp)
            put("info", msg.camera_info(camera, stamp, "camera_optical_frame"), stamp)
            mm = np.clip(np.round(depth * 1000), 0, 65535).astype(np.uint16)
            put("depth", msg.image(mm, "16UC1", stamp + depth_delay_ns, "camera_optical_frame"), stamp + depth_delay_ns)
    finally:
        writer.close()


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forked parent's pages
_CHILD = """
import re, sys, time
from worldfm_ros.build.build_bag import BagConfig, build_bag
t = time.perf_counter()
anchor, report = build_bag(sys.argv[1], BagConfig(refine=sys.argv[2]), progress=False)
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(time.perf_counter() - t, hwm / 1024, report.kept, anchor.num_points)
"""


def _round_trip(args, out: Path) -> list[str]:
    import time

    from worldfm_ros.build.build_bag import BagConfig, build_bag, read_bag_frames
    from worldfm_ros.build.pose_refine import refine_config, refine_poses

    w, h = args.size
    sim = room_simulator(w, h, out / f"room_{w}x{h}")
    poses, stamps = drive(args.frames)
    clean, drift = out / f"clean_{w}x{h}_{args.frames}", out / f"drift_{w}x{h}_{args.frames}"
    for p in (clean, drift):
        if p.exists():
            import shutil

            shutil.rmtree(p)
    frames = record_drive(sim, poses, stamps, clean)
    record_drive(sim, poses, stamps, drift, drifted(poses, 0.10, 5.0))
    every = dict(keyframe_distance=0.0, keyframe_angle_deg=0.0, pixel_stride=1)
    rows = [f"round trip: {args.frames} frames {w}x{h} (3.5 cm, 2 deg apart), procedural room, anchor backend, "
            f"every frame kept, pixel stride 1, footprint splats", "| bag | refine | build s | replay PSNR dB |",
            "|---|---|---|---|"]
    scores = {}
    for bag, refine in [(b, r) for b in (clean, drift) for r in ("none", *args.refine)]:
        t = time.perf_counter()
        anchor, _ = build_bag(bag, BagConfig(refine=refine, **every), progress=False)
        seconds = time.perf_counter() - t
        scores[bag.name[:5], refine] = replay_psnr(anchor, frames, poses, w, h)
        rows.append(f"| {bag.name[:5]} | {refine} | {seconds:.1f} | {scores[bag.name[:5], refine]:.2f} |")
    truth = np.stack([k.c2w for k in read_bag_frames(clean, BagConfig(**every), progress=False)[0]])
    kept, K, _ = read_bag_frames(drift, BagConfig(**every), progress=False)
    recorded = np.stack([k.c2w for k in kept])
    clean_frames = [(k.image, k.depth) for k in read_bag_frames(clean, BagConfig(**every), progress=False)[0]]
    estimates = {"recorded (drifted)": recorded}
    for refine in args.refine:
        estimates[f"refined, {refine}"] = refine_poses([(k.image, k.depth) for k in kept], K, recorded,
                                                        refine_config(refine))[0]
        estimates[f"refined from the true poses, {refine}"] = refine_poses(clean_frames, K, truth, refine_config(refine))[0]
    rows += ["", "drift recovery (10 cm / 5 deg injected linearly over the drive)", "| poses | max error cm | max error deg |",
             "|---|---|---|"]
    for label, est in estimates.items():
        e = pose_errors(est, truth)
        rows.append(f"| {label} | {100 * e[0]:.2f} | {e[1]:.2f} |")
    for refine in args.refine:
        rows.append(f"rebuilt from the drifted bag, refined by {refine}: {scores['drift', refine]:.2f} dB vs clean poses "
                    f"{scores['clean', 'none']:.2f} dB")
    return rows


def _real_sequence(args, out: Path) -> list[str]:
    from worldfm_ros.backends.config import BackendConfig
    from worldfm_ros.eval.rgbd_split import load_views, render_views, score_views, split_indices
    from worldfm_ros.build.build_bag import BagConfig, build_bag
    from worldfm_ros.build.build_rgbd import build_rgbd
    from worldfm_ros.sim.simulator import open_backend
    from worldfm_ros.world.pointcloud import PointCloudWorld

    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "icl_livingroom"
    if not root.is_dir():
        return [f"real sequence: skipped ({root} not present)"]
    anchor_idx, heldout = split_indices(args.real_frames, "interleave", every=2)
    bag = out / f"icl_{args.real_frames}"
    if bag.exists():
        import shutil

        shutil.rmtree(bag)
    write_rgbd_sequence_bag(root, anchor_idx, bag)
    views = load_views(root, heldout, (320, 240))
    backend, _ = open_backend(BackendConfig(name="anchor"))
    worlds = {"scene-build rgbd": build_rgbd(root, frames=anchor_idx, num_keyframes=8, up="none")}
    for refine in ("none", *args.refine):
        worlds[f"scene-build bag, refine {refine}"] = build_bag(
            bag, BagConfig(keyframe_distance=0, keyframe_angle_deg=0, refine=refine), progress=False)[0]
    rows = [f"real sequence: ICL-NUIM living room, {len(anchor_idx)} anchor frames (every 2nd of {args.real_frames}) "
            f"640x480, {len(heldout)} held-out views at 320x240, anchor backend",
            "| world | points | PSNR dB | PSNR covered dB | coverage |", "|---|---|---|---|---|"]
    for label, anchor in worlds.items():
        rgb, _, covered, _ = render_views(PointCloudWorld(anchor), backend, views)
        s = score_views(rgb, covered, views)
        rows.append(f"| {label} | {anchor.num_points} | {s['psnr']:.2f} | {s['psnr_covered']:.2f} | {s['coverage']:.3f} |")
    return rows


def _memory(args, out: Path) -> list[str]:
    import subprocess
    import sys

    from worldfm_ros.build.build_bag import BagConfig

    rows = ["cost: 640x480 drives (circles, 2.1 cm a frame: 0.6 m/s at 30 Hz), default options (keyframes every 0.1 m / 10 deg, "
            f"default refine {BagConfig.refine}), a fresh process each",
            "| frames | bag MB | refine | kept | points | build s | peak RSS MB |", "|---|---|---|---|---|---|---|"]
    sim = room_simulator(640, 480, out / "room_640x480")
    for n in args.memory_frames:
        bag = out / f"mem_{n}"
        if not bag.exists():
            poses, stamps = drive(n, per_loop=300)
            record_drive(sim, poses, stamps, bag, keep=False)
        size = sum(p.stat().st_size for p in bag.iterdir()) / 2 ** 20
        for refine in args.refine:
            res = subprocess.run([sys.executable, "-c", _CHILD, str(bag), refine], capture_output=True, text=True, check=True)
            seconds, rss, kept, points = res.stdout.split()[-4:]
            rows.append(f"| {n} | {size:.0f} | {refine} | {kept} | {points} | {float(seconds):.1f} | {float(rss):.0f} |")
    return rows


def run(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("worldfm_ros").setLevel(logging.WARNING)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.parts:
        print("\n".join(PARTS[name](args, out)), "\n", flush=True)
    return 0


PARTS = {"round-trip": _round_trip, "real": _real_sequence, "cost": _memory}
