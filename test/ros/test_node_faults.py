"""Hostile inputs and faults against a real ``sim_node`` process, over the real ROS interfaces.

Each test asserts the one-line message the node gives (service reply, parameter result or
/diagnostics) and that the camera keeps publishing afterwards.
"""

from __future__ import annotations

import re
import signal
import time
import zipfile

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from rosutil import SimProcess, Spinner, wait_for  # noqa: E402
from worldfm_ros.camera import PinholeCamera  # noqa: E402
from worldfm_ros.ros.node import SERVICE_QOS  # noqa: E402
from worldfm_ros.ros.tf_io import TfPublisher  # noqa: E402
from worldfm_ros.build.procedural import make_room_scene, random_room  # noqa: E402
from worldfm_ros.scene.store import save_scene  # noqa: E402
from worldfm_ros.srv import Step  # noqa: E402

W, H = 64, 48
BASE = {"backend.name": "anchor", "camera.width": W, "camera.height": H, "rate_hz": 10.0, "sim_rate_hz": 100,
        "initial_pose": [3.0, 2.5, 0.0, 0.0]}
START_S = 90.0  # a node process imports torch and loads a scene: slow on a busy 2-core machine


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """A scenes folder holding one good room (the launch-time scene), as a user keeps them."""
    root = tmp_path_factory.mktemp("scenes")
    room = random_room(seed=3, size=(6.0, 5.0, 2.8), num_obstacles=1)
    save_scene(make_room_scene(room, PinholeCamera.from_fov(W, H, 90.0), num_views=8, num_keyframes=2), root / "room")
    return root


class Observer:
    """Images and /diagnostics of one node process, seen by a subscriber node in the test process."""

    def __init__(self, sim: SimProcess) -> None:
        self.context = sim.context()
        context = self.context
        self.node = rclpy.create_node("fault_observer", context=context)
        self.images: list[Image] = []
        self.diags: list[DiagnosticStatus] = []
        self.node.create_subscription(Image, "camera/image_raw", self.images.append, qos_profile_sensor_data)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diags.extend(m.status), 50)
        self.spinner = Spinner(context, self.node)

    def diagnostic(self, text: str, timeout_s: float = 30.0) -> DiagnosticStatus:
        """The first diagnostic status whose message contains ``text``."""
        found: list[DiagnosticStatus] = []
        wait_for(lambda: found.extend(s for s in list(self.diags) if text in s.message) or found,
                 timeout_s=timeout_s, what=f"a diagnostic saying {text!r}")
        return found[0]

    def frames_keep_arriving(self, count: int = 3, timeout_s: float = 30.0) -> None:
        n = len(self.images)
        wait_for(lambda: len(self.images) >= n + count, timeout_s=timeout_s, what=f"{count} more images")

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def start(params: dict, log, wait_for_image: bool = True) -> tuple[SimProcess, Observer]:
    """A node process with these parameters (over BASE) and its observer; by default once it publishes."""
    sim = SimProcess({**BASE, **params}, log)
    observer = Observer(sim)
    if wait_for_image:
        try:
            wait_for(lambda: observer.images or sim.proc.poll() is not None, timeout_s=START_S, what="the first image")
            assert sim.proc.poll() is None, sim.output()
        except AssertionError:
            stop(sim, observer)
            raise
    return sim, observer


def stop(sim: SimProcess, observer: Observer) -> tuple[int, str]:
    observer.close()
    return sim.stop(signal.SIGINT)


def stop_clean(sim: SimProcess, observer: Observer) -> None:
    rc, out = stop(sim, observer)
    assert rc == 0 and "Traceback" not in out, out


@pytest.fixture(scope="module")
def camera(scenes, tmp_path_factory):
    """A cmd_vel-mode node on the good room, with its observer."""
    sim, observer = start({"scene": str(scenes / "room")}, tmp_path_factory.mktemp("log") / "camera.log")
    yield sim, observer
    stop_clean(sim, observer)


def load_scene(sim: SimProcess, path) -> str:
    return sim.ros2("service", "call", "/worldfm_sim/load_scene", "worldfm_ros/srv/LoadScene", f"{{path: '{path}'}}")


# ----------------------------------------------------------------- bounds


def test_rate_above_the_bound_is_refused_by_ros2_param_set(camera):
    sim, observer = camera
    out = sim.ros2("param", "set", "--no-daemon", "--timeout", "30", "/worldfm_sim", "rate_hz", "1000000.0")
    assert "rate_hz: expected at most 1000 Hz" in out, out
    observer.frames_keep_arriving()


def test_a_rate_the_machine_cannot_hold_is_said_once_at_start_up_with_the_frame_cost(scenes, tmp_path):
    sim, observer = start({"scene": str(scenes / "room"), "rate_hz": 1000.0, "camera.width": 640,
                           "camera.height": 480}, tmp_path / "node.log")
    wait_for(lambda: len(observer.images) >= 12, timeout_s=60, what="12 images")
    rc, out = stop(sim, observer)
    said = re.findall(r"rate_hz 1000 cannot be held: a frame costs \d+ ms \(render \d+ ms, antialias \d+ ms, "
                      r"select \d+ ms, canvas \d+ ms, backend \d+ ms, publish \d+ ms\) against a period of 1 ms", out)
    assert len(said) == 1, out
    assert rc == 0


def test_camera_larger_than_8k_stops_start_up_with_one_line(tmp_path):
    sim = SimProcess({**BASE, "camera.width": 100000}, tmp_path / "node.log")  # no observer: it must not start
    rc = sim.proc.wait(timeout=START_S)
    _, out = sim.stop()
    assert rc == 2, out
    assert "cannot start" in out and "camera: expected at most 8192 px a side" in out, out
    assert "Traceback" not in out


def test_npz_whose_arrays_declare_terabytes_is_refused_before_reading(camera, scenes):
    sim, observer = camera
    bomb = scenes / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        # a .npy header for a (10^6, 10^6) float32 array followed by 16 bytes of data
        with zf.open("points.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                     "shape": (10**6, 10**6)})
            f.write(b"\0" * 16)
    out = load_scene(sim, bomb)
    assert "success=False" in out and "bomb.npz: an archive entry: the header declares more data than the file holds" \
        in out, out
    observer.frames_keep_arriving()
    assert sim.proc.poll() is None


def test_npz_that_inflates_past_the_limit_is_refused_before_inflating(camera, scenes):
    sim, observer = camera
    bomb = scenes / "inflates.npz"
    chunk = bytes(64 * 1024**2)
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("points.npy", "w", force_zip64=True) as f:
            n = 2 * 1024**3 // 4 + 1024
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
            for _ in range(n * 4 // len(chunk) + 1):
                f.write(chunk)
    assert bomb.stat().st_size < 20 * 1024**2
    out = load_scene(sim, bomb)
    assert "inflates.npz: the archive inflates to more than the limit of 2147483648 bytes" in out, out
    observer.frames_keep_arriving()


# ----------------------------------------------------------------- parameter names and types


def param(sim: SimProcess, verb: str, *args: str) -> str:
    return sim.ros2("param", verb, "--no-daemon", "--timeout", "30", "/worldfm_sim", *args).strip()


def test_a_misspelt_start_up_parameter_is_named_once_with_the_nearest_real_one(scenes, tmp_path):
    sim, observer = start({"scene": str(scenes / "room"), "rate_hzz": 5.0, "camera.widht": 32}, tmp_path / "node.log")
    try:
        warned = [line for line in sim.output().splitlines() if "does not have" in line]
        assert len(warned) == 1, sim.output()
        assert "[WARN]" in warned[0]
        assert "camera.widht (did you mean camera.width?), rate_hzz (did you mean rate_hz?)" in warned[0]
    finally:
        stop_clean(sim, observer)


def test_an_integer_for_a_double_parameter_is_taken_as_that_double_by_ros2_param_set(camera):
    sim, observer = camera
    assert param(sim, "set", "rate_hz", "8") == "Set parameter successful"
    assert param(sim, "get", "rate_hz") == "Double value is: 8.0"
    assert param(sim, "set", "rate_hz", "10") == "Set parameter successful"
    observer.frames_keep_arriving()


def test_an_integer_for_a_double_parameter_at_start_up_is_that_double(camera):
    sim, _ = camera
    assert param(sim, "get", "sim_rate_hz") == "Double value is: 100.0"  # started with -p sim_rate_hz:=100


def test_another_type_change_by_ros2_param_set_is_refused_naming_the_parameter(camera):
    sim, observer = camera
    out = param(sim, "set", "rate_hz", "fast")
    assert out == "Setting parameter failed: parameter rate_hz: expected a value of type double, got type string", out
    assert param(sim, "get", "rate_hz") == "Double value is: 10.0"
    observer.frames_keep_arriving()


# ----------------------------------------------------------------- files a peer can name


def test_load_scene_outside_the_scene_directories_is_refused(camera):
    sim, observer = camera
    out = load_scene(sim, "/etc")
    assert "success=False" in out and "/etc: outside the allowed scene directories" in out, out
    observer.frames_keep_arriving()


def test_load_scene_through_dot_dot_is_resolved_before_the_check(camera, scenes):
    sim, observer = camera
    out = load_scene(sim, f"{scenes}/room/../../../../../etc")
    assert "outside the allowed scene directories" in out, out
    observer.frames_keep_arriving()


def _scene_copy(scenes, name: str, edit) -> str:
    import shutil

    target = scenes / name
    shutil.copytree(scenes / "room", target)
    doc = yaml.safe_load((target / "scene.yaml").read_text())
    edit(doc)
    (target / "scene.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(target)


def test_scene_file_naming_a_path_outside_its_folder_is_refused(camera, scenes):
    sim, observer = camera
    path = _scene_copy(scenes, "escape", lambda d: d["points"].update(file="../../../../../etc/passwd"))
    out = load_scene(sim, path)
    assert "points.file: expected a path inside the scene folder" in out, out
    assert "passwd" not in out
    observer.frames_keep_arriving()


def test_error_messages_do_not_repeat_what_a_file_holds(camera, scenes):
    sim, observer = camera
    path = _scene_copy(scenes, "secret", lambda d: d.update(format="TOP-SECRET-TOKEN-1234"))
    out = load_scene(sim, path)
    assert "field 'format' is not 'worldfm_scene'" in out, out
    assert "TOP-SECRET" not in out
    status = observer.diagnostic("field 'format' is not")
    assert "TOP-SECRET" not in status.message
    observer.frames_keep_arriving()


def test_random_bytes_npz_gets_no_advice_to_load_unsafely(camera, scenes):
    sim, observer = camera
    junk = scenes / "junk.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    out = load_scene(sim, junk)
    assert "junk.npz: not a readable .npz scene" in out, out
    assert "allow_pickle" not in out and "trust" not in out
    observer.frames_keep_arriving()


def test_a_good_scene_in_the_scene_directories_still_loads(camera, scenes):
    sim, observer = camera
    out = load_scene(sim, scenes / "room")
    assert "success=True" in out, out
    observer.frames_keep_arriving()


# ----------------------------------------------------------------- lockstep services


@pytest.fixture(scope="module")
def lockstep(scenes, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "lockstep.log"
    sim, observer = start({"scene": str(scenes / "room"), "lockstep": True}, log, wait_for_image=False)
    client = observer.node.create_client(Step, "/worldfm_sim/step", qos_profile=SERVICE_QOS)
    wait_for(client.service_is_ready, timeout_s=START_S, what="the step service")
    yield sim, client
    stop_clean(sim, observer)


def test_step_with_a_huge_dt_is_refused_at_once_and_the_next_step_is_answered(lockstep):
    sim, _ = lockstep
    t0 = time.monotonic()
    out = sim.ros2("service", "call", "/worldfm_sim/step", "worldfm_ros/srv/Step", "{dt: 1000000.0}")
    assert "step dt: expected at most 100 s (10000 kinematic sub-steps at sim_rate_hz 100)" in out, out
    assert time.monotonic() - t0 < 30
    out = sim.ros2("service", "call", "/worldfm_sim/step", "worldfm_ros/srv/Step", "{dt: 0.1}")
    assert "success=True" in out and f"width={W}" in out, out


def test_a_hundred_concurrent_steps_are_all_answered(lockstep):
    _, client = lockstep
    futures = [client.call_async(Step.Request(dt=0.01)) for _ in range(100)]
    wait_for(lambda: all(f.done() for f in futures), timeout_s=120, what="100 step replies")
    results = [f.result() for f in futures]
    assert all(r.success for r in results)
    stamps = sorted(r.image.header.stamp.sec * 10**9 + r.image.header.stamp.nanosec for r in results)
    assert len(set(stamps)) == 100, "every step advanced time once"


# ----------------------------------------------------------------- silent failures


def test_use_sim_time_without_clock_is_an_error_diagnostic_until_clock_comes(scenes, tmp_path):
    sim, observer = start({"scene": str(scenes / "room"), "use_sim_time": True}, tmp_path / "node.log",
                          wait_for_image=False)
    try:
        status = observer.diagnostic("nothing publishes /clock", timeout_s=START_S)
        assert status.level == DiagnosticStatus.ERROR
        assert not observer.images
        clock = observer.node.create_publisher(Clock, "/clock", 10)
        t = [1_000_000_000]

        def tick() -> None:
            t[0] += 10_000_000
            clock.publish(Clock(clock=rclpy.time.Time(nanoseconds=t[0]).to_msg()))

        observer.node.create_timer(0.01, tick)
        observer.frames_keep_arriving()
    finally:
        stop_clean(sim, observer)


def pose_source(observer: Observer):
    """A node in the observer's context sending map -> camera_optical_frame: (node, send, a pose
    inside the room); ``send(T, ahead_s)`` stamps T ``ahead_s`` after now. Waits for the first image."""
    source = rclpy.create_node("pose_source", context=observer.context)
    observer.spinner.add(source)
    tf = TfPublisher(source)
    good = np.eye(4)
    good[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)  # optical z along map +x
    good[:3, 3] = (3.0, 2.5, 1.2)

    def send(T: np.ndarray, ahead_s: float = 0.0) -> None:
        tf.send([(T, source.get_clock().now().nanoseconds + int(ahead_s * 1e9), "map", "camera_optical_frame")])

    wait_for(lambda: send(good) or observer.images, timeout_s=START_S, what="the first image in tf mode")
    return source, send, good


@pytest.fixture(scope="module")
def tf_camera(scenes, tmp_path_factory):
    """A tf-mode node and a pose source sending map -> camera_optical_frame."""
    log = tmp_path_factory.mktemp("log") / "tf.log"
    sim, observer = start({"scene": str(scenes / "room"), "input_mode": "tf"}, log, wait_for_image=False)
    source, send, good = pose_source(observer)
    yield observer, send, good
    observer.spinner.executor.remove_node(source)
    source.destroy_node()
    stop_clean(sim, observer)


def _send_until(observer: Observer, send, text: str, *args) -> DiagnosticStatus:
    found: list[DiagnosticStatus] = []

    def check() -> bool:
        send(*args)
        found.extend(s for s in list(observer.diags) if text in s.message)
        return bool(found)

    wait_for(check, timeout_s=30, what=f"a diagnostic saying {text!r}")
    return found[0]


def _send_good_and_see_frames(observer: Observer, send, good: np.ndarray) -> None:
    n = len(observer.images)
    wait_for(lambda: send(good) or len(observer.images) >= n + 3, timeout_s=30, what="images from a good pose")


def test_tf_with_nan_is_reported_as_rejected_with_the_reason(tf_camera):
    observer, send, good = tf_camera
    bad = good.copy()
    bad[0, 3] = np.nan
    status = _send_until(observer, send, "/tf rejected: map -> camera_optical_frame", bad)
    assert "NaN" in status.message and status.level == DiagnosticStatus.WARN
    _send_good_and_see_frames(observer, send, good)


def test_tf_with_a_non_unit_quaternion_is_reported_as_rejected(tf_camera):
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    from worldfm_ros.ros.tf_io import TF_QOS

    observer, send, good = tf_camera
    pub = observer.node.create_publisher(TFMessage, "/tf", TF_QOS)

    def send_scaled() -> None:
        t = TransformStamped()
        t.header.frame_id, t.child_frame_id = "map", "camera_optical_frame"
        t.header.stamp = observer.node.get_clock().now().to_msg()
        t.transform.translation.x, t.transform.rotation.w = 3.0, 2.0  # |q| = 2
        pub.publish(TFMessage(transforms=[t]))

    status = _send_until(observer, send_scaled, "quaternion is not normalised")
    assert "/tf rejected" in status.message
    _send_good_and_see_frames(observer, send, good)


def test_tf_stamped_far_in_the_future_is_rejected_and_reported(tf_camera):
    observer, send, good = tf_camera
    status = _send_until(observer, send, "s ahead of the node's clock", good, 1e6)
    ahead = float(re.search(r"stamped ([0-9.]+) s ahead", status.message).group(1))
    assert "/tf rejected" in status.message and ahead == pytest.approx(1e6, abs=60)
    _send_good_and_see_frames(observer, send, good)
    now_ns = observer.node.get_clock().now().nanoseconds
    stamp = observer.images[-1].header.stamp
    assert stamp.sec * 10**9 + stamp.nanosec < now_ns + 10**9, "no image carries the future stamp"


@pytest.mark.parametrize("distance", [100.0, 1e300])
def test_pose_outside_the_scene_gives_a_warning_not_ok(tf_camera, distance):
    observer, send, good = tf_camera
    far = good.copy()
    far[0, 3] = distance
    status = _send_until(observer, send, "the camera sees no scene point", far)
    assert status.level != DiagnosticStatus.OK and "outside the scene's extent" in status.message
    _send_good_and_see_frames(observer, send, good)


def test_a_pose_gone_stale_on_tf_is_logged_once_per_5_s_while_diagnostics_say_it_every_second(scenes, tmp_path):
    sim, observer = start({"scene": str(scenes / "room"), "input_mode": "tf", "rate_hz": 20.0}, tmp_path / "node.log",
                          wait_for_image=False)
    try:
        pose_source(observer)  # one pose, then none: each frame tick finds it older (its age is in the message)
        observer.diagnostic("waiting for pose on /tf", timeout_s=30)
        time.sleep(7.0)  # about 140 frame ticks
        said = [s for s in list(observer.diags) if "waiting for pose on /tf" in s.message]
        logged = [line for line in sim.output().splitlines() if "waiting for pose on /tf" in line]
        assert len(said) >= 6
        assert logged and "[WARN]" in logged[0]
        # once per 5 s, however long the start took: the rclpy log stamps lie >= 5 s apart
        stamps = [float(line.split("] [")[1]) for line in logged]
        assert all(b - a > 4.9 for a, b in zip(stamps, stamps[1:])), "\n".join(logged)
    finally:
        stop_clean(sim, observer)


def test_cuda_device_without_cuda_renders_on_the_cpu_with_a_warning(scenes, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the fallback is not exercised")
    sim, observer = start({"scene": str(scenes / "room"), "backend.device": "cuda"}, tmp_path / "node.log")
    try:
        status = observer.diagnostic("torch sees no CUDA device; rendering on the CPU")
        assert status.level == DiagnosticStatus.WARN
        observer.frames_keep_arriving()
    finally:
        stop_clean(sim, observer)


# ----------------------------------------------------------------- shutdown


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_the_node_with_exit_code_0_and_no_traceback(scenes, tmp_path, sig):
    for run in range(3):
        # a high rate keeps the frame worker busy when the signal comes
        sim, observer = start({"scene": str(scenes / "room"), "rate_hz": 100.0}, tmp_path / f"node{run}.log")
        observer.frames_keep_arriving(5)
        observer.close()
        rc, out = sim.stop(sig)
        assert rc == 0, out
        for bad in ("Traceback", "RCLError", "context is invalid", "frame failed"):
            assert bad not in out, out
