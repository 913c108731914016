#!/usr/bin/env bash
# Set up, then trace the default model for Inf1 and Inf2, run it and print the per-engine/cost report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python examples/demo.py "$@"
