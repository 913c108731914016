#!/usr/bin/env bash
# Set up, run the fast test suite (slow model tests: add `-m slow`), then the kernel tests under
# ASan+UBSan (tests/run_sanitized.sh; NEMU_SKIP_SANITIZE=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -q "$@"
if [ "${NEMU_SKIP_SANITIZE:-0}" != "1" ]; then bash tests/run_sanitized.sh; fi
