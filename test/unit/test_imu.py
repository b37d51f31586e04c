"""The simulated IMU: gravity at rest, rates and specific force that integrate back to the
kinematic robot's motion, samples on the IMU's own clock, and Kalibr noise that Allan deviation
(allantools, an independent implementation) recovers."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import allantools
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from worldfm_ros.errors import ConfigError
from worldfm_ros.sensors.imu import ImuConfig, ImuModel, ImuNoiseConfig
from worldfm_ros.sim.kinematics import KinematicModel, KinematicsConfig, Twist, exp_se3
from worldfm_ros.sensors.rig import MountConfig

G = 9.80665
MS = 1_000_000  # ns
REST = (np.zeros(3), np.zeros(3))


def imu(rate_hz: float = 200.0, xyz=(0.0, 0.0, 0.2), rpy=(0.0, 0.0, 0.0), orientation: bool = True,
        **noise) -> ImuModel:
    return ImuModel(ImuConfig(enabled=True, rate_hz=rate_hz, mount=MountConfig(xyz=list(xyz), rpy=list(rpy)),
                              noise=ImuNoiseConfig(**noise), orientation=orientation))


def stamps_of(samples: list) -> list[int]:
    return [s.stamp_ns for s in samples]


@dataclass
class Tick:
    """The kinematic state after a tick: stamp_ns, map_T_base (4, 4), body twist v, w (3,) each."""

    stamp_ns: int
    pose: np.ndarray
    v: np.ndarray
    w: np.ndarray


def command(t: float) -> Twist:
    """A 10 s drive: speed up, turn both ways while changing speed, strafe, reverse, stop, with
    roll, pitch and heave rates throughout (diff_drive keeps vx and wz, holonomic adds vy, free
    keeps all); the model's acceleration limits turn the steps into ramps."""
    steps = [(0.0, (1.0, 0.0, 0.0)), (1.5, (0.8, 0.0, 1.5)), (3.0, (0.3, 0.0, -1.2)), (4.5, (0.6, 0.5, 0.8)),
             (6.0, (-0.5, -0.4, -0.6)), (7.5, (0.9, 0.3, 1.5)), (9.0, (0.0, 0.0, 0.0))]
    vx, vy, wz = next(c for start, c in reversed(steps) if t >= start)
    moving = t < 9.0
    return Twist(np.array([vx, vy, 0.3 * math.sin(0.7 * t) * moving]),
                 np.array([0.6 * math.sin(1.3 * t) * moving, -0.5 * math.cos(0.9 * t) * moving, wz]))


def drive(model: str, tick_ns: np.ndarray, sensor: ImuModel) -> tuple[list[Tick], list]:
    """Run the KinematicModel over the tick stamps ``tick_ns`` (at rest at tick_ns[0]) feeding
    ``sensor`` as the simulator does; the tick states and the IMU samples."""
    robot = KinematicModel(KinematicsConfig(model=model))
    ticks = [Tick(int(tick_ns[0]), robot.pose.copy(), *REST)]
    sensor.reset(ticks[0].stamp_ns, robot.pose, *REST)
    samples = []
    for t0, t1 in zip(tick_ns[:-1], tick_ns[1:]):
        robot.set_command(command(t0 * 1e-9), t0 * 1e-9)
        robot.step((t1 - t0) * 1e-9, t1 * 1e-9)
        v = robot.velocity
        ticks.append(Tick(int(t1), robot.pose.copy(), v.linear.copy(), v.angular.copy()))
        samples += sensor.update(int(t1), robot.pose, v.linear, v.angular)
    return ticks, samples


def truth_at(ticks: list[Tick], stamps: list[int], base_T_imu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """map_T_imu (n, 4, 4) and the IMU point's map velocity (n, 3) at ``stamps``, from the
    kinematic model's ticks: along the arc of the tick (t0, t1] holding each stamp, with that
    tick's twist."""
    ends = np.array([t.stamp_ns for t in ticks])
    poses, velocities = [], []
    for t in stamps:
        tick = ticks[int(np.searchsorted(ends, t))]
        s = (t - tick.stamp_ns) * 1e-9
        pose = tick.pose @ exp_se3(tick.v * s, tick.w * s)
        poses.append(pose @ base_T_imu)
        velocities.append(pose[:3, :3] @ (tick.v + np.cross(tick.w, base_T_imu[:3, 3])))
    return np.array(poses), np.array(velocities)


def strapdown(samples: list, start_ns: int, map_T_imu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the samples from rest at ``map_T_imu`` (4, 4) at ``start_ns``: attitude by the
    mean rates, velocity by the mean specific force at the interval's mid attitude plus gravity,
    position by the trapezoid rule. map_T_imu (n, 4, 4) and map velocity (n, 3) at the samples."""
    R, p, v, t = map_T_imu[:3, :3], map_T_imu[:3, 3], np.zeros(3), start_ns
    poses, velocities = [], []
    for s in samples:
        T = (s.stamp_ns - t) * 1e-9
        half = Rotation.from_rotvec(s.angular_velocity * T / 2).as_matrix()
        v_next = v + (R @ half @ s.linear_acceleration + [0.0, 0.0, -G]) * T
        p = p + (v + v_next) * T / 2
        R, v, t = R @ half @ half, v_next, s.stamp_ns
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = R, p
        poses.append(pose)
        velocities.append(v)
    return np.array(poses), np.array(velocities)


def irregular_ticks(seconds: float, seed: int = 3) -> np.ndarray:
    """Tick stamps (ns) from 0, 3 to 17 ms apart, as a jittery ROS timer gives."""
    gaps = np.random.default_rng(seed).integers(3 * MS, 17 * MS, size=int(seconds * 200))
    stamps = np.concatenate([[0], np.cumsum(gaps)])
    return stamps[stamps <= seconds * 1e9]


# ---------------------------------------------------------------------- at rest


def test_at_rest_and_level_the_imu_reads_plus_g_up_and_no_rate():
    sensor = imu()
    sensor.reset(0, np.eye(4), *REST)
    samples = [s for k in range(1, 6) for s in sensor.update(k * 10 * MS, np.eye(4), *REST)]
    assert len(samples) == 10
    for s in samples:
        assert np.allclose(s.angular_velocity, 0.0, atol=1e-15)
        assert np.allclose(s.linear_acceleration, [0.0, 0.0, G], atol=1e-12)
        assert np.allclose(s.orientation_xyzw, [0.0, 0.0, 0.0, 1.0])


def test_a_pitched_mount_sees_gravity_on_its_rotated_axes():
    pitch = 0.4  # rad about +y: the imu's x axis points 0.4 rad below the horizon
    sensor = imu(rpy=(0.0, pitch, 0.0))
    sensor.reset(0, np.eye(4), *REST)
    (s, *_) = sensor.update(10 * MS, np.eye(4), *REST)
    assert np.allclose(s.linear_acceleration, [-G * math.sin(pitch), 0.0, G * math.cos(pitch)], atol=1e-12)
    assert np.allclose(s.angular_velocity, 0.0, atol=1e-15)
    assert np.allclose(Rotation.from_quat(s.orientation_xyzw).as_euler("xyz"), [0.0, pitch, 0.0])


# ---------------------------------------------------------------------- motion

ANGLE_BOUND_DEG = 0.01
# m/s at 200 Hz. Mean rates lose the coning of a rotation whose axis changes inside an interval
# (6-DoF drive, several ticks per sample); the attitude error it leaves tilts gravity into the
# integrated velocity and grows with the interval squared: 16 mm/s at 50 Hz.
VELOCITY_BOUND_200HZ = 0.001


@pytest.mark.parametrize("model", ["diff_drive", "holonomic", "free"])
@pytest.mark.parametrize("rate_hz, ticks", [(200.0, "100 Hz"), (200.0, "irregular"), (50.0, "100 Hz")])
@pytest.mark.parametrize("mount", ["above base_link", "0.3 m ahead, 0.2 m up"])
def test_strapdown_integration_of_the_samples_reproduces_the_kinematic_motion(model, rate_hz, ticks, mount):
    """Over a 10 s drive the integrated samples stay within ANGLE_BOUND_DEG and VELOCITY_BOUND
    of the robot's attitude and IMU-point velocity at every sample, and within T/2 * Σ|Δv| of
    its position: the means cannot tell where inside its interval T a tick's velocity jump Δv
    happened, which misplaces up to T/2 * |Δv| of travel per jump (about 2 cm at 200 Hz for this
    drive; jumps at ticks on the IMU grid all sit at an interval's start and add up to about
    1 cm, jumps at irregular ticks mostly cancel)."""
    tick_ns = np.arange(0, 1001) * 10 * MS if ticks == "100 Hz" else irregular_ticks(10.0)
    sensor = imu(rate_hz=rate_hz, xyz=(0.0, 0.0, 0.2) if mount == "above base_link" else (0.3, 0.0, 0.2))
    tick_states, samples = drive(model, tick_ns, sensor)
    last = int(tick_ns[-1]) * int(rate_hz) // 10**9  # the last sample at or before the last tick
    assert stamps_of(samples) == [k * round(1e9 / rate_hz) for k in range(1, last + 1)]
    pose, velocity = truth_at(tick_states, stamps_of(samples), sensor.base_T_imu)
    est_pose, est_velocity = strapdown(samples, 0, tick_states[0].pose @ sensor.base_T_imu)

    r = sensor.base_T_imu[:3, 3]
    jumps = sum(np.linalg.norm(b.v + np.cross(b.w, r) - a.v - np.cross(a.w, r))
                for a, b in zip(tick_states[:-1], tick_states[1:]))
    position_bound = 0.5 / rate_hz * jumps
    position = np.linalg.norm(est_pose[:, :3, 3] - pose[:, :3, 3], axis=1).max()
    angle = np.degrees(Rotation.from_matrix(np.transpose(est_pose[:, :3, :3], (0, 2, 1)) @ pose[:, :3, :3])
                       .magnitude()).max()
    speed = np.linalg.norm(est_velocity - velocity, axis=1).max()
    print(f"{model}, {rate_hz:g} Hz, {ticks} ticks, {mount}: position {position * 1e3:.2f} mm "
          f"(bound {position_bound * 1e3:.1f}), velocity {speed * 1e3:.3f} mm/s, attitude {angle:.1e} deg")
    assert angle < ANGLE_BOUND_DEG
    assert speed < VELOCITY_BOUND_200HZ * (200.0 / rate_hz) ** 2
    assert position < position_bound
    reported = Rotation.from_quat([s.orientation_xyzw for s in samples]).as_matrix()
    assert np.allclose(reported, pose[:, :3, :3], atol=1e-9)


# ---------------------------------------------------------------------- clock


@pytest.mark.parametrize("rate_hz, tick_ns, start_ns", [
    (200.0, [7_300_000] * 300, 0),                        # ticks not a multiple of the 5 ms period
    (200.0, list(np.diff(irregular_ticks(2.0))), 0),      # jittery timer
    (50.0, [10 * MS] * 200, 0),                           # IMU slower than the ticks
    (333.0, [7_300_000] * 300, 0),                        # a period of 3003003.003... ns
    (200.0, [7_300_000] * 300, 1_700_000_000_123_456_789),  # ROS wall-clock stamps
])
def test_samples_come_on_the_imus_own_grid_exactly_once(rate_hz, tick_ns, start_ns):
    sensor = imu(rate_hz=rate_hz)
    sensor.update(start_ns, np.eye(4), *REST)  # the first state, without a reset: starts the clock
    t, stamps = start_ns, []
    for dt in tick_ns:
        batch = sensor.update(t + int(dt), np.eye(4), *REST)
        assert all(t < s <= t + dt for s in stamps_of(batch))
        stamps += stamps_of(batch)
        t += int(dt)
    first = start_ns * int(rate_hz) // 10**9 + 1  # rate_hz is a whole number here
    assert stamps == [k * 10**9 // int(rate_hz) for k in range(first, first + len(stamps))]
    assert stamps[-1] + 10**9 / rate_hz > t
    assert sensor.update(t - 5 * MS, np.eye(4), *REST) == []  # a clock jump back restarts it


# ---------------------------------------------------------------------- noise

GYRO_N, GYRO_K = 1.7e-4, 1.7e-5    # rad/s/√Hz, rad/s²/√Hz: white/random-walk crossover at √3·N/K = 17 s
ACCEL_N, ACCEL_K = 2.0e-3, 2.0e-4  # m/s²/√Hz, m/s³/√Hz


def test_allan_deviation_of_a_stationary_record_gives_the_configured_noise():
    """Three hours at 200 Hz, at rest: ADEV at tau = 1 s is the noise density (within 10%), and
    sigma(tau) = K * sqrt(tau / 3) on the long-tau slope (tau >= 100 s, the white part removed)
    gives the bias random walk (within 25%), both for the gyroscope and the accelerometer."""
    rate = 200.0
    sensor = imu(rate_hz=rate, orientation=False, gyroscope_noise_density=GYRO_N, gyroscope_random_walk=GYRO_K,
                 accelerometer_noise_density=ACCEL_N, accelerometer_random_walk=ACCEL_K, seed=7)
    sensor.reset(0, np.eye(4), *REST)
    batches = [sensor.update_batch(k * 60 * 10**9, np.eye(4), *REST) for k in range(1, 3 * 60 + 1)]
    gyro = np.concatenate([b.angular_velocity for b in batches])
    accel = np.concatenate([b.linear_acceleration for b in batches]) - [0.0, 0.0, G]
    assert len(gyro) == 3 * 3600 * 200
    taus = np.array([1.0, 100.0, 150.0, 220.0, 330.0, 500.0, 750.0, 1100.0])
    for name, data, density, walk in (("gyroscope", gyro, GYRO_N, GYRO_K), ("accelerometer", accel, ACCEL_N, ACCEL_K)):
        # The three axes are independent records of one process: average their Allan variances.
        avar = np.mean([allantools.oadev(data[:, i], rate=rate, data_type="freq", taus=taus)[1] ** 2
                        for i in range(3)], axis=0)
        white = math.sqrt(avar[0])
        slope = taus >= 100.0
        random_walk = math.sqrt(np.mean(3.0 * (avar[slope] - white ** 2 / taus[slope]) / taus[slope]))
        print(f"{name}: density {white:.4g} (set {density:g}), random walk {random_walk:.4g} (set {walk:g})")
        assert white == pytest.approx(density, rel=0.10)
        assert random_walk == pytest.approx(walk, rel=0.25)


def noisy_record(seed: int, tick_ns: int, seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Stamps and (n, 6) gyro + specific-force readings at rest with noise seeded ``seed``,
    fed in ticks of ``tick_ns``."""
    sensor = imu(gyroscope_noise_density=GYRO_N, gyroscope_random_walk=GYRO_K, accelerometer_noise_density=ACCEL_N,
                 accelerometer_random_walk=ACCEL_K, seed=seed)
    sensor.reset(0, np.eye(4), *REST)
    samples = [s for k in range(1, int(seconds * 1e9) // tick_ns + 1)
               for s in sensor.update(k * tick_ns, np.eye(4), *REST)]
    return (np.array(stamps_of(samples)),
            np.array([np.concatenate([s.angular_velocity, s.linear_acceleration]) for s in samples]))


def test_the_same_seed_gives_the_same_noise_however_the_ticks_fall_and_other_seeds_differ():
    stamps, first = noisy_record(seed=5, tick_ns=10 * MS)
    again_stamps, again = noisy_record(seed=5, tick_ns=7_300_000)
    n = min(len(stamps), len(again_stamps))
    assert np.array_equal(stamps[:n], again_stamps[:n])
    assert np.allclose(first[:n], again[:n], rtol=0.0, atol=1e-12)  # bias sums differ only in rounding
    _, other = noisy_record(seed=6, tick_ns=10 * MS)
    assert not np.any(np.isclose(first, other, rtol=0.0, atol=1e-12))


def test_reset_restarts_the_noise_stream_with_zero_biases():
    sensor = imu(gyroscope_noise_density=GYRO_N, gyroscope_random_walk=GYRO_K, accelerometer_noise_density=ACCEL_N,
                 accelerometer_random_walk=ACCEL_K, seed=5)
    runs = []
    for _ in range(2):
        sensor.reset(0, np.eye(4), *REST)
        runs.append(np.array([s.angular_velocity for k in range(1, 50)
                              for s in sensor.update(k * 10 * MS, np.eye(4), *REST)]))
    assert np.array_equal(runs[0], runs[1])


def test_covariances_are_the_discrete_white_noise_variances():
    sensor = imu(rate_hz=400.0, gyroscope_noise_density=GYRO_N, accelerometer_noise_density=ACCEL_N)
    assert np.allclose(sensor.angular_velocity_covariance, np.eye(3) * GYRO_N ** 2 * 400.0)
    assert np.allclose(sensor.linear_acceleration_covariance, np.eye(3) * ACCEL_N ** 2 * 400.0)
    assert sensor.orientation_covariance[0, 0] > 0
    unreported = imu(orientation=False)
    assert unreported.orientation_covariance[0, 0] == -1.0
    unreported.reset(0, np.eye(4), *REST)
    assert all(s.orientation_xyzw is None for s in unreported.update(20 * MS, np.eye(4), *REST))


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize("make, field", [
    (lambda: ImuConfig(rate_hz=-1.0), "imu.rate_hz"),
    (lambda: ImuConfig(rate_hz=0.0), "imu.rate_hz"),
    (lambda: ImuConfig(rate_hz=5000.0), "imu.rate_hz"),
    (lambda: ImuConfig(rate_hz=float("nan")), "imu.rate_hz"),
    (lambda: ImuConfig(frame_id=""), "imu.frame_id"),
    (lambda: ImuConfig(gravity=-9.8), "imu.gravity"),
    (lambda: ImuNoiseConfig(gyroscope_noise_density=-1e-4), "imu.noise.gyroscope_noise_density"),
    (lambda: ImuNoiseConfig(gyroscope_random_walk=float("inf")), "imu.noise.gyroscope_random_walk"),
    (lambda: ImuNoiseConfig(accelerometer_noise_density=float("nan")), "imu.noise.accelerometer_noise_density"),
    (lambda: ImuNoiseConfig(accelerometer_random_walk=-1.0), "imu.noise.accelerometer_random_walk"),
    (lambda: ImuNoiseConfig(seed=-1), "imu.noise.seed"),
])
def test_a_bad_config_value_raises_config_error_naming_the_field(make, field):
    with pytest.raises(ConfigError, match=rf"^{re.escape(field)}: expected"):
        make()
