#!/bin/sh
# Install what the browser tests (tests/e2e, marker "browser") need; safe to run again.
#   .ci/install-browser.sh [VENV]     (default: .venv)
# - Debian's chromium at /usr/bin/chromium (apt, non-interactive; needs root)
# - Playwright for Python in VENV, used only as a driver: never run `playwright install`,
#   the tests launch /usr/bin/chromium and download no browser.
set -eu

VENV=${1:-.venv}
PYTHON="$VENV/bin/python"

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq chromium fonts-dejavu-core
fi

if [ ! -x "$PYTHON" ]; then
    echo "install-browser: no Python at $PYTHON (create the venv first)" >&2
    exit 2
fi
if ! "$PYTHON" -c "import playwright.async_api" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet playwright
fi

/usr/bin/chromium --version
"$PYTHON" -c "from importlib.metadata import version; print('playwright', version('playwright'))"
