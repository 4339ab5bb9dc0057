#!/usr/bin/env bash
# Set up (idempotent, every extra) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
LABELLEAK_EXTRAS=all bash scripts/setup.sh
.venv/bin/python -m pytest -p no:cacheprovider "$@"
