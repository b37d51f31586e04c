"""A recorded camera path turned into a planar robot drive (what ``worldfm demo`` scripts).

A hand-held recording moves its camera in 6 DoF; a ground robot moves in (x, y, yaw) with the
camera on a fixed mount. ``ground_drive`` projects the recorded optical-frame poses to the floor
of the map (REP-103: z up, floor at z = 0): the robot stands under the camera, heading where the
camera looks (its optical z-axis projected on the floor); the mount carries the camera at the
recording's median height above the floor with its median downward pitch. The drive is a list
of constant body-frame velocity segments (a holonomic base: forward, sideways and yaw rate)
between poses ``stride`` recorded poses apart, so a robot integrating them stays on the
recorded path (within the kinematics' acceleration lag), i.e. where the recording saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldfm_ros.errors import ConfigError
from worldfm_ros.sim.simulator import planar_pose
from worldfm_ros.sim.trajectory import Trajectory, body_velocities


@dataclass
class GroundDrive:
    """initial_pose: [x, y, z, yaw] of base_link in map (metres, radians; z = 0, on the floor).
    mount_xyz / mount_rpy: base_link → camera_link (metres; fixed-axis roll, pitch, yaw in
    radians, pitch > 0 looks down). segments: (S, 4) rows (seconds, vx, vy in m/s, wz in rad/s),
    body-frame velocities of base_link (x forward, y left), held for that many seconds each."""

    initial_pose: list[float]
    mount_xyz: list[float]
    mount_rpy: list[float]
    segments: np.ndarray

    @property
    def duration(self) -> float:
        """Seconds of driving, the sum of the segments'."""
        return float(self.segments[:, 0].sum())


def ground_drive(trajectory: Trajectory, map_T_scene: np.ndarray, stride: int = 5) -> GroundDrive:
    """The drive along an optical-frame ``trajectory`` (in the map, or in the scene frame mapped
    by ``map_T_scene`` (4, 4)), with one velocity segment per ``stride`` recorded poses.

    ConfigError for a base_link trajectory (it has no camera to project) or fewer than two poses
    ``stride`` apart.
    """
    if trajectory.kind != "optical":
        raise ConfigError(f"ground drive: expected an optical-frame trajectory, got kind {trajectory.kind!r}")
    if stride < 1:
        raise ConfigError(f"ground drive: stride must be >= 1, got {stride}")
    keep = np.arange(0, len(trajectory), stride)
    if len(keep) < 2:
        raise ConfigError(f"ground drive: {len(trajectory)} poses give fewer than two poses {stride} apart")
    map_T_optical = trajectory.poses[keep]
    if trajectory.world == "scene":
        map_T_optical = np.asarray(map_T_scene, dtype=np.float64) @ map_T_optical
    forward = map_T_optical[:, :3, 2]  # optical z: the viewing direction
    yaw = np.arctan2(forward[:, 1], forward[:, 0])
    pitch = np.arcsin(np.clip(-forward[:, 2], -1.0, 1.0))
    xyz = map_T_optical[:, :3, 3]
    map_T_base = np.stack([planar_pose(x, y, 0.0, a) for (x, y), a in zip(xyz[:, :2], yaw)])
    stamps = trajectory.stamps_ns[keep]
    linear, angular = body_velocities(map_T_base, stamps)
    seconds = np.diff(stamps) * 1e-9
    segments = np.column_stack([seconds, linear[1:, 0], linear[1:, 1], angular[1:, 2]])
    return GroundDrive([float(xyz[0, 0]), float(xyz[0, 1]), 0.0, float(yaw[0])],
                       [0.0, 0.0, float(np.median(xyz[:, 2]))], [0.0, float(np.median(pitch)), 0.0], segments)
