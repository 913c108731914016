#!/usr/bin/env bash
# Set up, then run the fast test suite (slow model tests: add `-m slow`).
# NEMU_SANITIZE_TESTS=1 also runs the kernel tests under ASan+UBSan (tests/run_sanitized.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -q "$@"
if [ "${NEMU_SANITIZE_TESTS:-0}" = "1" ]; then bash tests/run_sanitized.sh; fi
