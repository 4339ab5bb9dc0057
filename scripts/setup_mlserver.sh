#!/usr/bin/env bash
# A separate virtual environment with MLServer and its scikit-learn runtime, for tests/serve/test_v2_mlserver.py.
# MLServer pins fastapi/starlette versions that conflict with labelleak's, so it cannot share the main venv.
# Idempotent: an existing, complete environment is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-mlserver
PY=${PYTHON:-python3.11}
# the model is written by the test with the main environment's scikit-learn: the server must read it back
SKLEARN=${SKLEARN_VERSION:-1.9.1}
if [ -x "$VENV/bin/mlserver" ] && "$VENV/bin/python" -c "import mlserver_sklearn, sklearn; assert sklearn.__version__ == '$SKLEARN'" 2>/dev/null; then
    echo "$VENV is ready"
    exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "mlserver==1.7.1" "mlserver-sklearn==1.7.1" "scikit-learn==$SKLEARN"
"$VENV/bin/python" -c "import mlserver_sklearn, sklearn; print('mlserver ready, scikit-learn', sklearn.__version__)"
