#!/usr/bin/env bash
# Create .venv with the CPU build of torch (never a CUDA build) and labelleak installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned to the CPU wheel 2.13.0: once it is installed, nothing else can pull a CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,onnx,skops]"
