#!/usr/bin/env bash
# The one install path: CI (.ci/run) and the Dockerfile both run this script.
# Usage: scripts/install.sh [VENV]   (default .venv; VENV=- installs into the current python)
set -euo pipefail
venv="${1:-.venv}"
py="${PYTHON:-python3}"
if [ "$venv" != "-" ]; then
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  py="$venv/bin/python"
fi
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet -e .
"$py" -m itl --help > /dev/null
