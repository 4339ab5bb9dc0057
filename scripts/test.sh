#!/usr/bin/env bash
# Set up (idempotent, every extra) and run the whole test suite. Also sets up what some tests drive besides Python,
# where this machine allows it: MLServer in its own environment, and a headless chromium when it installs without
# asking (root or password-less sudo, with apt-get; LABELLEAK_SYSTEM_PACKAGES=0 never touches system packages).
# pytest ends with the tests that still skipped and the command that enables each (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
LABELLEAK_EXTRAS=all bash scripts/setup.sh

# tests/serve/test_v2_mlserver.py: .venv-mlserver (idempotent; its first run needs the package index)
if [ -f scripts/setup_mlserver.sh ]; then
    bash scripts/setup_mlserver.sh || echo "test.sh: MLServer could not be set up; tests/serve/test_v2_mlserver.py will skip"
fi

# tests/report/test_report_browser.py: Debian's chromium, which playwright drives without downloading a browser
have_chromium() {
    [ -n "${LABELLEAK_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}
if ! have_chromium && [ "${LABELLEAK_SYSTEM_PACKAGES:-1}" != 0 ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
        echo "test.sh: installing chromium (apt-get) for tests/report/test_report_browser.py"
        { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
            || echo "test.sh: chromium could not be installed; tests/report/test_report_browser.py will skip"
    fi
fi

.venv/bin/python -m pytest -p no:cacheprovider "$@"
