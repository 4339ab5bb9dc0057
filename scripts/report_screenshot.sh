#!/usr/bin/env bash
# Screenshot of a CIFAR-10 audit's report.html for the README (docs/report-cifar10.png).
# Needs chromium (apt-get install chromium) and playwright (pip install 'labelleak[test]').
# Usage: bash scripts/report_screenshot.sh [AUDIT_OUT] [CIFAR10_NPZ]
# Runs the CPU-scale CIFAR-10 audit of docs/runs/audit-cifar10-cpu/audit.yaml (2-3 minutes on 2 cores) unless
# AUDIT_OUT already holds results.json, then rebuilds the page and saves the top of it.
set -euo pipefail
OUT=${1:-docs/runs/audit-cifar10-cpu}
DATA=${2:-../shared/data/cifar10.npz}
LABELLEAK=${LABELLEAK:-labelleak}
if [ ! -f "$OUT/results.json" ]; then
  "$LABELLEAK" audit --config docs/runs/audit-cifar10-cpu/audit.yaml --data "$DATA" --out "$OUT" --quiet
fi
"$LABELLEAK" report "$OUT" --screenshot docs/report-cifar10.png
echo "docs/report-cifar10.png (from $OUT/report.html)"
