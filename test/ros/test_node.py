"""End-to-end behaviour of the simulator node over real rclpy + Fast DDS."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

import cv2  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from rosutil import Spinner, wait_for  # noqa: E402
from worldfm_ros.camera import PinholeCamera  # noqa: E402
from worldfm_ros.ros import conversions as conv  # noqa: E402
from worldfm_ros.ros.node import SimNode  # noqa: E402
from worldfm_ros.ros.tf_io import TF_QOS, TF_STATIC_QOS, TfPublisher  # noqa: E402
from worldfm_ros.build.procedural import make_room_scene, random_room  # noqa: E402
from worldfm_ros.scene.store import save_scene  # noqa: E402
from worldfm_ros.ros.tf_tree import TransformTree  # noqa: E402
from worldfm_ros.srv import LoadScene  # noqa: E402

W, H = 160, 120
ROOM = random_room(seed=5, size=(6.0, 5.0, 2.8), num_obstacles=2)
START = [3.0, 2.5, 0.0, 0.0]


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "room"
    anchor = make_room_scene(ROOM, PinholeCamera.from_fov(W, H, 90.0), num_views=16, num_keyframes=4, stride=1)
    save_scene(anchor, path)
    return path


class Probe:
    """A node recording what the simulator publishes."""

    def __init__(self, context) -> None:
        self.node = rclpy.create_node("probe", context=context)
        self.images: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.depths: list[Image] = []
        self.odoms: list[Odometry] = []
        self.diags: list[DiagnosticArray] = []
        self.tf = TransformTree()
        self.tf_static: dict[str, str] = {}
        n = self.node
        n.create_subscription(Image, "camera/image_raw", self.images.append, qos_profile_sensor_data)
        n.create_subscription(CameraInfo, "camera/camera_info", self.infos.append, qos_profile_sensor_data)
        n.create_subscription(Image, "camera/depth/image_raw", self.depths.append, qos_profile_sensor_data)
        self.depth_infos: list[CameraInfo] = []
        n.create_subscription(CameraInfo, "camera/depth/camera_info", self.depth_infos.append, qos_profile_sensor_data)
        n.create_subscription(Odometry, "odom", self.odoms.append, 50)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 10)
        n.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), TF_QOS)
        n.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True), TF_STATIC_QOS)
        self._cmd = None

    @property
    def cmd(self):
        """The Twist publisher on cmd_vel, created on first use (a test may publish TwistStamped instead)."""
        if self._cmd is None:
            self._cmd = self.node.create_publisher(Twist, "cmd_vel", 10)
        return self._cmd

    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        for t in msg.transforms:
            self.tf.set_transform(t.header.frame_id, t.child_frame_id, conv.transform_to_matrix(t.transform),
                                  conv.time_ns(t.header.stamp), static=static)
            if static:
                self.tf_static[t.child_frame_id] = t.header.frame_id

    def diag_messages(self) -> list[str]:
        return [s.message for d in list(self.diags) for s in d.status]

    def drive(self, vx: float, wz: float, seconds: float, rate_hz: float = 50.0) -> None:
        wait_for(lambda: self.cmd.get_subscription_count() > 0, what="cmd_vel subscriber")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            cmd = Twist()
            cmd.linear.x, cmd.angular.z = vx, wz
            self.cmd.publish(cmd)
            time.sleep(1.0 / rate_hz)
        self.cmd.publish(Twist())


@pytest.fixture
def sim_factory(ros_context, scene_dir):
    created = []

    def make(**params):
        values = {"scene": str(scene_dir), "camera.width": W, "camera.height": H, "camera.hfov_deg": 90.0,
                  "initial_pose": START, "rate_hz": 10.0, "sim_rate_hz": 100.0,
                  "kinematics.max_linear_accel": 100.0, "kinematics.max_angular_accel": 100.0}
        values.update(params)
        sim = SimNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        probe = Probe(ros_context)
        spinner = Spinner(ros_context, sim, probe.node)
        created.append((sim, probe, spinner))
        return sim, probe, spinner

    yield make
    for sim, probe, spinner in created:
        spinner.stop()
        sim.destroy_node()
        probe.node.destroy_node()


def latest_rgb(probe: Probe) -> np.ndarray:
    return conv.image_to_numpy(probe.images[-1])


def test_forward_half_metre_per_second_for_two_seconds_moves_one_metre(sim_factory):
    # One command held for exactly 2 s of node time by the command timeout: the distance
    # then depends on the integration, not on when DDS delivered a stop command.
    sim, probe, _ = sim_factory(**{"kinematics.cmd_timeout_s": 2.0})
    wait_for(lambda: probe.odoms and probe.cmd.get_subscription_count() > 0, what="odometry and cmd_vel match")
    cmd = Twist()
    cmd.linear.x = 0.5
    probe.cmd.publish(cmd)
    wait_for(lambda: probe.odoms[-1].twist.twist.linear.x > 0, what="motion")
    wait_for(lambda: probe.odoms[-1].twist.twist.linear.x == 0.0, timeout_s=10, what="the stop after the timeout")
    odom = probe.odoms[-1]
    assert odom.pose.pose.position.x == pytest.approx(1.0, abs=0.02)
    assert abs(odom.pose.pose.position.y) < 0.01  # odom starts at the initial pose
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")


def test_turning_left_shifts_the_image_content_right(sim_factory):
    sim, probe, _ = sim_factory()
    wait_for(lambda: len(probe.images) >= 2, what="images")
    before = latest_rgb(probe)
    probe.drive(0.0, 0.4, 0.5)
    # Compare against the pose once the robot has stopped: on a loaded machine the stop
    # command can arrive late, and an image taken mid-turn sees less yaw than the last odom.
    wait_for(lambda: probe.odoms[-1].twist.twist.angular.z == 0.0, timeout_s=10, what="the stop after the turn")
    stopped = probe.odoms[-1]
    stopped_at = conv.time_ns(stopped.header.stamp)
    wait_for(lambda: conv.time_ns(probe.images[-1].header.stamp) >= stopped_at, what="an image after the turn")
    after = latest_rgb(probe)
    (dx, dy), _ = cv2.phaseCorrelate(cv2.cvtColor(before, cv2.COLOR_RGB2GRAY).astype(np.float64),
                                     cv2.cvtColor(after, cv2.COLOR_RGB2GRAY).astype(np.float64))
    yaw = 2 * math.atan2(stopped.pose.pose.orientation.z, stopped.pose.pose.orientation.w)
    expected = math.tan(yaw) * 80.0  # f = 80 px at 160 px and 90 degrees
    assert yaw > 0.1
    assert dx == pytest.approx(expected, rel=0.35), f"content moved {dx:.1f} px, expected about +{expected:.1f}"
    assert abs(dy) < 3


def test_image_camera_info_and_depth_share_the_pose_stamp(sim_factory):
    sim, probe, _ = sim_factory()
    probe.drive(0.3, 0.2, 1.0)
    wait_for(lambda: len(probe.images) >= 3 and len(probe.infos) >= 3 and len(probe.depths) >= 3, what="frames")
    time.sleep(0.3)
    odom_stamps = {conv.time_ns(o.header.stamp) for o in probe.odoms}
    infos = {conv.time_ns(i.header.stamp) for i in probe.infos}
    depths = {conv.time_ns(d.header.stamp) for d in probe.depths}
    for img in probe.images[-3:]:
        stamp = conv.time_ns(img.header.stamp)
        assert stamp in infos and stamp in depths
        assert stamp in odom_stamps, "image stamp is not the time of any published pose"
        assert img.header.frame_id == "camera_optical_frame" and img.encoding == "rgb8"


def test_camera_info_and_depth_match_the_scene_geometry(sim_factory):
    sim, probe, _ = sim_factory()
    wait_for(lambda: probe.depths and probe.infos and probe.odoms and probe.depth_infos, what="frames")
    time.sleep(0.3)
    depth_msg, info = probe.depths[-1], probe.infos[-1]
    K = np.array(info.k).reshape(3, 3)
    assert np.allclose(np.array(info.p).reshape(3, 4)[:, :3], K) and info.distortion_model == "plumb_bob"
    assert (info.width, info.height) == (W, H)
    stamp = conv.time_ns(depth_msg.header.stamp)
    assert stamp in {conv.time_ns(i.header.stamp) for i in probe.depth_infos}, "depth has its own camera_info"
    map_T_opt, _ = probe.tf.lookup("map", "camera_optical_frame")
    odom_at = {conv.time_ns(o.header.stamp): o for o in probe.odoms}
    assert stamp in odom_at
    # The analytic room rendered with the published K at the published pose gives the published depth.
    exact_rgb, exact = ROOM.raycast(PinholeCamera.from_K(K, W, H), map_T_opt)
    depth = conv.image_to_numpy(depth_msg)
    valid = np.isfinite(depth)
    assert valid.mean() > 0.5
    assert np.median(np.abs(depth[valid] - exact[valid])) < 0.03


def test_tf_tree_is_complete_from_map_to_the_optical_frame(sim_factory):
    sim, probe, _ = sim_factory()
    wait_for(lambda: probe.odoms and len(probe.tf_static) >= 3, what="TF")
    time.sleep(0.2)
    assert probe.tf_static == {"odom": "map", "camera_link": "base_link", "camera_optical_frame": "camera_link"}
    T, _ = probe.tf.lookup("map", "camera_optical_frame")
    assert T[:3, 3] == pytest.approx([START[0] + 0.1, START[1], 1.0], abs=1e-6)
    assert T[:3, 2] == pytest.approx([1, 0, 0], abs=1e-6)  # looking along map +x at yaw 0


def test_tf_mode_follows_a_published_camera_pose(sim_factory):
    sim, probe, spinner = sim_factory(input_mode="tf")
    source = rclpy.create_node("pose_source", context=sim.context)
    spinner.add(source)
    tf_pub = TfPublisher(source)
    c2w = np.eye(4)
    c2w[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)  # optical z along map +x
    c2w[:3, 3] = (3.0, 2.5, 1.2)
    sent: list[int] = []

    def publish_and_check() -> bool:
        sent.append(source.get_clock().now().nanoseconds)
        tf_pub.send([(c2w, sent[-1], "map", "camera_optical_frame")])
        return bool(probe.images) and bool(probe.depths)

    wait_for(publish_and_check, what="an image in tf mode")
    assert conv.time_ns(probe.images[-1].header.stamp) in sent
    _, exact = ROOM.raycast(PinholeCamera.from_fov(W, H, 90.0), c2w)
    depth = conv.image_to_numpy(probe.depths[-1])
    valid = np.isfinite(depth)
    assert valid.mean() > 0.5
    assert np.median(np.abs(depth[valid] - exact[valid])) < 0.03
    source.destroy_node()


def test_nan_twist_is_reported_and_the_camera_keeps_running(sim_factory):
    sim, probe, _ = sim_factory()
    wait_for(lambda: probe.images, what="first image")
    bad = Twist()
    bad.linear.x = float("nan")
    probe.cmd.publish(bad)
    wait_for(lambda: any("cmd_vel rejected" in m for m in probe.diag_messages()), what="NaN diagnostic")
    n = len(probe.images)
    wait_for(lambda: len(probe.images) > n + 2, what="more images after the bad command")
    assert np.isfinite(probe.odoms[-1].pose.pose.position.x)


def test_unknown_frame_in_tf_mode_is_reported(sim_factory):
    sim, probe, spinner = sim_factory(input_mode="tf", **{"frames.optical": "no_such_frame"})
    source = rclpy.create_node("pose_source", context=sim.context)
    spinner.add(source)
    tf_pub = TfPublisher(source)

    def publish_and_check() -> bool:
        tf_pub.send([(np.eye(4), source.get_clock().now().nanoseconds, "map", "camera_optical_frame")])
        return any("'no_such_frame' does not exist" in m for m in probe.diag_messages())

    wait_for(publish_and_check, what="unknown-frame diagnostic")
    assert not probe.images
    source.destroy_node()


def test_missing_scene_is_an_error_diagnostic_and_load_scene_recovers(sim_factory, scene_dir):
    # ~/load_scene reads only inside scene_dirs; by default the launch-time scene's folder (here /nonexistent)
    sim, probe, spinner = sim_factory(scene="/nonexistent/scene", scene_dirs=f"/still:{scene_dir.parent}")
    wait_for(lambda: any("no scene loaded" in m and "/nonexistent/scene" in m for m in probe.diag_messages()),
             what="missing-scene diagnostic")
    client = probe.node.create_client(LoadScene, "/worldfm_sim/load_scene")
    wait_for(client.service_is_ready, what="load_scene service")
    bad = client.call_async(LoadScene.Request(path="/still/missing"))
    wait_for(bad.done, what="load_scene reply")
    assert bad.result().success is False and "/still/missing" in bad.result().message
    good = client.call_async(LoadScene.Request(path=str(scene_dir)))
    wait_for(good.done, what="load_scene reply")
    assert good.result().success and good.result().num_keyframes == 4
    wait_for(lambda: probe.images, what="images after loading a scene")


def test_invalid_parameter_is_rejected_with_a_reason(sim_factory):
    sim, probe, _ = sim_factory()
    client = probe.node.create_client(SetParameters, "/worldfm_sim/set_parameters")
    wait_for(client.service_is_ready, what="set_parameters service")
    future = client.call_async(SetParameters.Request(parameters=[Parameter("rate_hz", value=-1.0).to_parameter_msg()]))
    wait_for(future.done, what="set_parameters reply")
    result = future.result().results[0]
    assert not result.successful and "rate_hz" in result.reason
    n = len(probe.images)
    wait_for(lambda: len(probe.images) > n + 2, what="images after the rejected parameter")


def test_twist_stamped_commands_drive_the_robot_when_configured(sim_factory):
    from geometry_msgs.msg import TwistStamped

    sim, probe, _ = sim_factory(cmd_vel_stamped=True)
    pub = probe.node.create_publisher(TwistStamped, "cmd_vel", 10)
    wait_for(lambda: probe.odoms and pub.get_subscription_count() > 0, what="odometry and cmd_vel match")
    cmd = TwistStamped()
    cmd.twist.linear.x = 0.5
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        pub.publish(cmd)
        time.sleep(0.02)
    wait_for(lambda: probe.odoms[-1].pose.pose.position.x > 0.2, what="motion from TwistStamped")


def publish_initialpose(probe: Probe, x: float, y: float) -> None:
    """One PoseWithCovarianceStamped at (x, y) m, heading +x, in the map frame, once the node listens."""
    from geometry_msgs.msg import PoseWithCovarianceStamped

    pub = probe.node.create_publisher(PoseWithCovarianceStamped, "initialpose", 10)
    wait_for(lambda: probe.odoms and pub.get_subscription_count() > 0, what="initialpose match")
    msg = PoseWithCovarianceStamped()
    msg.header.frame_id = "map"
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    msg.pose.pose.orientation.w = 1.0
    pub.publish(msg)


def test_initialpose_teleports_the_robot_in_the_map(sim_factory):
    sim, probe, _ = sim_factory()
    publish_initialpose(probe, 4.0, 3.0)
    # odom's origin is the start pose (3, 2.5): the new map pose reads (1, 0.5) in odom.
    wait_for(lambda: abs(probe.odoms[-1].pose.pose.position.x - 1.0) < 1e-6
             and abs(probe.odoms[-1].pose.pose.position.y - 0.5) < 1e-6, what="teleported odometry")


def test_an_initialpose_far_outside_the_scene_is_reported_and_the_robot_stays(sim_factory):
    sim, probe, _ = sim_factory()
    publish_initialpose(probe, 1e300, 0.0)
    wait_for(lambda: any("initialpose rejected: pose: base_link at (1e+300, 0, 0) m" in m
                         for m in probe.diag_messages()), what="far-pose diagnostic")
    n = len(probe.images)
    wait_for(lambda: len(probe.images) > n + 2, what="more images after the bad pose")
    assert abs(probe.odoms[-1].pose.pose.position.x) < 1e-6  # still at the start pose


def test_point_cloud_is_published_in_the_optical_frame_when_enabled(sim_factory):
    from sensor_msgs.msg import PointCloud2

    sim, probe, _ = sim_factory(publish_points=True)
    clouds = []
    probe.node.create_subscription(PointCloud2, "camera/points", clouds.append, qos_profile_sensor_data)
    wait_for(lambda: clouds and probe.depths, what="a point cloud")
    cloud = clouds[-1]
    assert cloud.header.frame_id == "camera_optical_frame" and cloud.point_step == 16
    xyz = np.frombuffer(bytes(cloud.data), dtype=np.float32).reshape(-1, 4)[:, :3]
    assert len(xyz) > 0.5 * W * H and np.all(xyz[:, 2] > 0)


def test_unavailable_neural_backend_falls_back_to_anchor_with_a_diagnostic(sim_factory):
    sim, probe, _ = sim_factory(**{"backend.name": "torch", "backend.model": "/no/such/model.safetensors"})
    assert sim.backend.name == "anchor"
    wait_for(lambda: any("backend 'torch' unavailable" in m and "/no/such/model.safetensors" in m
                         for m in probe.diag_messages()), what="fallback diagnostic")
    wait_for(lambda: probe.images, what="images from the anchor backend")


def test_frames_are_skipped_not_queued_when_the_rate_is_too_high(sim_factory):
    sim, probe, _ = sim_factory(rate_hz=1000.0)
    wait_for(lambda: any("skipped" in m and "frames in 5 s" in m for m in probe.diag_messages()),
             what="a skipped-frames diagnostic")
    assert sim.frames_skipped > 0
    stamps = [conv.time_ns(i.header.stamp) for i in list(probe.images)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "no frame is queued or repeated"


def test_own_simulated_time_is_published_on_clock_and_stamps_images(sim_factory):
    from rosgraph_msgs.msg import Clock

    clocks = []
    sim, probe, _ = sim_factory(publish_clock=True)
    probe.node.create_subscription(Clock, "/clock", lambda m: clocks.append(conv.time_ns(m.clock)), 10)
    wait_for(lambda: len(clocks) > 5 and probe.images, what="/clock and images")
    assert clocks == sorted(clocks) and clocks[-1] < 60 * 10**9, "simulated time starts at 0"
    assert conv.time_ns(probe.images[-1].header.stamp) < 60 * 10**9


def test_setting_parameters_to_their_current_values_is_accepted(sim_factory):
    sim, _, _ = sim_factory()
    results = sim.set_parameters([Parameter("initial_pose", value=START), Parameter("use_sim_time", value=False),
                                  Parameter("rate_hz", value=12.0)])
    assert all(r.successful for r in results), [r.reason for r in results]
    assert sim.cfg.rate_hz == 12.0
    refused = sim.set_parameters([Parameter("camera.width", value=320)])[0]
    assert not refused.successful and "restart" in refused.reason
