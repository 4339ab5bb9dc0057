#!/usr/bin/env bash
# Audit your own image model: a CNN trained on normalised digits, exported to ONNX, audited from its file.
# Usage: bash examples/onnx_cnn.sh [OUT_DIR]   (PYTHON=... picks the interpreter; default .venv/bin/python)
set -euo pipefail
OUT=${1:-onnx-example}
PY=${PYTHON:-.venv/bin/python}
"$PY" "$(dirname "$0")/onnx_cnn_train.py" "$OUT" "${MEMBERS:-200}"
read -r MEAN STD < "$OUT/normalisation.txt"
"$PY" -m labelleak.cli audit --model "$OUT/cnn.onnx" --input-shape 1,8,8 --bounds 0,1 --mean "$MEAN" --std "$STD" \
    --members "$OUT/members.npz" --nonmembers "$OUT/nonmembers.npz" --shadow "$OUT/shadow.npz" \
    --attacks gap,transfer,boundary-hsja --queries "${QUERIES:-500}" --noise-samples 20 --epochs 20 \
    --cache-dir "$OUT/cache" --out "$OUT/audit" --quiet
