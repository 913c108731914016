#!/usr/bin/env bash
# Create .venv (once), install the pinned dev requirements (CPU torch 2.13.0) and build neuron-emu in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -r requirements-dev.txt
python -m pip install -q --no-build-isolation -e .
