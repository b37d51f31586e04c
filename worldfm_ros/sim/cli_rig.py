"""`worldfm rig-calibration`: a rig's calibration in the Kalibr formats VIO stacks read.

Writes ``camchain.yaml`` (per camera: ``T_cam_imu``, pinhole intrinsics, distortion, resolution,
topic; ``T_cn_cnm1`` between consecutive cameras) and ``imu.yaml`` (noise densities and random
walks, rate, topic), exactly what the simulator renders and publishes, so that VINS-Fusion,
OpenVINS, ORB-SLAM3 or Kimera take it unchanged (their configs are written from Kalibr's).
``T_cam_imu`` maps IMU-frame points into the camera's optical frame (Kalibr's convention).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HELP = "write a sensor rig's camera-IMU calibration as Kalibr camchain.yaml and imu.yaml"

#: ROS distortion_model -> Kalibr's (radtan takes k1 k2 p1 p2; plumb_bob's k3 has no place there)
KALIBR_DISTORTION = {"plumb_bob": "radtan", "equidistant": "equidistant"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rig", required=True, help="stereo | stereo_imu | a rig YAML")
    parser.add_argument("--namespace", default="", help="the node's namespace, for the topic names")
    parser.add_argument("--output", "-o", default="", help="folder to write the two files to (default: print them)")


def kalibr_files(rig, namespace: str = "") -> dict[str, dict]:
    """{'camchain.yaml': ..., 'imu.yaml': ...} (imu.yaml only with an IMU) for a SensorRig."""
    from worldfm_ros.errors import ConfigError

    prefix = f"/{namespace.strip('/')}/" if namespace.strip("/") else "/"
    base_T_imu = rig.imu.mount.matrix() if rig.imu.enabled else np.eye(4)
    chain: dict[str, dict] = {}
    previous = None
    for i, cam in enumerate(rig.cameras):
        model = cam.lens.distortion_model
        coeffs = list(cam.lens.D)
        if model == "plumb_bob":
            if len(coeffs) > 4 and abs(coeffs[4]) > 0:
                raise ConfigError(f"camera {cam.name!r}: Kalibr's radtan model has no k3 (got {coeffs[4]})")
            coeffs = (coeffs + [0.0] * 4)[:4]
        base_T_cam = cam.mounted.base_T_optical
        k = cam.camera
        entry = {
            "camera_model": "pinhole",
            "intrinsics": [k.fx, k.fy, k.cx, k.cy],
            "distortion_model": KALIBR_DISTORTION[model],
            "distortion_coeffs": [float(c) for c in coeffs],
            "resolution": [k.width, k.height],
            "rostopic": f"{prefix}{cam.name}/image_raw",
            "timeshift_cam_imu": 0.0,
        }
        if rig.imu.enabled:
            entry = {"T_cam_imu": _rows(np.linalg.inv(base_T_cam) @ base_T_imu), **entry}
        if previous is not None:
            entry["T_cn_cnm1"] = _rows(np.linalg.inv(base_T_cam) @ previous)
        chain[f"cam{i}"] = entry
        previous = base_T_cam
    out = {"camchain.yaml": chain}
    if rig.imu.enabled:
        n = rig.imu.noise
        out["imu.yaml"] = {
            "rostopic": f"{prefix}imu/data",
            "update_rate": rig.imu.rate_hz,
            "accelerometer_noise_density": n.accelerometer_noise_density,
            "accelerometer_random_walk": n.accelerometer_random_walk,
            "gyroscope_noise_density": n.gyroscope_noise_density,
            "gyroscope_random_walk": n.gyroscope_random_walk,
        }
    return out


def _rows(T: np.ndarray) -> list[list[float]]:
    return [[float(round(v, 12)) + 0.0 for v in row] for row in T]


def run(args: argparse.Namespace) -> int:
    import yaml

    from worldfm_ros.sensors.sensor_rig import build_rig, load_rig

    rig = build_rig(load_rig(args.rig), 10.0, where=args.rig)
    files = kalibr_files(rig, args.namespace)
    for name, data in files.items():
        # matrices and vectors one row per line, as Kalibr writes them
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None if name == "camchain.yaml" else False)
        if args.output:
            Path(args.output).mkdir(parents=True, exist_ok=True)
            (Path(args.output) / name).write_text(text)
            print(f"wrote {Path(args.output) / name}")
        else:
            print(f"# {name}\n{text}")
    return 0
