#!/usr/bin/env bash
# Every GPU figure of the project in one call (< 8 min): renderer, XL/2 eager / CUDA graphs /
# torch.compile, ONNX Runtime CUDA EP, the CUDA tests. Writes gpu_check.json and gpu_check.md.
#   benchmarks/gpu_check.sh [OUTPUT_DIR] [--dry-run] [--budget S] [--only PART ...]
# OUTPUT_DIR defaults to $OUT. Needs the project's Python requirements (requirements/python.txt)
# with a CUDA build of torch; runs from a source checkout without installing it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
cd "$root"
exec "${PYTHON:-python3}" -m worldfm_ros.cli gpu-check "$@"
