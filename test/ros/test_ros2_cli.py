"""The `ros2` command line against a node started by `ros2 launch`'s own launch file.

One node (the installed sim.launch.py, anchor backend, 256x256) serves the whole module; every
test runs a real `ros2 ...` command in a subprocess and reads what a user would read. Needs the
real ros2cli and launch_pytest (a ROS 2 install, or ../shared/ros2 via scripts/setup.sh).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="launch_pytest is not installed (it comes with ROS 2; scripts/setup.sh installs it "
                            "from ../shared/ros2 when present)")
if shutil.which("ros2") is None:
    pytest.skip("the ros2 command line is not installed", allow_module_level=True)

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from worldfm_ros.sim.config import LIVE_FIELDS  # noqa: E402

try:
    SHARE = Path(get_package_share_directory("worldfm_ros"))
except PackageNotFoundError:
    pytest.skip("worldfm_ros is not installed: build it with colcon (scripts/setup.sh) and source it",
                allow_module_level=True)

NODE = "/worldfm_sim"
ROOT = Path(__file__).resolve().parents[2]


@launch_pytest.fixture(scope="module")
def sim():
    include = IncludeLaunchDescription(PythonLaunchDescriptionSource(str(SHARE / "launch" / "sim.launch.py")),
                                       launch_arguments={"backend": "anchor", "camera": "small_256"}.items())
    return LaunchDescription([include, launch_pytest.actions.ReadyToTest()])


def ros2(*args: str, timeout: float = 60.0) -> str:
    """Run ``ros2 <args>``; its stdout (AssertionError with stderr if it fails)."""
    done = subprocess.run(["ros2", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"ros2 {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


TYPES = {"/camera/camera_info": "sensor_msgs/msg/CameraInfo", "/camera/image_raw": "sensor_msgs/msg/Image"}


def echo_once(topic: str, *options: str) -> str:
    # With its type given, echo waits for the publisher instead of giving up before discovery.
    return ros2("topic", "echo", "--once", "--no-daemon", "--qos-profile", "sensor_data", *options, topic,
                TYPES[topic], timeout=90)


def run_for(seconds: float, *args: str) -> str:
    """The output of a ``ros2`` verb that runs until stopped (``topic hz``), after ``seconds``."""
    process = subprocess.Popen(["ros2", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    return out


@pytest.mark.launch(fixture=sim)
def test_topic_echo_once_prints_the_camera_info_of_the_preset():
    out = echo_once("/camera/camera_info")
    assert "frame_id: camera_optical_frame" in out
    assert "height: 256" in out and "width: 256" in out
    assert "distortion_model: plumb_bob" in out


@pytest.mark.launch(fixture=sim)
def test_topic_hz_measures_the_default_rate_on_the_image_topic():
    echo_once("/camera/image_raw", "--no-arr")  # publishing before measuring
    out = run_for(12.0, "topic", "hz", "--window", "40", "/camera/image_raw")
    rates = [float(r) for r in re.findall(r"average rate: ([0-9.]+)", out)]
    assert rates, f"ros2 topic hz printed no rate:\n{out}"
    assert rates[-1] == pytest.approx(10.0, rel=0.2), out  # config/sim.yaml: rate_hz 10


LIVE_VALUES = {"rate_hz": ("8.0", "Double value is: 8.0"), "point_radius": ("2", "Integer value is: 2"),
               "antialias": ("0.5", "Double value is: 0.5"),
               "publish_points": ("false", "Boolean value is: False"),
               "publish_scan": ("true", "Boolean value is: True"), "tf_max_age_s": ("2.5", "Double value is: 2.5"),
               "publish_observed": ("true", "Boolean value is: True"),
               "tf_future_tolerance_s": ("1.0", "Double value is: 1.0")}


def test_the_table_of_live_values_covers_every_live_parameter():
    assert set(LIVE_VALUES) == LIVE_FIELDS


@pytest.mark.launch(fixture=sim)
@pytest.mark.parametrize("name", sorted(LIVE_FIELDS))
def test_param_set_changes_a_live_parameter_while_frames_keep_coming(name):
    value, shown = LIVE_VALUES[name]
    assert ros2("param", "set", "--no-daemon", "--timeout", "30", NODE, name, value).strip() == "Set parameter successful"
    assert ros2("param", "get", "--no-daemon", "--timeout", "30", NODE, name).strip() == shown
    assert "frame_id: camera_optical_frame" in echo_once("/camera/camera_info")


@pytest.mark.launch(fixture=sim)
def test_param_set_of_a_restart_only_parameter_is_refused_with_the_reason():
    done = subprocess.run(["ros2", "param", "set", "--no-daemon", "--timeout", "30", NODE, "camera.width", "320"],
                          capture_output=True, text=True, timeout=60)
    assert (done.stdout + done.stderr).strip() == ("Setting parameter failed: camera.width cannot change while "
                                                   "running (restart the node)"), done
    assert ros2("param", "get", "--no-daemon", "--timeout", "30", NODE, "camera.width").strip() == "Integer value is: 256"


@pytest.mark.launch(fixture=sim)
def test_service_call_load_scene_loads_the_bundled_room():
    path = SHARE / "scenes" / "default_room"
    out = ros2("service", "call", f"{NODE}/load_scene", "worldfm_ros/srv/LoadScene", f"{{path: '{path}'}}")
    assert "success=True" in out, out
    assert int(re.search(r"num_points=(\d+)", out).group(1)) > 0
    assert "frame_id: camera_optical_frame" in echo_once("/camera/camera_info")


@pytest.mark.launch(fixture=sim)
def test_service_call_load_scene_with_a_bad_path_fails_and_keeps_the_scene(tmp_path):
    missing = tmp_path / "no_such_scene"
    out = ros2("service", "call", f"{NODE}/load_scene", "worldfm_ros/srv/LoadScene", f"{{path: '{missing}'}}")
    assert "success=False" in out, out
    assert "no_such_scene" in out
    assert "frame_id: camera_optical_frame" in echo_once("/camera/camera_info")


@pytest.mark.parametrize("interface", ["msg/FrameStats", "srv/LoadScene", "srv/Reset", "srv/Step"])
def test_interface_show_prints_each_field_of_the_package_interfaces(interface):
    out = ros2("interface", "show", f"worldfm_ros/{interface}")
    source = (ROOT / f"{interface}.{interface.split('/')[0]}").read_text()
    fields = [line.split()[1] for line in source.splitlines()
              if line.strip() and not line.lstrip().startswith(("#", "---"))]
    shown = {line.split()[1] for line in out.splitlines()
             if line.strip() and not line.lstrip().startswith(("#", "---")) and len(line.split()) > 1}
    assert set(fields) <= shown, f"ros2 interface show {interface} lacks {set(fields) - shown}"


def test_interface_package_lists_the_four_interfaces():
    assert set(ros2("interface", "package", "worldfm_ros").split()) == {
        "worldfm_ros/msg/FrameStats", "worldfm_ros/srv/LoadScene", "worldfm_ros/srv/Reset", "worldfm_ros/srv/Step"}
