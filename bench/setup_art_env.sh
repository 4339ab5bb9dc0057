#!/usr/bin/env bash
# The benchmark's own environment: CPU torch 2.13.0, IBM ART 1.20.1 and labelleak (editable), every package at the
# exact version of constraints.txt and bench/constraints-art.txt (ART imports `packaging` without declaring it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x bench/.venv-art/bin/python ]; then "$PY" -m venv bench/.venv-art; fi
PIP="bench/.venv-art/bin/python -m pip install --quiet -c constraints.txt -c bench/constraints-art.txt"
$PIP "torch==2.13.0"
$PIP adversarial-robustness-toolbox packaging six tqdm setuptools -e .
bench/.venv-art/bin/python -c "import art, art.attacks.evasion; print('ART', art.__version__, 'imports')"
# and nothing came in unpinned: every installed distribution is named in one of the two constraint files
bench/.venv-art/bin/python - <<'PY'
import re
from importlib.metadata import distributions

def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

pinned = set()
for path in ("constraints.txt", "bench/constraints-art.txt"):
    for line in open(path):
        if "==" in line and not line.lstrip().startswith("#"):
            pinned.add(norm(line.split("==")[0].strip()))
installed = {norm(d.metadata["Name"]) for d in distributions()} - {"labelleak", "pip"}
loose = sorted(installed - pinned)
if loose:
    raise SystemExit(f"not pinned in constraints.txt or bench/constraints-art.txt: {', '.join(loose)}")
print(f"all {len(installed)} packages pinned")
PY
