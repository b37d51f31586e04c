"""Lockstep (RL) mode of the node: ~/reset and ~/step over real rclpy, time advancing only on step."""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")

from rclpy.parameter import Parameter  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from rosutil import Spinner, wait_for  # noqa: E402
from worldfm_ros.camera import PinholeCamera  # noqa: E402
from worldfm_ros.ros import conversions as conv  # noqa: E402
from worldfm_ros.ros.node import SimNode  # noqa: E402
from worldfm_ros.build.procedural import make_room_scene, random_room  # noqa: E402
from worldfm_ros.scene.store import save_scene  # noqa: E402
from worldfm_ros.srv import Reset, Step  # noqa: E402

W, H = 64, 48


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "room"
    room = random_room(seed=11, size=(6.0, 5.0, 2.8), num_obstacles=0)
    save_scene(make_room_scene(room, PinholeCamera.from_fov(W, H, 90.0), num_views=12, num_keyframes=3), path)
    return path


@pytest.fixture
def lockstep(ros_context, scene_dir):
    params = {"scene": str(scene_dir), "lockstep": True, "camera.width": W, "camera.height": H,
              "initial_pose": [3.0, 2.5, 0.0, 0.0], "kinematics.max_linear_accel": 100.0,
              "kinematics.max_angular_accel": 100.0}
    sim = SimNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    client = rclpy.create_node("rl_client", context=ros_context)
    clocks: list[int] = []
    client.create_subscription(Clock, "/clock", lambda m: clocks.append(conv.time_ns(m.clock)), 10)
    spinner = Spinner(ros_context, sim, client)
    reset = client.create_client(Reset, "/worldfm_sim/reset")
    step = client.create_client(Step, "/worldfm_sim/step")
    wait_for(lambda: reset.service_is_ready() and step.service_is_ready(), what="lockstep services")

    def call(cli, request):
        future = cli.call_async(request)
        wait_for(future.done, what="service reply")
        return future.result()

    yield (lambda req: call(reset, req)), (lambda req: call(step, req)), clocks, sim
    spinner.stop()
    sim.destroy_node()
    client.destroy_node()


def forward(v: float, dt: float = 0.1) -> Step.Request:
    req = Step.Request(dt=dt)
    req.action.linear.x = v
    return req


def test_reset_then_steps_are_deterministic_for_a_fixed_seed(lockstep):
    reset, step, *_ = lockstep
    runs = []
    for _ in range(2):
        first = reset(Reset.Request(seed=7))
        assert first.success
        frames = [conv.image_to_numpy(first.image)]
        for _ in range(3):
            frames.append(conv.image_to_numpy(step(forward(0.5)).image))
        runs.append(frames)
    for a, b in zip(*runs):
        assert np.array_equal(a, b)
    assert not np.array_equal(runs[0][0], runs[0][-1]), "the robot moved, so the view must change"


def test_time_advances_only_on_step_and_is_published_on_clock(lockstep):
    reset, step, clocks, _ = lockstep
    r = reset(Reset.Request(seed=1))
    assert conv.time_ns(r.image.header.stamp) == 0
    s = step(forward(0.2, dt=0.25))
    assert conv.time_ns(s.image.header.stamp) == 250_000_000
    assert conv.time_ns(s.odometry.header.stamp) == 250_000_000
    wait_for(lambda: clocks and clocks[-1] == 250_000_000, what="/clock at 0.25 s")
    n = len(clocks)
    import time

    time.sleep(0.5)
    assert len(clocks) == n, "/clock must not advance without a step"


def test_step_moves_the_robot_by_velocity_times_dt(lockstep):
    reset, step, *_ = lockstep
    reset(Reset.Request(seed=1))
    s = None
    for _ in range(10):
        s = step(forward(0.5, dt=0.2))
    assert s.odometry.pose.pose.position.x == pytest.approx(1.0, abs=1e-6)
    assert not s.done and not s.collision and s.min_obstacle_distance > 1.0


def test_reset_to_a_pose_puts_the_robot_there(lockstep):
    reset, *_ = lockstep
    req = Reset.Request(use_pose=True, seed=-1)
    req.pose.position.x, req.pose.position.y = 2.0, 2.0
    req.pose.orientation.w = 1.0
    r = reset(req)
    odom = r.odometry.pose.pose.position
    assert (odom.x, odom.y) == pytest.approx((-1.0, -0.5))  # odom origin is the initial pose (3, 2.5)


def test_reset_to_a_pose_far_outside_the_scene_is_rejected_with_the_bound(lockstep):
    reset, *_ = lockstep
    req = Reset.Request(use_pose=True, seed=-1)
    req.pose.position.x = 1e300
    req.pose.orientation.w = 1.0
    r = reset(req)
    assert not r.success and r.message.startswith("reset rejected: pose: base_link at (1e+300, 0, 0) m")
    assert "expected at most 1000 m" in r.message
    assert reset(Reset.Request(seed=1)).success  # the node keeps serving


def test_driving_into_a_wall_is_blocked_and_ends_the_episode(lockstep):
    reset, step, *_ = lockstep
    reset(Reset.Request(seed=1))
    s = None
    for _ in range(40):  # 3 m ahead is the wall at x = 6
        s = step(forward(1.0, dt=0.2))
        if s.done:
            break
    assert s.collision and s.done
    assert s.odometry.pose.pose.position.x < 3.0 - 0.25 + 1e-6


def test_invalid_step_is_rejected_with_a_reason(lockstep):
    reset, step, *_ = lockstep
    reset(Reset.Request(seed=1))
    bad = step(forward(0.5, dt=-1.0))
    assert not bad.success and "dt" in bad.message
    nan = step(forward(float("nan")))
    assert not nan.success and "NaN" in nan.message


def test_a_failing_backend_fails_the_step_and_the_node_keeps_serving(lockstep):
    reset, step, _, sim = lockstep
    reset(Reset.Request(seed=1))
    original = sim.backend.generate

    def broken(request):
        raise RuntimeError("CUDA out of memory")

    sim.backend.generate = broken  # fault injection into the backend, not into the node under test
    failed = step(forward(0.5))
    assert not failed.success and "CUDA out of memory" in failed.message
    sim.backend.generate = original
    assert step(forward(0.5)).success


def test_laser_scan_reads_the_wall_ahead_at_its_distance(lockstep):
    from sensor_msgs.msg import LaserScan
    from rclpy.qos import qos_profile_sensor_data

    reset, _, _, sim = lockstep
    assert sim.set_parameters([Parameter("publish_scan", value=True)])[0].successful
    scans = []
    listener = rclpy.create_node("scan_listener", context=sim.context)
    listener.create_subscription(LaserScan, "scan", scans.append, qos_profile_sensor_data)
    spinner = Spinner(sim.context, listener)

    def reset_and_check() -> bool:
        reset(Reset.Request(seed=1))
        return bool(scans)

    wait_for(reset_and_check, what="a LaserScan")
    spinner.stop()
    scan = scans[-1]
    assert scan.header.frame_id == "base_link"
    ranges = np.array(scan.ranges)
    angles = scan.angle_min + scan.angle_increment * np.arange(len(ranges))
    # 64 px across 90 degrees: one pixel column per ~1.4 degrees, so some 0.5 degree beams see none
    ahead = ranges[(np.abs(angles) < np.radians(2.0)) & np.isfinite(ranges)]
    assert len(ahead) and ahead == pytest.approx(3.0 / np.cos(angles[(np.abs(angles) < np.radians(2.0))
                                                                     & np.isfinite(ranges)]), abs=0.03)
    listener.destroy_node()


def test_ros_gym_env_matches_the_in_process_env(lockstep, scene_dir):
    from gymnasium.utils.env_checker import check_env

    from worldfm_ros.envs.ros_env import WorldFMRosEnv
    from worldfm_ros.envs.sim_env import WorldFMEnv

    env = WorldFMRosEnv(dt=0.2, max_episode_steps=20, timeout_s=15, normalized_actions=False)
    check_env(env, skip_render_check=True)
    local = WorldFMEnv({"camera": {"width": W, "height": H}, "initial_pose": [3.0, 2.5, 0.0, 0.0],
                        "kinematics": {"max_linear_accel": 100.0, "max_angular_accel": 100.0}},
                       scene=str(scene_dir), dt=0.2, normalized_actions=False, start_poses=None)
    remote_obs, _ = env.reset(seed=4)
    local_obs, _ = local.reset(seed=4)
    assert np.array_equal(remote_obs["image"], local_obs["image"])
    assert remote_obs["depth"].shape == (H, W, 1) and np.array_equal(remote_obs["depth"], local_obs["depth"])
    for _ in range(3):
        action = np.array([0.5, 0.3], np.float32)
        r, l = env.step(action), local.step(action)
        assert np.array_equal(r[0]["image"], l[0]["image"])
        assert np.allclose(r[0]["odom"], l[0]["odom"], atol=1e-5) and r[1] == pytest.approx(l[1], abs=1e-5)
    env.close()
    local.close()
