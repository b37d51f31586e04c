"""The simulator owns simulated time, robot state and live reconfiguration (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.config import load_config
from worldfm_ros.errors import ConfigError, WorldFMError
from worldfm_ros.build.procedural import make_room_scene, random_room
from worldfm_ros.sim.config import SimConfig
from worldfm_ros.sim.kinematics import Twist
from worldfm_ros.sim.simulator import Simulator

W, H = 48, 36


def config(**overrides) -> SimConfig:
    return load_config(SimConfig, {"camera": {"width": W, "height": H}, "backend": {"name": "anchor"}, **overrides})


@pytest.fixture(scope="module")
def room():
    return make_room_scene(random_room(seed=3, size=(6.0, 5.0, 2.8), num_obstacles=0), PinholeCamera.from_fov(W, H, 90.0),
                           num_views=4, num_keyframes=2)


def forward(speed: float) -> Twist:
    return Twist(np.array([speed, 0.0, 0.0]), np.zeros(3))


def test_tick_without_a_clock_runs_the_simulators_own_time_one_kinematic_period_on():
    sim = Simulator(config(sim_rate_hz=50.0))
    stamps = [sim.tick().stamp_ns for _ in range(3)]
    assert stamps == [20_000_000, 40_000_000, 60_000_000] and sim.time_ns == 60_000_000


def test_tick_to_an_outside_clock_integrates_the_time_since_the_last_tick():
    sim = Simulator(config(kinematics={"max_linear_accel": 1000.0}))
    sim.tick(5_000_000_000)
    sim.set_command(forward(0.5))
    x0 = sim.state().odom_T_base[0, 3]
    state = sim.tick(5_400_000_000)
    assert state.stamp_ns == sim.time_ns == 5_400_000_000
    assert state.odom_T_base[0, 3] - x0 == pytest.approx(0.5 * 0.4, rel=1e-6)
    assert state.linear[0] == pytest.approx(0.5)


def test_state_is_a_copy_that_later_ticks_do_not_change():
    sim = Simulator(config())
    sim.set_command(forward(0.5))
    before = sim.tick()
    kept = before.odom_T_base.copy()
    sim.tick()
    assert np.array_equal(before.odom_T_base, kept)


def test_reconfigure_applies_a_live_field_to_the_frames(room):
    sim = Simulator(config(point_radius=0))
    sim.load_scene(room)
    sim.reconfigure(config(point_radius=3))
    assert sim.config.point_radius == 3 and sim.pipeline.point_radius == 3


def test_reconfigure_refuses_a_restart_only_field_and_changes_nothing():
    sim = Simulator(config())
    before = sim.config
    with pytest.raises(ConfigError, match=r"^camera.width cannot change while running \(restart the node\)$"):
        sim.reconfigure(load_config(SimConfig, {"camera": {"width": 64, "height": H}, "backend": {"name": "anchor"},
                                                "point_radius": 4}))
    assert sim.config is before


def test_from_config_falls_back_to_the_fill_backend_and_says_why():
    heard: list[str] = []
    sim = Simulator.from_config(config(backend={"name": "tensorrt", "model": "/nonexistent.engine"}), heard.append)
    assert sim.backend.name == "anchor"
    assert len(heard) == 1 and heard[0].startswith("backend 'tensorrt' unavailable")


def test_render_without_a_scene_says_so():
    with pytest.raises(WorldFMError, match="no scene loaded"):
        Simulator(config()).render(np.eye(4), 0)


def test_render_stamps_the_frame_with_the_given_time(room):
    sim = Simulator(config())
    sim.load_scene(room)
    assert sim.world.anchor is room
    assert sim.render(sim.map_T_base, 123).stamp_ns == 123


def test_a_pose_far_outside_the_world_is_refused_by_reset_and_teleport_and_nothing_changes(room):
    sim = Simulator(config())
    sim.load_scene(room)
    before = sim.reset(seed=0)
    far = np.eye(4)
    far[0, 3] = 1e300  # finite: check_pose lets it through, the renderer's projection overflows
    for move in (sim.reset, sim.set_map_pose):
        with pytest.raises(ValueError, match=r"pose: base_link at \(1e\+300, 0, 0\) m is 1e\+300 m from the "
                                             r"scene's extent; expected at most 1000 m"):
            move(far)
    assert np.array_equal(sim.map_T_base, before.map_T_base)


def test_a_pose_within_the_bound_around_the_world_is_accepted(room):
    from worldfm_ros.sim.simulator import MAX_POSE_DISTANCE_M
    from worldfm_ros.world.base import points_in_map

    sim = Simulator(config())
    sim.load_scene(room)
    near = np.eye(4)
    near[0, 3] = points_in_map(sim.world, sim.world.surface_points()[0])[:, 0].max() + MAX_POSE_DISTANCE_M - 1.0
    assert sim.reset(near).map_T_base[0, 3] == near[0, 3]


def test_without_a_world_poses_are_bounded_around_the_map_origin():
    sim = Simulator(config())
    far = np.eye(4)
    far[:3, 3] = [1e3, 1e3, 0.0]
    with pytest.raises(ValueError, match=r"is 1.41e\+03 m from the map origin; expected at most 1000 m"):
        sim.set_map_pose(far)
