#!/usr/bin/env bash
# Static checks CI runs before the tests: ruff (lint + format), mypy over src/, Python 3.10 syntax, the docs site.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests bench examples scripts
.venv/bin/ruff format --check src tests bench examples scripts
.venv/bin/mypy
.venv/bin/lint-imports  # the layer contract in pyproject.toml: no upward import, no import circle across layers
# requires-python is >= 3.10: every module must at least compile there (torch has no 3.10 wheel on this disk)
PY310=$(ls "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python3.10 2>/dev/null | head -n 1 || true)
if [ -z "$PY310" ] && python3.10 --version >/dev/null 2>&1; then PY310=python3.10; fi  # a pyenv shim may not run
if [ -n "$PY310" ]; then
    "$PY310" -m compileall -q src/labelleak >/dev/null
else
    echo "check.sh: no Python 3.10 here, skipping the 3.10 compile pass"
fi
if [ -f mkdocs.yml ]; then bash scripts/docs.sh; fi
