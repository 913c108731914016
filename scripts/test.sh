#!/usr/bin/env bash
# Set up, run the fast test suite (slow model tests: add `-m slow`), then the kernel tests again on the
# portable SIMD path (NEMU_SIMD=portable, csrc/simd.h: the default run takes this CPU's widest path, so
# the baseline loops would otherwise ship untested), then under ASan+UBSan (tests/run_sanitized.sh;
# NEMU_SKIP_SANITIZE=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -q "$@"
NEMU_SIMD=portable python -m pytest -q tests/test_*_engine.py tests/test_dtype_convert.py tests/test_dma.py
if [ "${NEMU_SKIP_SANITIZE:-0}" != "1" ]; then bash tests/run_sanitized.sh; fi
