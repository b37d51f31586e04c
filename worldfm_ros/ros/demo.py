"""`worldfm demo`: the simulator on a bundled scene, driven by a scripted cmd_vel.

The default scene is the photorealistic ICL-NUIM living room as a splat world fitted to its
recording and closed by its layout (``scenes/icl_livingroom_splats``); the robot follows the recording's own camera path projected to the floor (a holonomic base with the
camera mounted at the recording's height and pitch, see :mod:`worldfm_ros.sim.drive`), so it
stays where the recording saw. ``--procedural`` drives a short tour of the procedural room
instead. Starts the node, a driver publishing the script on cmd_vel and a bag
recorder, all in one process over real DDS, in a ROS domain of its own (see
:mod:`worldfm_ros.ros.isolation`); then reads the bag back and writes a contact sheet (PNG)
and a video (MP4) of the camera frames. The driver stops, and the demo fails, if anything
but its own simulator subscribes to its cmd_vel.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from worldfm_ros.ros.isolation import add_domain_argument
from worldfm_ros.viz import add_view_arguments, targets_from_args
from worldfm_ros.runtime import add_threads_argument
from worldfm_ros.sim.cli_config import add_config_arguments

#: this command's flags and the SimConfig fields they set (beside the common ones)
CONFIG_FLAGS = {"rate": "rate_hz", "rig": "rig"}
FIRST_FRAME_TIMEOUT_S = 600.0

HELP = "run the simulator on the bundled scene with a scripted drive; write a bag, a contact sheet and an MP4"

# (seconds, forward m/s, sideways m/s, yaw rate rad/s): a short tour of the procedural default room.
SCRIPT = ((2.0, 0.4, 0.0, 0.0), (2.5, 0.0, 0.0, 0.6), (2.0, 0.4, 0.0, 0.0), (2.5, 0.2, 0.0, -0.6))


def scene_script(scene: str) -> tuple[tuple[tuple[float, float, float, float], ...], list]:
    """The drive for ``scene`` ('' = the procedural default room): (segments, node parameter
    overrides). A scene with a ``trajectory.tum`` of its recording is driven along it, projected to
    the floor (holonomic base, mount and initial pose from the recording); others get ``SCRIPT``."""
    from rclpy.parameter import Parameter

    from worldfm_ros.scene.store import TRAJECTORY_TUM, load_scene
    from worldfm_ros.sim.drive import ground_drive
    from worldfm_ros.sim.trajectory import load_tum

    path = Path(scene) / TRAJECTORY_TUM if scene else None
    if path is None or not path.is_file():
        return SCRIPT, []
    drive = ground_drive(load_tum(path, world="scene"), load_scene(scene).map_T_scene)
    overrides = [Parameter("kinematics.model", value="holonomic"),
                 Parameter("initial_pose", value=drive.initial_pose),
                 Parameter("mount.xyz", value=drive.mount_xyz), Parameter("mount.rpy", value=drive.mount_rpy)]
    return tuple(tuple(float(v) for v in row) for row in drive.segments), overrides


def remounted_rig(rig: str, drive_overrides: list, path: Path) -> str:
    """Write ``rig`` moved so that its first camera sits at the recording's mount (the drive's
    ``mount.xyz`` / ``mount.rpy`` overrides) to ``path``; return the path."""
    import dataclasses

    import yaml

    from worldfm_ros.sensors.mount import MountConfig
    from worldfm_ros.sensors.sensor_rig import load_rig, remount

    values = {p.name: p.value for p in drive_overrides}
    mount = MountConfig(list(values["mount.xyz"]), list(values["mount.rpy"]))
    path.write_text(yaml.safe_dump(dataclasses.asdict(remount(load_rig(rig), mount.matrix())), sort_keys=False))
    return str(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)  # --scene here defaults to the bundled ICL-NUIM living room
    parser.add_argument("--procedural", action="store_true",
                        help="drive through the bundled procedural room instead of the living room")
    parser.add_argument("--output", "-o", default="outputs/demo", help="output directory (replaced)")
    parser.add_argument("--rate", type=float, default=None, help="camera rate, Hz (default: rate_hz, 10)")
    parser.add_argument("--rig", default=None,
                        help="sensor rig: stereo | stereo_imu | a rig YAML (default: one camera); the bag holds every "
                             "camera and the IMU")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds of driving, counted from the first frame (0 = the whole script)")
    parser.add_argument("--no-compress", action="store_true", help="write the bag's MCAP chunks uncompressed")
    add_domain_argument(parser)
    add_view_arguments(parser)
    add_threads_argument(parser, default=None, default_text="torch_threads of the configuration, 1")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import shutil

    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.parameter import Parameter

    from worldfm_ros.errors import WorldFMError
    from worldfm_ros.resources import demo_scene_path
    from worldfm_ros.ros.dds import use_camera_profile
    from worldfm_ros.ros.executors import make_executor
    from worldfm_ros.ros.isolation import domain_id
    from worldfm_ros.ros.node import SimNode
    from worldfm_ros.ros.recorder import BagRecorder, simulator_topics
    from worldfm_ros.sim.cli_config import changed_fields, sim_config_from_args

    targets = targets_from_args(args)
    out = Path(args.output)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    domain = domain_id(args)
    use_camera_profile()  # as ros.node.main does
    rclpy.init(domain_id=domain)
    config = sim_config_from_args(args, CONFIG_FLAGS)
    if not config.scene and not args.procedural:
        config = dataclasses.replace(config, scene=str(demo_scene_path()))
    script, drive_overrides = scene_script(config.scene)
    if config.rig and drive_overrides:
        config = dataclasses.replace(config, rig=remounted_rig(config.rig, drive_overrides, out / "rig.yaml"))
    # The recording's drive sets the base, mount and start pose it was planned for: it wins.
    fields = {**changed_fields(config), "rerun": ",".join(targets)}
    overrides = [Parameter(k, value=v) for k, v in fields.items()] + drive_overrides
    sim = SimNode(parameter_overrides=overrides)
    driver = rclpy.create_node("worldfm_demo_driver")
    cmd_pub = driver.create_publisher(Twist, "cmd_vel", 10)
    rec_node = rclpy.create_node("worldfm_demo_recorder")
    cameras = tuple(cam.name for cam in sim.sensors.cameras)
    recorder = BagRecorder(rec_node, out / "bag", simulator_topics(cameras=cameras, imu=sim.sim.imu is not None),
                           compress=not args.no_compress)
    # One thread dispatches: the node renders in its own worker threads, and a multi-threaded
    # executor's spin_once loop would hold the GIL busy-polling.
    executor, _ = make_executor(sim.cfg.executor)
    for n in (sim, driver, rec_node):
        executor.add_node(n)

    # The drive's clock starts at the first camera frame: loading the world and compiling the
    # renderer's kernels on a fresh machine can take longer than a short --duration.
    start: float | None = None
    first_image = sim.resolve_topic_name(f"{cameras[0]}/image_raw")
    total = sum(seg[0] for seg in script)
    if args.duration > 0:
        total = min(total, args.duration)

    intruders: list[str] = []

    def drive() -> None:
        others = [f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in driver.get_subscriptions_info_by_topic(
            cmd_pub.topic_name) if i.node_name != sim.get_name()]
        if others or intruders:
            intruders[:] = intruders or others
            return  # never drive someone else's robot
        cmd = Twist()
        if start is None:
            cmd_pub.publish(cmd)
            return
        t = time.monotonic() - start
        for duration, vx, vy, wz in script:
            if t < duration:
                cmd.linear.x, cmd.linear.y, cmd.angular.z = vx, vy, wz
                break
            t -= duration
        cmd_pub.publish(cmd)

    driver.create_timer(0.05, drive)
    try:
        waited = time.monotonic()
        while start is None and not intruders:
            executor.spin_once(timeout_sec=0.05)
            if recorder.counts.get(first_image, 0):
                start = time.monotonic()
            elif time.monotonic() - waited > FIRST_FRAME_TIMEOUT_S:
                raise WorldFMError(f"demo: no frame on {first_image} within {FIRST_FRAME_TIMEOUT_S:.0f} s of start")
        while start is not None and time.monotonic() - start < total + 0.5 and not intruders:
            executor.spin_once(timeout_sec=0.05)
    finally:
        recorder.close()
        executor.shutdown()
        for n in (sim, driver, rec_node):
            n.destroy_node()
        rclpy.shutdown()
    if intruders:
        raise WorldFMError(f"ROS domain {domain}: {', '.join(intruders)} also subscribe to {cmd_pub.topic_name}; "
                           "stopped driving (pick another --domain-id)")
    own = sim.sensors.cameras[0].mounted.camera
    frames = write_media(out / "bag", out, camera=cameras[0], size=(own.width, own.height))
    print(f"demo: {frames} frames from scene {sim.scene_path} with backend {sim.backend.name}, ROS domain {domain}")
    print(f"  bag:           {out / 'bag'}  ({recorder.report()})")
    print(f"  contact sheet: {out / 'contact_sheet.png'}")
    print(f"  video:         {out / 'frames.mp4'}")
    for target in targets:
        print(f"  rerun:         {target}")
    return 0 if frames else 1


def write_media(bag: Path, out: Path, columns: int = 4, tiles: int = 12, camera: str = "camera",
                size: tuple[int, int] | None = None) -> int:
    """Read ``<camera>/image_raw`` back from the bag with rosbags; write contact_sheet.png and frames.mp4
    of the camera's frames: rgb8 images of ``size`` (width, height) pixels, the camera's own
    (None: the first rgb8 image's). Others (another publisher on the topic, in a shared ROS domain)
    are left out with one warning line on stderr. Returns the number of frames written."""
    import sys

    import cv2
    import numpy as np
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from worldfm_ros.ros.conversions import image_to_numpy

    images, foreign, topics = [], 0, set()
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        conns = [c for c in reader.connections if c.topic.endswith(f"/{camera}/image_raw")]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            if size is None and msg.encoding == "rgb8":
                size = (msg.width, msg.height)
            image = None
            if msg.encoding == "rgb8" and (msg.width, msg.height) == size:
                try:
                    image = image_to_numpy(msg)
                except ValueError:  # a data buffer shorter than its header says
                    pass
            if image is None:
                foreign += 1
                topics.add(conn.topic)
            else:
                images.append(image)
    if foreign:
        w, h = size or (0, 0)
        print(f"warning: demo media: left out {foreign} of {foreign + len(images)} messages on "
              f"{', '.join(sorted(topics))} that are not the camera's {w}x{h} rgb8 frames (another publisher "
              "on this ROS domain?)", file=sys.stderr)
    if not images:
        return 0
    h, w = images[0].shape[:2]
    video = cv2.VideoWriter(str(out / "frames.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    for img in images:
        video.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    video.release()
    picks = np.linspace(0, len(images) - 1, min(tiles, len(images))).round().astype(int)
    rows = -(-len(picks) // columns)
    sheet = np.zeros((rows * h, columns * w, 3), np.uint8)
    for i, k in enumerate(picks):
        r, c = divmod(i, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = images[k]
    scale = min(1.0, 1600 / sheet.shape[1])
    sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / "contact_sheet.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return len(images)
