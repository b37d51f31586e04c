"""A simulated IMU on the kinematic robot: angular rate and specific force, with Kalibr's noise model.

The motion: between two kinematic ticks the base moves with the constant body twist that takes
the first tick's pose to the second's (the exact arc, ``geometry.exp_se3``; this is how
``KinematicModel`` integrates), so the pose, the rate and the velocity of the IMU point
(``base_T_imu``, lever arm included) are known at every instant.

A sample stamped s reports what a MEMS IMU reports: the mean over its interval (s - Δ, s], Δ =
1 / rate_hz, of the angular rate (imu axes) and of the specific force, i.e. the change of the IMU
point's world velocity over the interval divided by Δ, minus gravity, expressed in the IMU axes
at the interval's start turned half-way by the mean rate (the midpoint attitude a strapdown
integrator forms from the sample). A velocity step at a tick is thus spread over the interval holding
it, and a strapdown integrator that rotates each sample by the midpoint orientation recovers the
velocity exactly at sample instants. Samples lie on the IMU's own clock, stamps k·Δ (integer
nanoseconds), whatever the tick times. Before the first state the robot is at rest.

Noise (Kalibr's discrete model, continuous-time parameters as ``imu.yaml`` has them): white noise
σ_d = σ_c·√rate per sample; the bias is a random walk with σ_bd = σ_b·√Δ per sample, starting
at zero at each reset; one numpy Generator seeded with ``seed``, restarted by ``reset``, draws 12
normals per sample (gyro white, gyro walk, accel white, accel walk), so the noise of a sample
does not depend on how the ticks fell.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy.spatial.transform import Rotation

from worldfm_ros.errors import ConfigError
from worldfm_ros.geometry import exp_se3
from worldfm_ros.sensors.mount import MountConfig

MAX_IMU_RATE_HZ = 2000.0
#: orientation variance reported (rad²): the orientation is the simulator's own, without noise
ORIENTATION_VARIANCE = 1e-6


@dataclass
class ImuNoiseConfig:
    """Kalibr / Allan-deviation parameters, continuous time: gyroscope_noise_density rad/s/√Hz,
    gyroscope_random_walk rad/s²/√Hz, accelerometer_noise_density m/s²/√Hz,
    accelerometer_random_walk m/s³/√Hz; seed: the noise is the same for the same seed."""

    gyroscope_noise_density: float = 0.0
    gyroscope_random_walk: float = 0.0
    accelerometer_noise_density: float = 0.0
    accelerometer_random_walk: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("gyroscope_noise_density", "gyroscope_random_walk", "accelerometer_noise_density",
                     "accelerometer_random_walk"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"imu.noise.{name}: expected a number >= 0, got {value!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ConfigError(f"imu.noise.seed: expected an integer >= 0, got {self.seed!r}")


@dataclass
class ImuConfig:
    """enabled: the rig has an IMU. rate_hz: samples per second. frame_id: its TF frame. mount:
    base_link → frame_id. noise: Kalibr parameters. gravity: m/s², along map -z. orientation:
    report map_T_imu's rotation (else orientation_covariance[0] = -1, as sensor_msgs/Imu says)."""

    enabled: bool = False
    rate_hz: float = 200.0
    frame_id: str = "imu_link"
    mount: MountConfig = field(default_factory=lambda: MountConfig([0.0, 0.0, 0.2], [0.0, 0.0, 0.0]))
    noise: ImuNoiseConfig = field(default_factory=ImuNoiseConfig)
    gravity: float = 9.80665
    orientation: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_hz) and 0 < self.rate_hz <= MAX_IMU_RATE_HZ):
            raise ConfigError(f"imu.rate_hz: expected a positive number up to {MAX_IMU_RATE_HZ:g}, got {self.rate_hz}")
        if not self.frame_id:
            raise ConfigError("imu.frame_id: expected a frame id, got ''")
        if not (math.isfinite(self.gravity) and self.gravity >= 0):
            raise ConfigError(f"imu.gravity: expected a number >= 0 (m/s²), got {self.gravity}")


@dataclass
class ImuSample:
    """stamp_ns: sample time. angular_velocity: (3,) rad/s and linear_acceleration: (3,) m/s²
    (specific force), imu axes. orientation_xyzw: (4,) rotation of map_T_imu, or None."""

    stamp_ns: int
    angular_velocity: np.ndarray
    linear_acceleration: np.ndarray
    orientation_xyzw: np.ndarray | None


@dataclass
class ImuBatch:
    """Consecutive samples as arrays: stamps_ns (n,) int64; angular_velocity, linear_acceleration
    (n, 3); orientation_xyzw (n, 4) or None."""

    stamps_ns: np.ndarray
    angular_velocity: np.ndarray
    linear_acceleration: np.ndarray
    orientation_xyzw: np.ndarray | None

    def samples(self) -> list[ImuSample]:
        q = self.orientation_xyzw
        return [ImuSample(int(t), self.angular_velocity[i], self.linear_acceleration[i], None if q is None else q[i])
                for i, t in enumerate(self.stamps_ns)]


def log_se3(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v, w): the body twist (times the duration) whose exp_se3 is the rigid motion T (4, 4)."""
    w = Rotation.from_matrix(T[:3, :3]).as_rotvec()
    theta = float(np.linalg.norm(w))
    if theta < 1e-9:
        return T[:3, 3].copy(), w
    k = w / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    V = np.eye(3) + (1 - math.cos(theta)) / theta * K + (theta - math.sin(theta)) / theta * (K @ K)
    return np.linalg.solve(V, T[:3, 3]), w


@dataclass
class _Segment:
    """Motion over (start_ns, end_ns]: map_T_base at the start and the constant body twist (m/s, rad/s)."""

    start_ns: float
    end_ns: float
    map_T_base: np.ndarray
    linear: np.ndarray
    angular: np.ndarray

    def pose(self, t_ns: float) -> np.ndarray:
        if not math.isfinite(self.start_ns):  # at rest before the first state
            return self.map_T_base
        dt = (t_ns - self.start_ns) * 1e-9
        return self.map_T_base @ exp_se3(self.linear * dt, self.angular * dt)


class ImuModel:
    """The IMU of ``config`` mounted at ``base_T_imu`` (4, 4; default ``config.mount``)."""

    def __init__(self, config: ImuConfig, base_T_imu: np.ndarray | None = None) -> None:
        self.config = config
        self.base_T_imu = config.mount.matrix() if base_T_imu is None else np.asarray(base_T_imu, dtype=np.float64)
        self.period_ns = 1e9 / config.rate_hz
        # Sample k is stamped k·10⁹/rate ns exactly (integers: ROS stamps, ~1.8e18 ns, are finer
        # than a float64 holds).
        rate = Fraction(config.rate_hz).limit_denominator(10**6)
        self._rate_num, self._rate_den = rate.numerator, rate.denominator
        n = config.noise
        self._sigma = (n.gyroscope_noise_density * math.sqrt(config.rate_hz),
                       n.accelerometer_noise_density * math.sqrt(config.rate_hz))
        self._walk = (n.gyroscope_random_walk / math.sqrt(config.rate_hz),
                      n.accelerometer_random_walk / math.sqrt(config.rate_hz))
        self._segments: deque[_Segment] = deque()
        self._last_ns: int | None = None
        self._next_k = 0

    @property
    def angular_velocity_covariance(self) -> np.ndarray:
        """(3, 3) rad²/s²: the per-sample white-noise variance."""
        return np.eye(3) * self._sigma[0] ** 2

    @property
    def linear_acceleration_covariance(self) -> np.ndarray:
        """(3, 3) m²/s⁴: the per-sample white-noise variance."""
        return np.eye(3) * self._sigma[1] ** 2

    @property
    def orientation_covariance(self) -> np.ndarray:
        """(3, 3) rad²; [0, 0] = -1 when no orientation is reported."""
        if not self.config.orientation:
            out = np.zeros((3, 3))
            out[0, 0] = -1.0
            return out
        return np.eye(3) * ORIENTATION_VARIANCE

    def reset(self, stamp_ns: int, map_T_base: np.ndarray, linear: np.ndarray, angular: np.ndarray) -> None:
        """Start at ``stamp_ns`` with the robot at ``map_T_base`` (4, 4), at rest before it; biases
        zero, the noise stream restarted. linear / angular are accepted for symmetry with update."""
        self._origin = int(stamp_ns)  # segment times are ns after it (floats stay exact)
        self._segments = deque([_Segment(-math.inf, 0.0, np.array(map_T_base, dtype=np.float64),
                                         np.zeros(3), np.zeros(3))])
        self._last_ns = int(stamp_ns)
        self._next_k = int(stamp_ns) * self._rate_num // (10**9 * self._rate_den) + 1
        self._rng = np.random.default_rng(self.config.noise.seed)
        self._bias = [np.zeros(3), np.zeros(3)]

    def update(self, stamp_ns: int, map_T_base: np.ndarray, linear: np.ndarray, angular: np.ndarray) -> list[ImuSample]:
        """Feed the state after a kinematic tick ending at ``stamp_ns``: map_T_base (4, 4) base_link
        pose in map, metres; linear / angular (3,) its body twist (the motion between the ticks is
        taken from the two poses). Returns the samples stamped in (previous stamp, stamp_ns]; none
        for a stamp at or before the previous one."""
        return self.update_batch(stamp_ns, map_T_base, linear, angular).samples()

    def update_batch(self, stamp_ns: int, map_T_base: np.ndarray, linear: np.ndarray,
                     angular: np.ndarray) -> ImuBatch:
        """``update`` with the samples as one ImuBatch (for long records: no object per sample)."""
        stamp_ns = int(stamp_ns)
        if self._last_ns is None:
            self.reset(stamp_ns, map_T_base, linear, angular)
        elif stamp_ns > self._last_ns:
            last = self._segments[-1]
            start_pose = last.pose(last.end_ns)
            dt = (stamp_ns - self._last_ns) * 1e-9
            v, w = log_se3(np.linalg.solve(start_pose, np.asarray(map_T_base, dtype=np.float64)))
            self._segments.append(_Segment(float(self._last_ns - self._origin), float(stamp_ns - self._origin),
                                           start_pose, v / dt, w / dt))
            self._last_ns = stamp_ns
        last_k = stamp_ns * self._rate_num // (10**9 * self._rate_den)
        stamps = np.array([self._stamp(k) for k in range(self._next_k, last_k + 1)], dtype=np.int64)
        self._next_k = max(self._next_k, last_k + 1)
        if len(stamps) and self._at_rest():
            ideal = [self._ideal(int(stamps[0]))] * len(stamps)
        else:
            ideal = [self._ideal(int(t)) for t in stamps]
        rates = np.array([r for r, _, _ in ideal]).reshape(-1, 3)
        forces = np.array([f for _, f, _ in ideal]).reshape(-1, 3)
        orientation = np.array([q for _, _, q in ideal]).reshape(-1, 4) if self.config.orientation else None
        rates, forces = self._noisy(rates, forces)
        # keep what the next interval can reach back to
        horizon = self._stamp(self._next_k) - self._origin - 2 * self.period_ns
        while len(self._segments) > 1 and self._segments[1].end_ns < horizon:
            self._segments.popleft()
        return ImuBatch(stamps, rates, forces, orientation)

    def _at_rest(self) -> bool:
        """Whether every kept segment is motionless (then every sample reads the same)."""
        return all(not np.any(seg.linear) and not np.any(seg.angular) for seg in self._segments)

    def _stamp(self, k: int) -> int:
        """Stamp of sample k, ns: k·10⁹/rate, rounded down."""
        return k * 10**9 * self._rate_den // self._rate_num

    def _segment_at(self, t_ns: float) -> _Segment:
        """The segment holding t in (start, end] (left limits: a tick's velocity step comes after it)."""
        for seg in self._segments:
            if t_ns <= seg.end_ns:
                return seg
        return self._segments[-1]

    def _imu_velocity(self, t_ns: float) -> np.ndarray:
        """(3,) world velocity of the IMU point just before ``t_ns``, m/s."""
        seg = self._segment_at(t_ns)
        R = seg.pose(t_ns)[:3, :3]
        r = self.base_T_imu[:3, 3]
        return R @ (seg.linear + np.cross(seg.angular, r))

    def _mean_rate(self, a_ns: float, b_ns: float) -> np.ndarray:
        """(3,) mean body angular rate (base axes) over (a, b]."""
        total = np.zeros(3)
        for seg in self._segments:
            overlap = min(b_ns, seg.end_ns) - max(a_ns, seg.start_ns)
            if overlap > 0:
                total += seg.angular * overlap
        return total / (b_ns - a_ns)

    def _ideal(self, stamp_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(rate (3,), specific force (3,), orientation (4,) or None) of the sample stamped ``stamp_ns``, noise-free."""
        s_ns = float(stamp_ns - self._origin)
        a_ns = s_ns - self.period_ns
        R_bi = self.base_T_imu[:3, :3]
        rate = R_bi.T @ self._mean_rate(a_ns, s_ns)
        R_start = self._segment_at(a_ns).pose(a_ns)[:3, :3] @ R_bi
        R_mid = R_start @ Rotation.from_rotvec(rate * self.period_ns * 0.5e-9).as_matrix()
        accel_world = (self._imu_velocity(s_ns) - self._imu_velocity(a_ns)) / (self.period_ns * 1e-9)
        specific_force = R_mid.T @ (accel_world + np.array([0.0, 0.0, self.config.gravity]))
        orientation = None
        if self.config.orientation:
            orientation = Rotation.from_matrix(self._segment_at(s_ns).pose(s_ns)[:3, :3] @ R_bi).as_quat()
        return rate, specific_force, orientation

    def _noisy(self, rates: np.ndarray, forces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) ideal rates and forces plus white noise and the random-walk biases."""
        n = len(rates)
        if n == 0 or not any(self._sigma + self._walk):
            return rates, forces
        draws = self._rng.standard_normal((n, 12))
        out = []
        for i, ideal in enumerate((rates, forces)):
            white, walk = draws[:, 6 * i:6 * i + 3], draws[:, 6 * i + 3:6 * i + 6]
            steps = np.cumsum(walk * self._walk[i], axis=0)
            bias_before = self._bias[i] + np.vstack([np.zeros(3), steps[:-1]])
            out.append(ideal + bias_before + self._sigma[i] * white)
            self._bias[i] = self._bias[i] + steps[-1]
        return out[0], out[1]
