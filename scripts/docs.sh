#!/usr/bin/env bash
# Build the documentation site strictly (broken links, unknown references and docstring warnings fail) into site/.
# Needs mkdocs-material and mkdocstrings[python] in .venv; mkdocstrings reads the code from src/ (mkdocs.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" scripts/attack_catalogue.py --check
NO_MKDOCS_2_WARNING=1 "$PY" -m mkdocs build --strict --site-dir site "$@"
