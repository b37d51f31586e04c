"""``worldfm bench-bag``: what ``scene-build bag`` recovers from recordings of known worlds, and what it costs.

* round trip: a drive through a procedural room recorded as the simulator records it
  (``sim.trajectory.TrajectoryBag``: rgb8, 32FC1 depth, camera_info, /tf, /tf_static), rebuilt,
  and rendered at the recorded poses by the same simulator: PSNR against the recorded images;
* drift: the same drive with its odometry drifting linearly to ``drift_m`` / ``drift_deg`` at the
  end: pose error of the recorded and the refined poses, and the rebuilt world's PSNR against the
  clean-pose one;
* real sequence: frames of ICL-NUIM (``../shared/data``) written as a robot records them (colour
  and depth on their own stamps, /tf odom → base_link, /tf_static base_link → camera optical frame)
  and built by ``scene-build bag`` and by ``scene-build rgbd`` from the same frames, both scored
  on held-out frames;
* cost: build time and peak RSS (this process's, ``ru_maxrss``) per bag size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

HELP = "measure scene-build bag: round trip, drift recovery, a real sequence vs scene-build rgbd, time and memory"


def drifted(map_T_base: np.ndarray, drift_m: float, drift_deg: float) -> np.ndarray:
    """(N, 4, 4) base poses whose error grows linearly from 0 to ``drift_m`` along +x of the map
    and ``drift_deg`` of yaw at the last pose, as wheel odometry drifts."""
    out = np.array(map_T_base, np.float64, copy=True)
    n = len(out)
    for i in range(n):
        s = i / max(n - 1, 1)
        out[i, :3, :3] = Rotation.from_euler("z", drift_deg * s, degrees=True).as_matrix() @ out[i, :3, :3]
        out[i, 0, 3] += drift_m * s
    return out


def record_drive(sim, map_T_base: np.ndarray, stamps_ns: np.ndarray, path: str | Path,
                 recorded_T_base: np.ndarray | None = None) -> list:
    """Record the simulator's camera at the base poses (N, 4, 4) into the bag folder ``path`` with
    the simulator's bag writer; ``recorded_T_base``: the poses written to /tf and odom instead of the
    true ones (a drifting odometry). Returns the rendered frames."""
    from worldfm_ros.sim.trajectory import TrajectoryBag, body_velocities

    recorded = map_T_base if recorded_T_base is None else recorded_T_base
    linear, angular = body_velocities(recorded, stamps_ns)
    bag = TrajectoryBag(path, sim.sensors, sim.config.frames)
    frames = []
    try:
        for i, (T, stamp) in enumerate(zip(map_T_base, stamps_ns)):
            rendered = sim.render_cameras(T, int(stamp), [0], seed=i)
            bag.write(rendered, recorded[i], linear[i], angular[i])
            frames.append(rendered[0])
    finally:
        bag.close()
    return frames


def room_simulator(width: int, height: int, scene_dir: Path, seed: int = 5):
    """A simulator on the anchor backend in a procedural room (saved to ``scene_dir``)."""
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.config import load_config
    from worldfm_ros.scene.procedural import make_room_scene, random_room
    from worldfm_ros.scene.store import save_scene
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator

    if not (scene_dir / "scene.yaml").is_file():
        room = random_room(seed=seed, size=(6.0, 5.0, 2.8), num_obstacles=3)
        save_scene(make_room_scene(room, PinholeCamera.from_fov(2 * width, 2 * height, 90.0), num_views=24,
                                   num_keyframes=4), scene_dir)
    return simulator(width, height, scene_dir)


def simulator(width: int, height: int, scene):
    from worldfm_ros.config import load_config
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator

    sim = Simulator(load_config(SimConfig, {"camera": {"width": width, "height": height, "hfov_deg": 90.0},
                                            "backend": {"name": "anchor"}}))
    sim.load_scene(scene)
    return sim


def drive(n: int, step_m: float = 0.06, turn_rad: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, 4) base poses of an arc through the procedural room and (N,) stamps at 10 Hz."""
    from worldfm_ros.sim.simulator import planar_pose

    poses = np.stack([planar_pose(2.0 + step_m * i, 2.0 + 0.3 * np.sin(0.1 * i), 0.0, turn_rad * i) for i in range(n)])
    return poses, 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 100_000_000


def replay_psnr(scene, frames: list, map_T_base: np.ndarray, width: int, height: int) -> float:
    """Mean PSNR (dB) of ``scene`` rendered by the simulator at the base poses against ``frames``."""
    from worldfm_ros.eval.metrics import psnr

    sim = simulator(width, height, scene)
    values = [psnr(sim.render_cameras(T, 0, [0], seed=i)[0].rgb, f.rgb) for i, (T, f) in enumerate(zip(map_T_base, frames))]
    return float(np.mean(values))


def pose_errors(estimated: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(max translation error m, max rotation error deg) of (N, 4, 4) poses."""
    delta = np.einsum("nji,njk->nik", truth[:, :3, :3], estimated[:, :3, :3])
    cos = np.clip((np.trace(delta, axis1=1, axis2=2) - 1) / 2, -1, 1)
    return (float(np.max(np.linalg.norm(estimated[:, :3, 3] - truth[:, :3, 3], axis=1))),
            float(np.degrees(np.max(np.arccos(cos)))))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="outputs/bench_bag", help="work folder (default outputs/bench_bag)")
    parser.add_argument("--frames", type=int, default=40, help="frames of the round-trip drive (default 40)")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"),
                        help="round-trip camera size (default 320 240)")
    parser.add_argument("--real-frames", type=int, default=60, help="ICL-NUIM frames written to a bag (default 60)")
    parser.add_argument("--memory-frames", type=int, nargs="*", default=[100, 300],
                        help="sizes of 640x480 bags to time (default 100 300)")


def run(args: argparse.Namespace) -> int:
    from worldfm_ros.scene.bench_bag_run import run_all

    return run_all(args)
