"""``worldfm gpu-check``: every CUDA figure of the project in one call, within a time budget.

Runs, each part in its own process with its own time limit (and all of them within
``--budget`` seconds), the existing benchmarks on the GPU:

* ``render``: ``worldfm bench-render`` at 250 k points, 640x480 (target >= 1000 FPS);
* ``xl2-…``: ``worldfm bench-model --config xl_2`` at 512x512 fp16 (random weights, SDXL-VAE
  codec), 1 and 2 steps, eager, CUDA graphs and ``torch.compile``; and 1 step eager on batches of
  4 frames (``--batch 4``: four robots or cameras served by one generate call);
* ``onnxruntime-cuda``: the same model through ONNX Runtime's CUDA execution provider (skipped,
  with the reason, when onnxruntime-gpu is not installed);
* ``batched-env``: ``worldfm bench-env`` with the batched env (256 robots in one world) at 128x128
  on CUDA, anchor backend (target >= 10,000 env-steps/s);
* ``cuda-tests``: the test suite's CUDA tests (``pytest -m cuda``).

Writes ``gpu_check.json`` and ``gpu_check.md`` (GPU name, driver, torch, one row per part)
and each part's own output under OUTPUT (default ``$OUT``). ``--dry-run`` runs the same parts
with tiny configurations on the CPU (CUDA graphs, which need a GPU, are then skipped, and
``torch.compile`` runs with ``TORCH_COMPILE_DISABLE=1``: its inductor build takes minutes on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from worldfm_ros.errors import ConfigError

HELP = "run every GPU benchmark and the CUDA tests within a time budget; write one JSON and one Markdown table"

REPO_ROOT = Path(__file__).resolve().parents[2]
RENDER_TARGET_FPS = 1000.0


@dataclass
class Part:
    """One measurement: ``argv`` runs for at most ``limit_s`` seconds and may write ``json`` (its figures)."""

    name: str
    argv: list[str]
    limit_s: float
    json: str = ""
    skip: str = ""  # non-empty: not run, for this reason
    target: str = ""
    env: dict[str, str] = field(default_factory=dict)  # added to the environment
    note: str = ""  # shown with the figures


@dataclass
class PartResult:
    """status: 'ok', 'failed' (non-zero exit), 'timeout', 'skipped'. figures: the part's JSON, if it wrote one."""

    name: str
    status: str
    seconds: float = 0.0
    reason: str = ""
    summary: str = ""
    target: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", nargs="?", default=os.environ.get("OUT", ""),
                        help="output folder (default $OUT)")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny configurations on the CPU: checks the script itself, measures nothing")
    parser.add_argument("--budget", type=float, default=470.0,
                        help="seconds for all parts together (default 470, under 8 minutes)")
    parser.add_argument("--only", nargs="+", metavar="PART", help="run only these parts (names as in the table)")


def worldfm(*args: str) -> list[str]:
    """argv of a ``worldfm`` sub-command run by this interpreter (works from a source checkout too)."""
    return [sys.executable, "-m", "worldfm_ros.cli", *args]


def onnxruntime_cuda() -> str:
    """'' when ONNX Runtime's CUDA execution provider is available, else why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed (pip install onnxruntime-gpu)"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu; "
                f"available: {', '.join(ort.get_available_providers())})")
    return ""


def cuda_test_files(folder: Path) -> list[str]:
    """The test files that hold ``@pytest.mark.cuda`` tests (collecting only those keeps the part short)."""
    if not folder.is_dir():
        return []
    return [str(p) for p in sorted(folder.rglob("test_*.py")) if "@pytest.mark.cuda" in p.read_text()]


def plan(out: Path, dry_run: bool) -> list[Part]:
    """The parts in the order they run (the most wanted first, the slow compiles last)."""
    parts = out / "parts"
    if dry_run:
        render = ["--device", "cpu", "--points", "2000", "--width", "64", "--height", "48", "--repeats", "2",
                  "--views", "2"]
        model = ["--config", "tiny", "--device", "cpu", "--dtype", "fp32", "--repeats", "1", "--warmup", "1"]
    else:
        render = ["--device", "cuda", "--points", "250000", "--repeats", "200"]
        model = ["--config", "xl_2", "--resolution", "512", "--device", "cuda", "--dtype", "fp16",
                 "--repeats", "20", "--warmup", "3"]
    out_parts = [Part("render", worldfm("bench-render", *render, "--json", str(parts / "render.json")),
                      60, str(parts / "render.json"), target=f">= {RENDER_TARGET_FPS:g} FPS at 250k points")]
    splats = (["--splats", "2000", "--sizes", "64x48", "--repeats", "2"] if dry_run else
              ["--device", "cuda", "--splats", "1000000", "2000000", "--sizes", "640x480", "--repeats", "50"])
    out_parts.append(Part("splats", worldfm("bench-splats", *splats), 120, target=">= 300 FPS at 640x480, 2M splats"))
    env = (["--device", "cpu", "--sizes", "32x24", "--envs", "4", "--steps", "3", "--warmup", "1"] if dry_run else
           ["--device", "cuda", "--sizes", "128x128", "--envs", "1", "256", "--steps", "30"])
    out_parts.append(Part("batched-env", worldfm("bench-env", "--backend", "anchor", *env), 120,
                          target=">= 10,000 env-steps/s, 256 robots at 128x128"))
    variants = (("eager", [], 45.0), ("cuda-graphs", ["--cuda-graphs"], 45.0), ("compile", ["--compile"], 120.0))
    for variant, flags, limit in variants:
        for steps in (1, 2):
            name = f"xl2-{steps}step-{variant}"
            skip = "CUDA graphs need a CUDA device (dry run on the CPU)" if dry_run and variant == "cuda-graphs" else ""
            uncompiled = dry_run and variant == "compile"
            json_path = str(parts / f"{name}.json")
            out_parts.append(Part(name, worldfm("bench-model", *model, "--steps", str(steps), *flags,
                                                "--json", json_path), limit, json_path, skip,
                                  env={"TORCH_COMPILE_DISABLE": "1"} if uncompiled else {},
                                  note="dry run: TORCH_COMPILE_DISABLE=1; " if uncompiled else ""))
        if variant == "eager":  # many robots or cameras on one model: the batched DiT call
            json_path = str(parts / "xl2-1step-batch4.json")
            out_parts.append(Part("xl2-1step-batch4", worldfm("bench-model", *model, "--steps", "1", "--batch", "4",
                                                              "--json", json_path), 60, json_path))
        if variant == "cuda-graphs":  # before the compiles: ONNX Runtime is wanted more
            json_path = str(parts / "onnxruntime-cuda.json")
            provider = "CPUExecutionProvider" if dry_run else "CUDAExecutionProvider"
            out_parts.append(Part("onnxruntime-cuda", worldfm(
                "bench-model", *model, "--steps", "1", "--backend", "onnxruntime", "--providers", provider,
                "--json", json_path), 120, json_path, "" if dry_run else onnxruntime_cuda(),
                note="dry run: CPUExecutionProvider; " if dry_run else ""))
            files = cuda_test_files(REPO_ROOT / "test")
            out_parts.append(Part("cuda-tests", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", *files],
                                  90, skip="" if files else f"no CUDA tests under {REPO_ROOT / 'test'} "
                                                                    "(run from a source checkout)"))
    return out_parts


def run_part(part: Part, limit_s: float, log: Path) -> PartResult:
    """Run one part in its own process group, killed after ``limit_s`` s; stdout+stderr go to ``log``."""
    if part.skip:
        return PartResult(part.name, "skipped", reason=part.skip, target=part.target)
    if limit_s <= 1:
        return PartResult(part.name, "skipped", reason="the overall --budget was spent", target=part.target)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(part.argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   env={**os.environ, **part.env}, start_new_session=True)
        try:
            code = process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the whole group: compile workers, ORT threads
            process.wait()
            code = None
    seconds = time.monotonic() - start
    text = log.read_text(errors="replace").strip().splitlines()
    last = text[-1] if text else ""
    figures = json.loads(Path(part.json).read_text()) if part.json and Path(part.json).is_file() else {}
    if code is None:
        return PartResult(part.name, "timeout", seconds, f"stopped at its {limit_s:.0f} s limit", target=part.target)
    if code != 0:
        return PartResult(part.name, "failed", seconds, f"exit {code}: {last}", target=part.target)
    return PartResult(part.name, "ok", seconds, summary=part.note + summarise(part.name, figures, last),
                      target=part.target,
                      figures=figures)


def summarise(name: str, figures: dict[str, Any], last_line: str) -> str:
    """One table cell of a part's headline figures."""
    if name == "render" and figures.get("rows"):
        row = figures["rows"][0]
        return f"{row['points']:,} points: {row['ms']:.3f} ms/frame, {row['fps']:.0f} FPS"
    if "fps_cached" in figures:
        total = figures["stages_ms"]["cached"]["total"]["median"]
        return (f"{figures['size']}² {figures['dtype']}: {total:.2f} ms/frame, {figures['fps_cached']:.1f} FPS "
                f"(cached ref), {figures['fps_uncached']:.1f} FPS uncached")
    return last_line  # pytest: "N passed, M skipped in S s"


def machine(dry_run: bool) -> dict[str, str]:
    """GPU name, driver, torch and CUDA versions (nvidia-smi when present, else what torch knows)."""
    import torch

    info = {"host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda_runtime": str(torch.version.cuda), "cuda_available": str(torch.cuda.is_available()),
            "gpu": "none", "driver": "none", "mode": "dry run on the CPU" if dry_run else "GPU"}
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        if query.returncode == 0 and query.stdout.strip():
            info["gpu"], info["driver"] = (v.strip() for v in query.stdout.splitlines()[0].split(",", 1))
    if info["gpu"] == "none" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def markdown(info: dict[str, str], results: list[PartResult]) -> str:
    lines = [f"# GPU check ({info['mode']})", "",
             f"GPU {info['gpu']}, driver {info['driver']}, torch {info['torch']} (CUDA {info['cuda_runtime']}), "
             f"Python {info['python']}, host {info['host']}, {info['date']}", "",
             "| part | status | figures | target | seconds |", "|---|---|---|---|---:|"]
    for r in results:
        cell = r.summary if r.status == "ok" else r.reason
        lines.append(f"| {r.name} | {r.status} | {cell.replace('|', '/')} | {r.target} | {r.seconds:.1f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    if not args.output:
        raise ConfigError("output: give an output folder (or set $OUT)")
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"torch {torch.__version__} sees no CUDA device; --dry-run checks the script on the CPU")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    parts = plan(out, args.dry_run)
    if args.only:
        unknown = sorted(set(args.only) - {p.name for p in parts})
        if unknown:
            raise ConfigError(f"--only: unknown part(s) {unknown}; known: {[p.name for p in parts]}")
        parts = [p for p in parts if p.name in args.only]
    info = machine(args.dry_run)
    info["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    deadline = time.monotonic() + args.budget
    results = []
    for part in parts:
        result = run_part(part, min(part.limit_s, deadline - time.monotonic()), out / "parts" / f"{part.name}.log")
        results.append(result)
        print(f"{result.name}: {result.status} ({result.seconds:.1f} s) {result.summary or result.reason}", flush=True)
    (out / "gpu_check.json").write_text(json.dumps({"machine": info, "parts": [asdict(r) for r in results]},
                                                   indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(info, results))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return 0 if all(r.status in ("ok", "skipped") for r in results) else 1
