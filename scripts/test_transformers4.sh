#!/usr/bin/env bash
# The model matrix under transformers 4.x (the newest 4.x release: what the SDK's tutorials and optimum-neuron use,
# `torchscript=True` and tuple outputs). CI runs the suite under 5.x (requirements-dev.txt); this script makes a
# second virtual environment from scratch with the same pins but transformers<5, builds neuron-emu into it, and
# runs every test that builds Hugging Face models, plus the SDK tutorial flow (tests/test_transformers4.py, which
# skips under 5.x). Extra arguments go to pytest (e.g. `-m slow` for the full-size matrix).
# NEMU_TF4_VENV chooses the environment's folder (default .venv-transformers4); PYTHON the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${NEMU_TF4_VENV:-.venv-transformers4}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -r <(grep -v '^transformers' requirements-dev.txt) "transformers>=4.40,<5"
python -m pip install -q --no-build-isolation -e .
python -c "import transformers, torch; print('transformers', transformers.__version__, '/ torch', torch.__version__)"
python -m pytest -q tests/test_model_matrix.py tests/test_hf_defaults.py tests/test_transformers4.py \
    tests/test_zoo.py tests/test_trace.py tests/test_inf1_lowering.py tests/test_inf1_models.py "$@"
