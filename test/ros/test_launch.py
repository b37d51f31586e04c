"""`ros2 launch worldfm_ros sim.launch.py`, run the ROS way: launch_pytest over the colcon install.

Each test includes the installed launch file (what `ros2 launch` runs) with a set of arguments
and observes the running node over DDS from a separate rclpy context. Needs the real `launch`,
`launch_ros` and `launch_pytest` (a ROS 2 install, or ../shared/ros2 via scripts/setup.sh).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="launch_pytest is not installed (it comes with ROS 2; scripts/setup.sh installs it "
                            "from ../shared/ros2 when present)")

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import ExecuteProcess, IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from worldfm_ros.msg import FrameStats  # noqa: E402

from rosutil import Spinner, fresh_domain_id, wait_for  # noqa: E402

try:
    SHARE = Path(get_package_share_directory("worldfm_ros"))
except PackageNotFoundError:
    pytest.skip("worldfm_ros is not installed: build it with colcon (scripts/setup.sh) and source it",
                allow_module_level=True)

# Topics every node has, or that are absolute by design (REP-105 TF, the diagnostics aggregator).
GLOBAL_TOPICS = {"/tf", "/tf_static", "/diagnostics", "/clock", "/rosout", "/parameter_events"}


def sim_launch(launch_file: str = "sim.launch.py", **arguments: str) -> IncludeLaunchDescription:
    """The installed launch file with ``name:=value`` arguments, as `ros2 launch` includes it."""
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(str(SHARE / "launch" / launch_file)),
                                    launch_arguments=arguments.items())


class Probe:
    """A node in its own rclpy context that keeps what it receives: ``messages[topic]`` = [(t_wall, msg)]."""

    def __init__(self) -> None:
        import rclpy

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("launch_probe", context=self.context)
        self.spinner = Spinner(self.context, self.node)
        self.messages: dict[str, list] = {}
        self._lock = threading.Lock()

    def listen(self, msg_type, topic: str, qos=qos_profile_sensor_data) -> None:
        self.messages[topic] = []

        def keep(msg, topic=topic):
            with self._lock:
                self.messages[topic].append((time.monotonic(), msg))

        self.node.create_subscription(msg_type, topic, keep, qos)

    def received(self, topic: str) -> list:
        with self._lock:
            return [m for _, m in self.messages[topic]]

    def close(self) -> None:
        import rclpy

        self.spinner.stop()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(autouse=True)
def own_domain(monkeypatch):
    """Each launch in a ROS domain of its own, so nodes other tests left running are not seen; the
    launched node sets up its DDS transport itself (conftest set it for this process only)."""
    from worldfm_ros.ros.dds import PROFILE_VARIABLE

    monkeypatch.setenv("ROS_DOMAIN_ID", str(fresh_domain_id()))
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)


@pytest.fixture
def probe(own_domain):
    p = Probe()
    yield p
    p.close()


def stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def camera_topics(probe: Probe, ns: str = "") -> tuple[str, str, str]:
    topics = (f"{ns}/camera/image_raw", f"{ns}/camera/camera_info", f"{ns}/camera/depth/image_raw")
    probe.listen(Image, topics[0])
    probe.listen(CameraInfo, topics[1])
    probe.listen(Image, topics[2])
    return topics


# ----------------------------------------------------------------------------- default arguments
@launch_pytest.fixture
def default_launch():
    return LaunchDescription([sim_launch(), launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=default_launch)
def test_default_launch_publishes_image_camera_info_and_depth_with_equal_stamps_at_the_preset_size(probe):
    image_t, info_t, depth_t = camera_topics(probe)

    def matched() -> set[int]:
        return ({stamp(m) for m in probe.received(image_t)} & {stamp(m) for m in probe.received(info_t)}
                & {stamp(m) for m in probe.received(depth_t)})

    wait_for(lambda: len(matched()) >= 3, timeout_s=90, what="3 frames with image, camera_info and depth")
    image, info, depth = (next(m for m in probe.received(t) if stamp(m) in matched()) for t in (image_t, info_t, depth_t))
    assert (image.width, image.height, image.encoding) == (640, 480, "rgb8")  # config/cameras/default.yaml
    assert (depth.width, depth.height, depth.encoding) == (640, 480, "32FC1")
    assert (info.width, info.height, info.distortion_model) == (640, 480, "plumb_bob")
    assert image.header.frame_id == depth.header.frame_id == info.header.frame_id == "camera_optical_frame"


# ----------------------------------------------------------------------------- namespace, preset, rate
@launch_pytest.fixture
def robot1_launch():
    return LaunchDescription([sim_launch(backend="anchor", camera="realsense_d435", namespace="robot1", rate="15"),
                              launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=robot1_launch)
def test_namespace_preset_and_rate_arguments_put_every_topic_under_the_namespace_at_the_rate(probe):
    image_t, info_t, _ = camera_topics(probe, "/robot1")
    wait_for(lambda: len(probe.received(info_t)) >= 1, timeout_s=60, what="/robot1/camera/camera_info")
    info = probe.received(info_t)[0]
    assert (info.width, info.height) == (640, 480)  # config/cameras/realsense_d435.yaml
    assert info.k[0] == pytest.approx(320 / math.tan(math.radians(69.4 / 2)), rel=1e-6)

    # Messages can arrive before the node's own entry reaches this participant's graph cache.
    wait_for(lambda: ("worldfm_sim", "/robot1") in probe.node.get_node_names_and_namespaces(), timeout_s=30,
             what="worldfm_sim in the ROS graph under /robot1")
    node_topics = {name for name, _ in probe.node.get_publisher_names_and_types_by_node("worldfm_sim", "/robot1")}
    node_topics |= {name for name, _ in probe.node.get_subscriber_names_and_types_by_node("worldfm_sim", "/robot1")}
    assert {"/robot1/camera/image_raw", "/robot1/odom", "/robot1/cmd_vel"} <= node_topics
    assert [t for t in node_topics - GLOBAL_TOPICS if not t.startswith("/robot1/")] == []

    # The rate the node publishes at, from its FrameStats (small, reliable): frames per second of pose time.
    stats_t = "/robot1/camera/frame_stats"
    probe.listen(FrameStats, stats_t, qos=100)
    wait_for(lambda: len(probe.received(stats_t)) >= 2, timeout_s=30, what=stats_t)
    time.sleep(6.0)
    stats = probe.received(stats_t)[1:]  # the first frame may carry start-up cost
    rate = (stats[-1].frame_index - stats[0].frame_index) / ((stamp(stats[-1]) - stamp(stats[0])) * 1e-9)
    assert rate == pytest.approx(15.0, rel=0.10), f"frame rate {rate:.2f} Hz, launched with rate:=15"
    assert len(probe.received(image_t)) > 0


# ----------------------------------------------------------------------------- transport
@launch_pytest.fixture
def anchor_launch():
    return LaunchDescription([sim_launch(backend="anchor", rate="5"), launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=anchor_launch)
def test_a_best_effort_subscriber_in_another_process_receives_every_640x480_image_and_depth(probe):
    from worldfm_ros.ros.dds import shm_shortage

    if shm_shortage():
        pytest.skip(f"the node keeps Fast DDS's defaults here: {shm_shortage()}")
    image_t, _, depth_t = camera_topics(probe)
    stats_t = "/camera/frame_stats"
    probe.listen(FrameStats, stats_t, qos=100)
    wait_for(lambda: probe.received(image_t) and probe.received(depth_t), timeout_s=90, what="the first frame")
    first = len(probe.received(stats_t))
    wait_for(lambda: len(probe.received(stats_t)) >= first + 15, timeout_s=60, what="15 more frames")
    time.sleep(1.0)  # frames in flight
    published = {stamp(m) for m in probe.received(stats_t)[first + 1:first + 15]}
    for topic in (image_t, depth_t):
        missing = published - {stamp(m) for m in probe.received(topic)}
        assert not missing, f"{topic}: {len(missing)} of {len(published)} published frames never arrived"


# ----------------------------------------------------------------------------- record:=<dir>
@launch_pytest.fixture
def recording_launch(tmp_path):
    return LaunchDescription([sim_launch(backend="anchor", camera="small_256", record=str(tmp_path / "bag")),
                              launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=recording_launch)
def test_record_argument_leaves_a_readable_mcap_bag_with_camera_odom_and_tf(probe, tmp_path):
    image_t, _, _ = camera_topics(probe)
    wait_for(lambda: len(probe.received(image_t)) >= 20, timeout_s=60, what="20 images while recording")
    yield  # the launch shuts down here: SIGINT to the node and the recorder
    from rosbags.highlevel import AnyReader

    bag = tmp_path / "bag"
    assert list(bag.glob("*.mcap")), f"no MCAP file in {bag}"
    with AnyReader([bag]) as reader:
        counts = {c.topic: 0 for c in reader.connections}
        first_image = None
        for connection, _, raw in reader.messages():
            counts[connection.topic] += 1
            if connection.topic == "/camera/image_raw" and first_image is None:
                first_image = reader.deserialize(raw, connection.msgtype)
    for topic in ("/camera/image_raw", "/camera/camera_info", "/camera/depth/image_raw", "/odom", "/tf", "/tf_static"):
        assert counts.get(topic, 0) > 0, f"{topic} missing from the bag (have {counts})"
    assert (first_image.width, first_image.height) == (256, 256)  # config/cameras/small_256.yaml


# ----------------------------------------------------------------------------- input_mode:=tf
OPTICAL_POSE = ("{transforms: [{header: {stamp: now, frame_id: map}, child_frame_id: camera_optical_frame, "
                "transform: {translation: {x: 3.5, y: 2.5, z: 1.0}, "
                "rotation: {x: -0.5, y: 0.5, z: -0.5, w: 0.5}}}]}")


@launch_pytest.fixture
def tf_launch():
    pose_source = ExecuteProcess(cmd=["ros2", "topic", "pub", "-r", "20", "/tf", "tf2_msgs/msg/TFMessage",
                                      OPTICAL_POSE], output="screen")
    return LaunchDescription([sim_launch(backend="anchor", camera="small_256", input_mode="tf"), pose_source,
                              launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=tf_launch)
def test_tf_input_mode_follows_a_pose_published_by_another_launched_process(probe):
    from tf2_msgs.msg import TFMessage

    image_t, _, _ = camera_topics(probe)
    probe.listen(TFMessage, "/tf", qos=100)
    wait_for(lambda: len(probe.received(image_t)) >= 5, timeout_s=60, what="5 images rendered from /tf poses")
    published = {stamp(t) for msg in probe.received("/tf") for t in msg.transforms
                 if t.child_frame_id == "camera_optical_frame"}
    # Poses published before the probe's /tf subscription matched are rendered but not seen here.
    images = [stamp(m) for m in probe.received(image_t) if stamp(m) >= min(published)]
    assert images, "images rendered from poses the probe saw"
    assert set(images) <= published, "every image carries the stamp of a pose from the other process"
    assert len(set(images)) == len(images), "each followed pose is rendered once"


# ----------------------------------------------------------------------------- threads:=N, executor:=
def reported_on_diagnostics(probe, key: str, also: str = "") -> str:
    """The first value of ``key`` in the node's camera status on /diagnostics (waits up to 60 s;
    with ``also``, until that topic has a message too)."""
    from diagnostic_msgs.msg import DiagnosticArray

    probe.listen(DiagnosticArray, "/diagnostics", qos=10)
    if also:
        probe.listen(Image, also)

    def reported() -> list[str]:
        return [kv.value for msg in probe.received("/diagnostics") for status in msg.status
                if status.name == "worldfm_sim: camera" for kv in status.values if kv.key == key]

    wait_for(lambda: reported() and (not also or probe.received(also)), timeout_s=60,
             what=f"the node's diagnostics with {key}" + (f", and {also}" if also else ""))
    return reported()[0]


@launch_pytest.fixture
def threads_launch():
    return LaunchDescription([sim_launch(backend="anchor", camera="small_256", threads="2"),
                              launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=threads_launch)
def test_threads_argument_sets_the_torch_thread_count_the_node_process_reports_on_diagnostics(probe):
    # torch.get_num_threads() inside the launched node (default 1)
    assert reported_on_diagnostics(probe, "torch_threads") == "2"


@launch_pytest.fixture
def single_executor_launch():
    return LaunchDescription([sim_launch(backend="anchor", camera="small_256", executor="single"),
                              launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=single_executor_launch)
def test_executor_argument_chooses_what_spins_the_node_as_diagnostics_report(probe):
    # The default, events, reports EventsExecutor; the node still serves images with this one.
    assert reported_on_diagnostics(probe, "executor", also="camera/image_raw") == "SingleThreadedExecutor"


# ----------------------------------------------------------------------------- `ros2 launch` itself
def ros2_launch(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(["ros2", "launch", "worldfm_ros", *arguments], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def read_until(process: subprocess.Popen, needle: str, timeout_s: float) -> str:
    """The launch's output up to the first line holding ``needle`` (AssertionError with all of it otherwise)."""
    seen: list[str] = []
    found = threading.Event()

    def pump():
        for line in process.stdout:
            seen.append(line)
            if needle in line:
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    found.wait(timeout_s)
    text = "".join(seen)
    assert needle in text, f"{needle!r} not in the output of ros2 launch:\n{text}"
    return text


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_nav2_example_without_nav2_starts_the_simulator_and_names_what_is_missing(probe):
    try:
        get_package_share_directory("nav2_controller")
        pytest.skip("Nav2 is installed here; this test is about a machine without it")
    except PackageNotFoundError:
        pass
    _, info_t, _ = camera_topics(probe)
    process = ros2_launch("nav2_example.launch.py")
    try:
        text = read_until(process, "Nav2 is not installed", timeout_s=60)
        assert "nav2_controller" in text and "nav2_lifecycle_manager" in text
        wait_for(lambda: len(probe.received(info_t)) >= 1, timeout_s=90, what="the simulator's camera_info")
        for name in ("publish_points", "publish_scan"):  # the obstacle sources of config/nav2/nav2_params.yaml
            answer = subprocess.run(["ros2", "param", "get", "--no-daemon", "--timeout", "30", "/worldfm_sim", name],
                                    capture_output=True, text=True, timeout=60)
            assert answer.stdout.strip() == "Boolean value is: True", answer.stdout + answer.stderr
    finally:
        assert stop(process) == 0


def test_a_misspelt_parameter_in_a_params_file_is_named_by_the_launched_node(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("worldfm_sim:\n  ros__parameters:\n    rate_hzz: 5.0\n")
    process = ros2_launch("sim.launch.py", "backend:=anchor", "camera:=small_256", f"params_file:={extra}")
    try:
        text = read_until(process, "does not have", timeout_s=90)
        assert "ignoring parameter(s) that this node does not have: rate_hzz (did you mean rate_hz?)" in text, text
    finally:
        assert stop(process) == 0


def processes_in_group(pgid: int) -> dict[int, str]:
    """Live processes of process group ``pgid`` (pid -> command line), from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            pass  # gone meanwhile
    return found


def test_sigterm_to_ros2_launch_ends_the_node_and_the_recorder_and_leaves_a_closed_bag(probe, tmp_path):
    from rosbags.highlevel import AnyReader

    image_t, _, _ = camera_topics(probe)
    bag = tmp_path / "bag"
    process = ros2_launch("sim.launch.py", "backend:=anchor", "camera:=small_256", f"record:={bag}")
    try:
        wait_for(lambda: len(probe.received(image_t)) >= 20, timeout_s=90, what="20 images while recording")
        children = {pid: cmd for pid, cmd in processes_in_group(process.pid).items() if pid != process.pid}
        assert any("sim_node" in c for c in children.values()) and any("record" in c for c in children.values())
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)  # at once, with 1: launch 3.4 does not wait for its processes on SIGTERM
        wait_for(lambda: not processes_in_group(process.pid), timeout_s=30, what="every launched process to end")
    finally:
        if processes_in_group(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
    assert (bag / "metadata.yaml").is_file(), sorted(p.name for p in bag.iterdir())
    with AnyReader([bag]) as reader:
        counts = {c.topic: 0 for c in reader.connections}
        for connection, _, _ in reader.messages():
            counts[connection.topic] += 1
    assert counts.get("/camera/image_raw", 0) > 0, counts


def test_record_images_compressed_records_only_the_compressed_topics_the_launched_node_publishes(probe, tmp_path):
    from rosbags.highlevel import AnyReader

    image_t, _, _ = camera_topics(probe)
    bag = tmp_path / "bag"
    process = ros2_launch("sim.launch.py", "backend:=anchor", "camera:=small_256", "compressed:=jpeg",
                          "compressed_depth:=true", f"record:={bag}", "record_images:=compressed")
    try:
        wait_for(lambda: len(probe.received(image_t)) >= 20, timeout_s=90, what="20 images while recording")
    finally:
        assert stop(process) == 0
    with AnyReader([bag]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
    assert topics["/camera/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
    assert topics["/camera/depth/image_raw/compressedDepth"] == "sensor_msgs/msg/CompressedImage"
    assert "/camera/image_raw" not in topics and "/camera/depth/image_raw" not in topics


def test_an_unknown_camera_preset_fails_the_launch_naming_the_presets_that_exist():
    process = ros2_launch("sim.launch.py", "camera:=kinect_v9")
    text = read_until(process, "kinect_v9", timeout_s=60)
    assert process.wait(timeout=30) != 0
    assert "launch argument 'camera': no preset 'kinect_v9'" in text
    assert "realsense_d435" in text and "default" in text
