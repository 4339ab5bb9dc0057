#!/usr/bin/env bash
# Audit your own scikit-learn model: a random forest saved with skops, data in CSV files, audited from the CLI.
# Usage: bash examples/skops_forest.sh [OUT_DIR]   (PYTHON=... picks the interpreter; default .venv/bin/python)
set -euo pipefail
OUT=${1:-skops-example}
PY=${PYTHON:-.venv/bin/python}
"$PY" "$(dirname "$0")/skops_forest_train.py" "$OUT" "${MEMBERS:-300}"
"$PY" -m labelleak.cli audit --model "$OUT/forest.skops" --bounds 0,16 \
    --members "$OUT/members.csv" --nonmembers "$OUT/nonmembers.csv" --shadow "$OUT/shadow.csv" \
    --attacks gap,transfer,boundary-hsja --queries "${QUERIES:-500}" --noise-samples 20 --epochs 20 \
    --cache-dir "$OUT/cache" --out "$OUT/audit" --quiet
