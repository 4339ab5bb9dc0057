#!/usr/bin/env bash
# Create .venv with the CPU build of torch (never a CUDA build) and labelleak installed in editable mode, with the
# exact versions of constraints.txt. LABELLEAK_EXTRAS picks the optional groups (default: every runtime feature;
# scripts/test.sh asks for "all", which adds the test and developer tools).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
EXTRAS=${LABELLEAK_EXTRAS:-plots,images,report,serve,dp,onnx,skops}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
# nothing to install when the last run had the same pyproject, constraints and extras (the install is editable,
# so changes under src/ need none): scripts/test.sh calls this script after .ci/run has
STAMP=.venv/.labelleak-setup
WANT=$(cat pyproject.toml constraints.txt <(echo "$EXTRAS") | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then exit 0; fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned to the CPU wheel 2.13.0: once it is installed, nothing else can pull a CUDA build.
.venv/bin/python -m pip install --quiet -c constraints.txt "torch==2.13.0"
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[$EXTRAS]"
echo "$WANT" > "$STAMP"
