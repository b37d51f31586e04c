"""`worldfm bench-node`: the node under load with its image and depth consumers in processes of
their own, as a perception stack runs them; what it reports is what those processes received."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldfm_ros.ros.dds import PROFILE_VARIABLE, shm_shortage

ROOT = Path(__file__).resolve().parents[2]


def bench_node(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != PROFILE_VARIABLE}  # bench-node sets it up itself
    done = subprocess.run([sys.executable, "-m", "worldfm_ros.cli", "bench-node", "--json", str(out), *args],
                          capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| target Hz | image Hz |" in done.stdout
    return json.loads(out.read_text())


def test_consumer_processes_receive_every_published_640x480_image_and_depth(tmp_path):
    if shm_shortage():
        pytest.skip(f"the node keeps Fast DDS's defaults here: {shm_shortage()}")
    result = bench_node(tmp_path, "--backend", "anchor", "--rate", "5", "--seconds", "3")
    (row,) = result["rates"]
    assert row["published"] >= 5
    for name in ("image", "depth"):
        consumer = row["consumers"][name]
        assert consumer["lost"] == 0, f"{name}: {consumer['lost']} of {row['published']} frames lost"
        assert consumer["frames"] >= row["published"] - 1  # the window's edges
        assert 0 < consumer["latency_p95"] < 5000
    assert math.isfinite(row["stages"]["publish"])


def test_each_rate_is_measured_in_its_own_session(tmp_path):
    result = bench_node(tmp_path, "--backend", "anchor", "--size", "64", "48", "--rate", "4", "8",
                        "--seconds", "2", "--consumers", "image")
    assert [r["target_hz"] for r in result["rates"]] == [4.0, 8.0]
    assert all(set(r["consumers"]) == {"image"} for r in result["rates"])


def test_a_rig_sweep_reports_each_camera_and_the_imu_as_best_effort_and_reliable_subscribers_got_it(tmp_path):
    out = tmp_path / "rig.json"
    env = {k: v for k, v in os.environ.items() if k != PROFILE_VARIABLE}
    done = subprocess.run([sys.executable, "-m", "worldfm_ros.cli", "bench-node", "--json", str(out), "--backend",
                           "anchor", "--size", "64", "48", "--rate", "5", "--seconds", "2", "--cameras", "1", "2"],
                          capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| cameras | target Hz | per-camera Hz |" in done.stdout
    one, two = json.loads(out.read_text())["rigs"]
    assert list(one["per_camera"]) == ["cam0"] and list(two["per_camera"]) == ["cam0", "cam1"]
    assert all(c["frames"] >= 5 for c in two["per_camera"].values())
    for qos in ("sensor_data", "reliable"):
        imu = two["imu"][qos]
        assert imu["expected"] >= 200 and imu["received"] > 0.9 * imu["expected"], (qos, imu)
