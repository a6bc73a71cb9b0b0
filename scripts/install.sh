#!/usr/bin/env bash
# The one install path: CI (.ci/run), the README and the Dockerfile all run this script.
# It installs the hashed lock (requirements.lock, see scripts/lock.py) with uv (itself pinned and
# hashed in scripts/uv.lock; why: scripts/uv_install.py), then itl itself.
# Usage: scripts/install.sh [VENV]   (default .venv; "-" installs into $PYTHON itself)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
py="${PYTHON:-python3}"
if [ "$venv" != "-" ]; then
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  py="$venv/bin/python"
fi
"$py" -m pip install --quiet --require-hashes --no-deps -r scripts/uv.lock
"$py" scripts/uv_install.py requirements.lock
"$py" -m pip install --quiet --no-deps -e .
"$py" -m pip check
"$py" -m itl --help > /dev/null
