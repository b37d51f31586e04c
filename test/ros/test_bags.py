"""Bags as users' tools see them: compression, /clock, metadata, bag-info, a 640x480 recording
that keeps every message, and a SIGKILLed recorder's bag repaired by bag-reindex."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from mcap.reader import make_reader  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.rosbag2.errors import ReaderError  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from rosutil import Spinner, wait_for  # noqa: E402
from worldfm_ros.bags import typestore  # noqa: E402
from worldfm_ros.ros.recorder import BagRecorder, simulator_topics  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def worldfm(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldfm_ros.cli", *args], cwd=ROOT, env=ENV, text=True,
                          capture_output=True, timeout=300, **kwargs)


def start_recorder(bag: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "worldfm_ros.cli", "record", "-o", str(bag)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def chunk_compressions(bag: Path) -> set[str]:
    (mcap_file,) = bag.glob("*.mcap")
    with open(mcap_file, "rb") as f:
        return {c.compression for c in make_reader(f).get_summary().chunk_indexes}


def read(bag: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    with AnyReader([bag], default_typestore=typestore()) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """render-trajectory output, compressed and plain, of one 20-pose trajectory."""
    base = tmp_path_factory.mktemp("render")
    poses = base / "poses.txt"
    poses.write_text("".join(f"{i * 0.1:.1f} {3.0 + 0.05 * i} 2.5 1.0 0 0 0 1\n" for i in range(20)))
    for name, extra in (("zstd", []), ("plain", ["--no-compress"])):
        result = worldfm("render-trajectory", str(poses), "-o", str(base / name), "--backend", "anchor",
                         "--size", "160", "120", "--kind", "base", "--no-png", "--no-video", *extra)
        assert result.returncode == 0, result.stderr
    return base


def test_bags_have_zstd_chunks_by_default_and_plain_ones_on_request(rendered):
    assert chunk_compressions(rendered / "zstd" / "bag") == {"zstd"}
    assert chunk_compressions(rendered / "plain" / "bag") == {""}
    size = {n: (rendered / n / "bag" / "bag.mcap").stat().st_size for n in ("zstd", "plain")}
    assert size["zstd"] < size["plain"] / 2


def test_metadata_yaml_holds_the_fields_ros2_bag_info_reads(rendered):
    meta = yaml.safe_load((rendered / "zstd" / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    assert meta["relative_file_paths"] == ["bag.mcap"] and meta["message_count"] == 5 * 20 + 1
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    assert counts == {"/camera/image_raw": 20, "/camera/camera_info": 20, "/camera/depth/image_raw": 20,
                      "/odom": 20, "/tf": 20, "/tf_static": 1}
    assert meta["duration"]["nanoseconds"] == 1_900_000_000
    with Reader(rendered / "zstd" / "bag") as reader:
        assert reader.message_count == meta["message_count"] and reader.duration == 1_900_000_001


def test_bag_info_prints_topics_counts_rates_and_duration(rendered):
    result = worldfm("bag-info", str(rendered / "zstd" / "bag"))
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith("/")}
    assert lines["/camera/image_raw"][1:] == ["sensor_msgs/msg/Image", "20", "10.00"]
    assert "duration:    1.900 s" in result.stdout and "chunk compression: zstd" in result.stdout


def test_clock_is_recorded_when_published_and_absent_when_not(ros_context, tmp_path):
    rec = rclpy.create_node("clock_rec", context=ros_context)
    pub_node = rclpy.create_node("clock_pub", context=ros_context)
    recorder = BagRecorder(rec, tmp_path / "with", simulator_topics())
    spinner = Spinner(ros_context, rec, pub_node)
    pub = pub_node.create_publisher(Clock, "/clock", 10)
    wait_for(lambda: pub.get_subscription_count() > 0, what="the recorder's /clock subscription")
    for i in range(5):
        pub.publish(Clock(clock=rclpy.time.Time(seconds=i + 1).to_msg()))
    wait_for(lambda: recorder.counts.get("/clock", 0) == 5, what="5 recorded /clock messages")
    pub_node.destroy_publisher(pub)
    spinner.stop()
    recorder.close()
    assert [m.clock.sec for m in read(tmp_path / "with")["/clock"]] == [1, 2, 3, 4, 5]

    quiet = rclpy.create_node("quiet_rec", context=ros_context)
    recorder = BagRecorder(quiet, tmp_path / "without", simulator_topics())
    spinner = Spinner(ros_context, quiet)
    time.sleep(1.0)
    spinner.stop()
    recorder.close()
    with Reader(tmp_path / "without") as reader:
        assert "/clock" not in {c.topic for c in reader.connections}


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


# This test lost a camera_info about one run in two while the in-process node used Fast DDS's
# 512 KiB shared-memory segment (the node's main() and conftest now apply the 16 MiB profile).
def test_a_640x480_recording_keeps_every_message_the_node_published(ros_context, tmp_path):
    from worldfm_ros.ros.node import SimNode

    bag = tmp_path / "bag"
    proc = start_recorder(bag)
    params = {"backend.name": "anchor", "camera.width": 640, "camera.height": 480, "rate_hz": 10.0}
    sim = SimNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    spinner = Spinner(ros_context, sim)
    out = sim.outputs[0]
    publishers = (out.image, out.depth, out.info, out.stats)
    wait_for(lambda: all(p.get_subscription_count() > 0 for p in publishers) and sim.frames_published >= 3,
             timeout_s=60, what="the recorder subscribed to every camera topic and a few frames")
    start = sim.frames_published
    wait_for(lambda: sim.frames_published >= start + 30, timeout_s=120, what="30 more frames at 640x480")
    spinner.stop()  # no new frames; the one in the worker may still go out
    time.sleep(2.0)  # the last frames reach the recorder
    final = sim.frames_published
    sim.destroy_node()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "none dropped" in out
    msgs = read(bag)
    indices = [m.frame_index for m in msgs["/camera/frame_stats"]]
    first, last = indices[0], indices[-1]
    published = last - first + 1  # the node numbers its frames: every one in the window was published
    assert last == final - 1 and indices == list(range(first, last + 1))
    window = [stamp_of(m) for m in msgs["/camera/frame_stats"]]
    assert len(window) == published
    for topic in ("/camera/image_raw", "/camera/depth/image_raw", "/camera/camera_info"):
        # Each topic's subscription starts on its own discovery: earlier frames may be there too.
        kept = [stamp_of(m) for m in msgs[topic] if stamp_of(m) >= window[0]]
        assert kept == window, topic
    image = msgs["/camera/image_raw"][-1]
    assert (image.width, image.height) == (640, 480)
    # (before the window, each topic's subscription may have matched at its own time)
    stamps = [stamp_of(m) for m in msgs["/camera/image_raw"] if stamp_of(m) >= window[0]]
    assert stamps == [stamp_of(m) for m in msgs["/camera/depth/image_raw"] if stamp_of(m) >= window[0]]


def test_a_sigkilled_recorders_bag_is_repaired_by_bag_reindex(ros_context, tmp_path):
    bag = tmp_path / "bag"
    proc = start_recorder(bag)
    node = rclpy.create_node("odom_source_kill", context=ros_context)
    pub = node.create_publisher(Odometry, "odom", 100)
    wait_for(lambda: pub.get_subscription_count() > 0, timeout_s=30, what="the recorder's subscription")
    for i in range(50):
        msg = Odometry()
        msg.header.stamp.sec = 1000 + i
        pub.publish(msg)
        time.sleep(0.005)
    time.sleep(2.5)  # past the recorder's 1 s flush period
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    node.destroy_node()
    with pytest.raises((ReaderError, FileNotFoundError), match="metadata"):
        Reader(bag)
    result = worldfm("bag-reindex", str(bag))
    assert result.returncode == 0, result.stderr
    assert "rewritten with" in result.stdout
    assert [m.header.stamp.sec for m in read(bag)["/odom"]] == [1000 + i for i in range(50)]
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    assert counts["/odom"] == 50 and np.all(np.array(list(counts.values())) > 0)
