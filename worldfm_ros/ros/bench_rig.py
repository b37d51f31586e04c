"""`worldfm bench-node --cameras N ...`: the rig under load, per camera and for the IMU.

A rig of N cameras (``cam0`` … ``cam<N-1>``, 640×480 by default, facing N directions around
base_link, at the node's rate) and an IMU at 200 Hz runs in the node of ``bench-node``. Per
camera: the rate and the largest gap between consecutive published frames (from its
``frame_stats``). For the IMU, two subscribers in processes of their own read ``imu/data`` as
VIO front-ends do, one with ``qos_profile_sensor_data`` (best effort, depth 5), one reliable
(depth 10): the samples lost (the IMU stamps lie on a grid of 1 / rate, so every missing grid
stamp is a lost sample), the largest stamp gap and the largest gap between receipts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

#: the IMU of the bench rig, Hz
IMU_RATE_HZ = 200.0
#: samples stamped this close to the end of the window may still be in flight, s: not counted
IN_FLIGHT_S = 0.3


def camera_names(n: int) -> list[str]:
    return [f"cam{i}" for i in range(n)]


def write_rig(path: Path, cameras: int, width: int, height: int, imu_rate_hz: float = IMU_RATE_HZ) -> Path:
    """A rig YAML at ``path``: ``cameras`` cameras of width×height px, 90° hfov, at the node's rate,
    1 m above base_link and turned 360°/cameras apart in yaw, and an IMU at ``imu_rate_hz``."""
    rig = {"cameras": [{"name": name, "rate_hz": 0.0,
                        "mount": {"xyz": [0.1, 0.0, 1.0], "rpy": [0.0, 0.0, float(2 * np.pi * i / cameras)]},
                        "camera": {"width": width, "height": height, "hfov_deg": 90.0}}
                       for i, name in enumerate(camera_names(cameras))],
           "imu": {"enabled": True, "rate_hz": imu_rate_hz, "frame_id": "imu_link",
                   "mount": {"xyz": [0.0, 0.0, 0.5], "rpy": [0.0, 0.0, 0.0]}}}
    path.write_text(yaml.safe_dump(rig, sort_keys=False))
    return path


def stream_figures(stamps_ns: list[int], start_ns: int, end_ns: int) -> dict:
    """Rate (Hz) and the largest gap (ms) of the stamps in [start_ns, end_ns] (a camera's frames)."""
    s = np.sort([t for t in stamps_ns if start_ns <= t <= end_ns])
    if s.size < 2:
        return {"frames": int(s.size), "rate_hz": 0.0, "max_gap_ms": float("nan")}
    return {"frames": int(s.size), "rate_hz": (s.size - 1) / ((s[-1] - s[0]) * 1e-9),
            "max_gap_ms": float(np.diff(s).max() * 1e-6)}


def imu_figures(stamps_ns: list[int], receipt_ns: list[int], start_ns: int, end_ns: int, rate_hz: float) -> dict:
    """Samples expected, received and lost (count and %) among the IMU grid stamps in
    [start_ns, end_ns - IN_FLIGHT_S]; the largest stamp gap and the largest receipt gap, ms."""
    period = int(round(1e9 / rate_hz))
    hi = end_ns - int(IN_FLIGHT_S * 1e9)
    inside = sorted({(t, r) for t, r in zip(stamps_ns, receipt_ns) if start_ns <= t <= hi})
    stamps = np.array([t for t, _ in inside], dtype=np.int64)
    if stamps.size == 0:
        return {"expected": 0, "received": 0, "lost": 0, "lost_pct": float("nan"),
                "max_gap_ms": float("nan"), "max_receipt_gap_ms": float("nan")}
    phase = int(stamps[0] % period)  # the IMU's clock: stamps k·period (+ phase)
    first = start_ns + (phase - start_ns) % period
    last = hi - (hi - phase) % period
    expected = (last - first) // period + 1
    received = int(np.count_nonzero((stamps - phase) % period == 0))
    edges = np.concatenate([[first - period], stamps, [last + period]])
    receipts = np.sort(np.array([r for _, r in inside], dtype=np.int64))
    return {"expected": int(expected), "received": received, "lost": int(expected - received),
            "lost_pct": 100.0 * (expected - received) / expected,
            "max_gap_ms": float(np.diff(edges).max() * 1e-6),
            "max_receipt_gap_ms": float(np.diff(receipts).max() * 1e-6) if receipts.size > 1 else float("nan")}
