#!/usr/bin/env bash
# Create .venv and install coin with its test tools. Idempotent: a second run with an
# unchanged pyproject.toml does nothing. Prefers a CPU build of torch when none is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${COIN_VENV:-.venv}

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "coin needs Python 3.11 or newer")'
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --quiet)

# `coin report`'s browser test renders the page in headless Chromium from the Debian packages.
# Installed only as root where apt-get exists and chromium is missing; a failure never fails the setup
# (the test is then skipped, saying why).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || echo "setup: chromium could not be installed; the browser test of coin report will be skipped" >&2
fi

stamp="$VENV/.coin-installed"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

# stable-baselines3 needs torch; an unpinned torch from PyPI is a multi-GB CUDA build.
# Try, in order: a CPU wheel this machine already has (pip's find-links), the PyTorch CPU
# index, and finally whatever the normal resolution picks.
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  "${PIP[@]}" install "torch==2.13.0+cpu" 2>/dev/null \
    || "${PIP[@]}" install --timeout 20 --retries 1 torch --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
    || echo "setup: no CPU torch wheel found; the default torch build will be installed" >&2
fi
"${PIP[@]}" install -e ".[dev,sweep]"   # sweep: Ray Tune + Optuna, so the tests run coin train --sweep
echo "$want" > "$stamp"
