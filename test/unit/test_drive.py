"""A recorded camera path becomes a planar drive that keeps a simulated robot on the recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from worldfm_ros.errors import ConfigError
from worldfm_ros.sim.config import SimConfig
from worldfm_ros.sim.drive import ground_drive
from worldfm_ros.sim.kinematics import KinematicsConfig, Twist
from worldfm_ros.camera import LINK_T_OPTICAL
from worldfm_ros.sensors.rig import MountConfig
from worldfm_ros.sim.simulator import Simulator
from worldfm_ros.sim.trajectory import Trajectory, load_tum

ROOT = Path(__file__).resolve().parents[2]


def hand_held_arc(n: int = 60, rate_hz: float = 10.0) -> Trajectory:
    """Optical-frame poses in the map: a 1.2 m arc that strafes and turns, camera 0.8-1.0 m high, 15° down."""
    poses = []
    for i in range(n):
        s = i / (n - 1)
        yaw, height = 0.6 * s, 0.8 + 0.2 * s
        map_T_link = np.eye(4)
        map_T_link[:3, :3] = Rotation.from_euler("xyz", [0.0, np.radians(15.0), yaw]).as_matrix()
        map_T_link[:3, 3] = [1.0 + 0.3 * s, 2.0 - 1.2 * s, height]
        poses.append(map_T_link @ LINK_T_OPTICAL)
    stamps = (np.arange(n) * 1e9 / rate_hz).astype(np.int64)
    return Trajectory(stamps, np.stack(poses), "optical", "map")


def simulator_for(drive) -> Simulator:
    """A holonomic robot set up as ``worldfm demo`` sets up its node for a drive."""
    return Simulator(SimConfig(initial_pose=drive.initial_pose, kinematics=KinematicsConfig(model="holonomic"),
                               mount=MountConfig(xyz=drive.mount_xyz, rpy=drive.mount_rpy)))


def drive_simulator(trajectory: Trajectory) -> tuple[Simulator, list[np.ndarray]]:
    drive = ground_drive(trajectory, np.eye(4))
    sim = simulator_for(drive)
    sim.reset()
    optical = []
    for seconds, vx, vy, wz in drive.segments:
        for _ in range(int(round(seconds / 0.05))):
            sim.step(Twist(np.array([vx, vy, 0.0]), np.array([0.0, 0.0, wz])), 0.05)
        optical.append(sim.rig.optical_in_map(sim.map_T_base))
    return sim, optical


def test_a_robot_driving_the_ground_drive_follows_the_recorded_camera_positions():
    trajectory = hand_held_arc()
    _, optical = drive_simulator(trajectory)
    recorded = trajectory.poses[::5][1:]
    errors = [np.linalg.norm(o[:2, 3] - r[:2, 3]) for o, r in zip(optical, recorded)]
    assert max(errors) < 0.05, f"off the recorded path by up to {max(errors):.3f} m"


def test_the_drives_camera_looks_where_the_recording_looked_at_its_median_height_and_pitch():
    trajectory = hand_held_arc()
    _, optical = drive_simulator(trajectory)
    final, recorded = optical[-1], trajectory.poses[::5][-1]
    angle = np.degrees(np.arccos(np.clip(final[:3, 2] @ recorded[:3, 2], -1.0, 1.0)))
    assert angle < 6.0, "viewing direction within a few degrees (the height and pitch are fixed at their medians)"
    heights = [o[2, 3] for o in optical]
    assert np.allclose(heights, np.median(trajectory.poses[::5, 2, 3]), atol=1e-6)


def test_a_base_link_trajectory_has_no_camera_to_project():
    t = hand_held_arc()
    with pytest.raises(ConfigError, match="optical-frame"):
        ground_drive(Trajectory(t.stamps_ns, t.poses, "base", "map"), np.eye(4))


def test_the_bundled_living_rooms_drive_stays_clear_of_its_furniture():
    from worldfm_ros.scene.store import load_scene

    scene = ROOT / "scenes" / "icl_livingroom"
    anchor = load_scene(scene)
    drive = ground_drive(load_tum(scene / "trajectory.tum", world="scene"), anchor.map_T_scene)
    sim = simulator_for(drive)
    sim.load_scene(anchor)
    sim.reset()
    blocked = 0
    for seconds, vx, vy, wz in drive.segments:
        for _ in range(int(round(seconds / 0.1))):
            blocked += sim.step(Twist(np.array([vx, vy, 0.0]), np.array([0.0, 0.0, wz])), 0.1).collision
    assert blocked == 0, "the recording's path is free space for the robot's footprint"
    assert 0.4 < drive.mount_xyz[2] < 1.3, "the camera rides at the recording's height above the detected floor"
