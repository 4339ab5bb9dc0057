#!/usr/bin/env bash
# The benchmark's own environment: CPU torch 2.13.0, IBM ART 1.20.1 and labelleak (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv bench/.venv-art
bench/.venv-art/bin/python -m pip install --quiet "torch==2.13.0"
bench/.venv-art/bin/python -m pip install --quiet "adversarial-robustness-toolbox==1.20.1" -e .
