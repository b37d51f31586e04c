"""Many robots in one world, stepped together: the kinematics and collision of ``sim.simulator``
as numpy arrays over robots.

``RobotBatch`` holds N ground robots of one configuration that share one ``Simulator`` (its
world, frame pipeline, collision checker and sensor rig; only the Simulator's own robot goes
unused), each with its own pose, velocity, command, clock and episode. Every operation is the
one ``KinematicModel`` and ``Simulator`` apply to a single robot, done elementwise (or as
stacked matrix products, which numpy computes item by item as for one matrix), so robot i of a
batch follows, bit for bit, the path a ``Simulator`` of its own would follow. The IMU is not
simulated here.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from worldfm_ros.camera import invert_pose
from worldfm_ros.frame.pipeline import Frame, View
from worldfm_ros.sim.config import MAX_STEP_SUBSTEPS
from worldfm_ros.sim.simulator import Observation, Simulator, camera_views

#: metres the obstacle-distance bound of a robot is lowered by: far above the rounding of a few
#: float64 operations on metre-scale poses, far below any radius
DISTANCE_BOUND_SLACK_M = 1e-6


def exp_se3_batch(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(N, 4, 4) ``geometry.exp_se3`` of each row of body twists v, w (N, 3) (metres, radians,
    multiplied by the duration), equal to it bit for bit."""
    T = np.tile(np.eye(4), (len(v), 1, 1))
    theta = np.sqrt(np.vecdot(w, w))  # = np.linalg.norm of each row (a dot product)
    T[:, :3, :3] = Rotation.from_rotvec(w).as_matrix()
    T[:, :3, 3] = v
    arc = np.flatnonzero(theta >= 1e-9)
    if len(arc):
        th = theta[arc]
        k = w[arc] / th[:, None]
        zero = np.zeros(len(arc))
        K = np.stack([zero, -k[:, 2], k[:, 1], k[:, 2], zero, -k[:, 0], -k[:, 1], k[:, 0], zero], 1).reshape(-1, 3, 3)
        # math.cos/sin as the single-robot path calls them (numpy's vector versions may differ by an ulp)
        a = np.array([(1 - math.cos(t)) / t for t in th])
        b = np.array([(t - math.sin(t)) / t for t in th])
        V = np.eye(3) + a[:, None, None] * K + b[:, None, None] * (K @ K)
        T[arc, :3, 3] = (V @ v[arc][:, :, None])[:, :, 0]
    return T


class RobotBatch:
    """N robots of ``sim.config`` in ``sim``'s world.

    odom_T_base: (N, 4, 4) base_link poses in the odom frame, metres; linear / angular: (N, 3)
    body velocities (m/s, rad/s); time_ns: (N,) int64 each robot's simulated clock; collided:
    (N,) bool the last step was blocked; steps: (N,) steps since each robot's reset.
    """

    def __init__(self, sim: Simulator, num_robots: int) -> None:
        if sim.pipeline is None:
            raise ValueError("RobotBatch: the simulator has no world loaded")
        self.sim = sim
        self.config = sim.config
        self.num_robots = n = int(num_robots)
        self.map_T_odom = sim.map_T_odom
        self._odom_T_map = invert_pose(self.map_T_odom)
        self.odom_T_base = np.tile(np.eye(4), (n, 1, 1))
        self.linear, self.angular = np.zeros((n, 3)), np.zeros((n, 3))
        self._command_linear, self._command_angular = np.zeros((n, 3)), np.zeros((n, 3))
        self._command_time = np.full(n, np.nan)  # NaN: no command yet
        self.time_ns = np.zeros(n, np.int64)
        self.collided = np.zeros(n, bool)
        self.steps = np.zeros(n, np.int64)
        self.episode_seed: list[int | None] = [None] * n
        self._known_xy = np.zeros((n, 2))
        self._known_distance = np.full(n, np.nan)
        # Each robot's last sub-step motion and the twist it came from: at a steady velocity every
        # sub-step asks for the same motion (the same bits in, so the same matrix out).
        self._twist = np.full((n, 6), np.nan)
        self._motion = np.tile(np.eye(4), (n, 1, 1))

    @property
    def map_T_base(self) -> np.ndarray:
        """(N, 4, 4) base_link poses in the map frame."""
        return self.map_T_odom @ self.odom_T_base

    def reset(self, robot: int, map_T_base: np.ndarray | None, seed: int | None) -> None:
        """``Simulator.reset`` of one robot: at ``map_T_base`` (default the configured initial pose),
        at rest, clock 0; ValueError, and nothing changes, for a pose the simulator refuses."""
        pose = self.sim.check_map_pose(self.map_T_odom if map_T_base is None else map_T_base)
        self.odom_T_base[robot] = self._odom_T_map @ pose
        self.linear[robot] = self.angular[robot] = 0.0
        self._command_linear[robot] = self._command_angular[robot] = 0.0
        self._command_time[robot] = np.nan
        self.time_ns[robot] = 0
        self.collided[robot] = False
        self.steps[robot] = 0
        self._known_distance[robot] = np.nan
        if seed is not None:
            self.episode_seed[robot] = int(seed)

    def step(self, robots: np.ndarray, linear: np.ndarray, angular: np.ndarray, dt: float) -> None:
        """``Simulator.step`` of robots (K,) int: body twists linear, angular (K, 3) (m/s, rad/s,
        finite) for ``dt`` seconds, sub-stepped at sim_rate_hz and blocked by collisions."""
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"step dt must be a positive number of seconds, got {dt}")
        rate = self.config.sim_rate_hz
        if dt > MAX_STEP_SUBSTEPS / rate:
            raise ValueError(f"step dt: expected at most {MAX_STEP_SUBSTEPS / rate:g} s, got {dt:g}")
        lin, ang = self._project(np.asarray(linear, np.float64), np.asarray(angular, np.float64))
        n = max(1, math.ceil(dt * rate - 1e-9))
        blocked = np.zeros(len(robots), bool)
        for i in range(n):
            t0 = self.time_ns[robots] * 1e-9 + dt * i / n
            self._command_linear[robots], self._command_angular[robots] = lin, ang
            self._command_time[robots] = t0
            self._advance(robots, dt / n, t0 + dt / n)
            blocked |= self.collided[robots]
        self.collided[robots] = blocked
        self.time_ns[robots] += int(round(dt * 1e9))
        self.steps[robots] += 1

    def _project(self, lin: np.ndarray, ang: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``KinematicModel._project`` of each row: drop what the model cannot do, clip to the limits."""
        k = self.config.kinematics
        lin, ang = lin.copy(), ang.copy()
        if k.model == "diff_drive":
            lin[:, 1:] = 0.0
            ang[:, :2] = 0.0
        elif k.model == "holonomic":
            lin[:, 2] = 0.0
            ang[:, :2] = 0.0
        return np.clip(lin, -k.max_linear, k.max_linear), np.clip(ang, -k.max_angular, k.max_angular)

    def _advance(self, robots: np.ndarray, dt: float, now_s: np.ndarray) -> None:
        """``Simulator.advance`` of robots: integrate ``dt`` seconds ending at ``now_s`` (K,)."""
        before = self.odom_T_base[robots]
        k = self.config.kinematics
        # KinematicModel.step: a command drives the part of the step before it expires
        expiry = self._command_time[robots] + k.cmd_timeout_s
        active = np.where(np.isnan(expiry), 0.0, np.minimum(np.maximum(expiry - (now_s - dt), 0.0), dt))
        driven = active > 0.0
        self._integrate(robots[driven], self._command_linear[robots[driven]], self._command_angular[robots[driven]],
                        active[driven])
        coast = dt - active > 0.0
        self._integrate(robots[coast], np.zeros((coast.sum(), 3)), np.zeros((coast.sum(), 3)), (dt - active)[coast])
        self.collided[robots] = False
        collision = self.sim.collision
        if collision is None or not self.config.collision.enabled:
            return
        after = self.odom_T_base[robots]
        moved = np.flatnonzero(np.any(before[:, :3, 3] != after[:, :3, 3], axis=1))
        if len(moved) == 0:
            return
        # Blocked when entering the robot's radius while getting nearer; a robot whose distance is
        # bounded above the radius (known distance at a nearby pose, minus how far it is from
        # there) cannot be, and asks the tree nothing: most robots, most sub-steps.
        ids = robots[moved]
        xy = (self.map_T_odom @ after[moved])[:, :2, 3]
        bound = self._known_distance[ids] - np.hypot(*(xy - self._known_xy[ids]).T) - DISTANCE_BOUND_SLACK_M
        ask = np.flatnonzero(~(bound >= self.config.collision.radius))  # NaN (nothing known) asks too
        if len(ask) == 0:
            return
        moved, ids = moved[ask], ids[ask]
        was = collision.min_distances(self.map_T_odom @ before[moved])
        now = collision.min_distances(self.map_T_odom @ after[moved])
        hit = (now < self.config.collision.radius) & (now < was)
        self._remember(ids[~hit], self.map_T_odom @ after[moved[~hit]], now[~hit])
        self._remember(ids[hit], self.map_T_odom @ before[moved[hit]], was[hit])
        stopped = ids[hit]
        self.odom_T_base[stopped] = before[moved[hit]]
        self.linear[stopped] = self.angular[stopped] = 0.0
        self.collided[stopped] = True

    def _remember(self, robots: np.ndarray, map_T_base: np.ndarray, distance: np.ndarray) -> None:
        """The exact obstacle distance (m) of robots at map poses (K, 4, 4), for the bound above."""
        self._known_xy[robots] = map_T_base[:, :2, 3]
        self._known_distance[robots] = distance

    def _integrate(self, robots: np.ndarray, lin: np.ndarray, ang: np.ndarray, dt: np.ndarray) -> None:
        """``KinematicModel._integrate`` of robots toward twists (K, 3) for dt (K,) seconds each."""
        if len(robots) == 0:
            return
        k = self.config.kinematics
        d = dt[:, None]
        self.linear[robots] = approach(self.linear[robots], lin, k.max_linear_accel * d)
        self.angular[robots] = approach(self.angular[robots], ang, k.max_angular_accel * d)
        twist = np.concatenate([self.linear[robots] * d, self.angular[robots] * d], axis=1)  # (K, 6)
        new = np.flatnonzero(np.any(twist.view(np.int64) != self._twist[robots].view(np.int64), axis=1))
        if len(new):
            self._twist[robots[new]] = twist[new]
            self._motion[robots[new]] = exp_se3_batch(twist[new, :3], twist[new, 3:])
        self.odom_T_base[robots] = self.odom_T_base[robots] @ self._motion[robots]

    def views(self, robots: np.ndarray, map_T_base: np.ndarray) -> list[View]:
        """The primary camera's view of each of robots (K,) at its pose ``map_T_base`` (K, 4, 4)."""
        out = []
        for j, i in enumerate(robots):
            seed = self.episode_seed[i]
            seed = None if seed is None else (seed * 1_000_003 + int(self.steps[i])) % 2**31
            out += camera_views(self.sim.sensors, map_T_base[j], int(self.time_ns[i]), [0], seed,
                                self.config.backend.seed, (self.linear[i].copy(), self.angular[i].copy()))
        return out

    def observations(self, robots: np.ndarray, frames: list[Frame], map_T_base: np.ndarray) -> list[Observation]:
        """``Simulator.observe`` of robots (K,), given their primary frames and map poses (K, 4, 4)."""
        collision = self.sim.collision
        distance = np.full(len(robots), np.inf)
        if collision is not None:
            known = np.all(self._known_xy[robots] == map_T_base[:, :2, 3], axis=1) & ~np.isnan(self._known_distance[robots])
            distance[known] = self._known_distance[robots[known]]
            if not known.all():
                distance[~known] = collision.min_distances(map_T_base[~known])
        lo, hi = self.sim._extent if self.sim._extent is not None else (None, None)
        out = []
        for j, i in enumerate(robots):
            inside = True if lo is None else bool(np.all(map_T_base[j, :2, 3] >= lo[:2] - 0.5)
                                                  and np.all(map_T_base[j, :2, 3] <= hi[:2] + 0.5))
            out.append(Observation(frames[j], map_T_base[j], self.odom_T_base[i].copy(), self.linear[i].copy(),
                                   self.angular[i].copy(), int(self.time_ns[i]), bool(self.collided[i]),
                                   float(distance[j]), bool(self.collided[i]) or not inside,
                                   {self.sim.sensors.cameras[0].name: frames[j]}))
        return out


def approach(current: np.ndarray, target: np.ndarray, max_delta: np.ndarray) -> np.ndarray:
    """Each row of ``current`` moved toward ``target`` by at most ``max_delta`` per component."""
    return current + np.clip(target - current, -max_delta, max_delta)

