#!/usr/bin/env bash
# Build the documentation site strictly (broken links, unknown references and docstring warnings fail) into site/.
# mkdocstrings reads the code from src/ (mkdocs.yml), so the site documents this checkout. Extra arguments go to
# `mkdocs build`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null; then
    echo "error: the docs build needs mkdocs-material and mkdocstrings[python] in $PY's environment" >&2
    exit 2
fi
"$PY" scripts/attack_catalogue.py --check  # docs/attacks.md must match the attack registry
NO_MKDOCS_2_WARNING=1 "$PY" -m mkdocs build --strict --site-dir site "$@"
