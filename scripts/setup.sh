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
# Chrome DevTools' trace engine (npm, pinned by tests/trace_parser/package-lock.json) reads the profile timelines in
# tests/test_perfetto_parser.py. Without npm that test skips and says why (NEMU_REQUIRE_TRACE_PARSER=1 makes it fail).
if [ ! -f tests/trace_parser/node_modules/@paulirish/trace_engine/package.json ]; then
  if command -v npm >/dev/null 2>&1; then
    npm ci --prefix tests/trace_parser --no-audit --no-fund --loglevel=error
  else
    echo "setup: npm not found; tests/test_perfetto_parser.py will skip (install Node.js >= 20 with npm)" >&2
  fi
fi
