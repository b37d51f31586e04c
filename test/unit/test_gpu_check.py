"""benchmarks/gpu_check.sh: its dry run on the CPU, its time limits and what it says without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from worldfm_ros.eval.gpu_check import Part, plan, run_part

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    done = subprocess.run([str(SCRIPT), str(out), "--dry-run"], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHON": sys.executable})
    return out, done


def test_dry_run_exits_zero_and_writes_one_json_and_one_markdown_table(dry_run):
    out, done = dry_run
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "gpu_check.json").read_text())
    table = (out / "gpu_check.md").read_text()
    assert report["machine"]["mode"] == "dry run on the CPU" and report["machine"]["torch"] == torch.__version__
    names = [p["name"] for p in report["parts"]]
    assert names == [p.name for p in plan(out, dry_run=True)]
    for name in names:
        assert f"| {name} |" in table


def test_dry_run_measures_the_renderer_and_every_model_variant_it_can_run_on_the_cpu(dry_run):
    out, _ = dry_run
    parts = {p["name"]: p for p in json.loads((out / "gpu_check.json").read_text())["parts"]}
    assert parts["render"]["status"] == "ok" and parts["render"]["figures"]["rows"][0]["fps"] > 0
    for name in ("xl2-1step-eager", "xl2-2step-eager", "onnxruntime-cuda"):
        assert parts[name]["status"] == "ok", parts[name]
        assert parts[name]["figures"]["fps_cached"] > 0
    assert parts["xl2-2step-eager"]["figures"]["steps"] == 2
    assert parts["onnxruntime-cuda"]["figures"]["backend"] == "onnxruntime"


def test_dry_run_skips_cuda_graphs_saying_they_need_a_gpu(dry_run):
    out, _ = dry_run
    parts = {p["name"]: p for p in json.loads((out / "gpu_check.json").read_text())["parts"]}
    for steps in (1, 2):
        part = parts[f"xl2-{steps}step-cuda-graphs"]
        assert part["status"] == "skipped" and "CUDA device" in part["reason"]


def test_dry_run_runs_the_cuda_tests_through_pytest(dry_run):
    out, _ = dry_run
    parts = {p["name"]: p for p in json.loads((out / "gpu_check.json").read_text())["parts"]}
    assert parts["cuda-tests"]["status"] == "ok", parts["cuda-tests"]
    assert "skipped" in parts["cuda-tests"]["summary"] or "passed" in parts["cuda-tests"]["summary"]


def test_a_part_past_its_time_limit_is_stopped_and_reported(tmp_path):
    part = Part("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], limit_s=2.0)
    start = time.monotonic()
    result = run_part(part, part.limit_s, tmp_path / "sleeper.log")
    assert result.status == "timeout" and "2 s limit" in result.reason
    assert time.monotonic() - start < 20


def test_a_failing_part_is_reported_with_its_last_output_line(tmp_path):
    part = Part("broken", [sys.executable, "-c", "raise SystemExit('no such model')"], limit_s=30.0)
    result = run_part(part, part.limit_s, tmp_path / "broken.log")
    assert result.status == "failed" and result.reason == "exit 1: no such model"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_without_cuda_the_check_refuses_in_one_line_and_points_to_the_dry_run(tmp_path):
    done = subprocess.run([str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"worldfm gpu-check: error: torch {torch.__version__} sees no CUDA device; --dry-run checks the script "
        "on the CPU"]


def test_without_onnxruntime_gpu_the_onnxruntime_part_is_skipped_naming_the_package(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA execution provider")
    part = next(p for p in plan(tmp_path, dry_run=False) if p.name == "onnxruntime-cuda")
    assert "onnxruntime-gpu" in part.skip and "CUDAExecutionProvider" in part.skip
