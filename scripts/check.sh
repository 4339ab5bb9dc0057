#!/usr/bin/env bash
# Static checks CI runs before the tests: ruff (lint + format), mypy over src/, Python 3.10 syntax, the docs site.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests bench examples scripts
.venv/bin/ruff format --check src tests bench examples scripts
.venv/bin/mypy
# requires-python is >= 3.10: every module must at least compile there (torch has no 3.10 wheel on this disk)
if command -v python3.10 >/dev/null 2>&1; then python3.10 -m compileall -q src/labelleak >/dev/null; fi
if [ -f mkdocs.yml ]; then bash scripts/docs.sh; fi
