"""The seeded artifact fuzzer (tests/fuzz_artifacts.py): every mutated artifact loads and runs, or is refused
with an ArtifactError naming its origin; no signal, hang, out-of-memory or untyped Python error. ~200 cases here
(also under ASan+UBSan: tests/run_sanitized.sh runs this file); the slow run takes NEMU_FUZZ_CASES (default
10000):
    pytest -m slow tests/test_fuzz.py                                        # normal build
    NEMU_SAN_TESTS=tests/test_fuzz.py bash tests/run_sanitized.sh -m slow    # ASan+UBSan build"""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fuzz(cases: int, seed: int, timeout: float):
    # A fresh interpreter: the children are forked from a process that never ran anything else.
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "tests.fuzz_artifacts", "--cases", str(cases), "--seed", str(seed), "-v"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"fuzzer found failures:\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def test_fuzz_artifacts_fast():
    out = _fuzz(200, seed=1, timeout=900)   # generous: under ASan on a loaded machine a case can take seconds
    assert "200 cases" in out


@pytest.mark.slow
def test_fuzz_artifacts_many():
    n = int(os.environ.get("NEMU_FUZZ_CASES", "10000"))
    sanitized = "asan" in os.environ.get("LD_PRELOAD", "")   # a case takes ~10x longer under ASan
    _fuzz(n, seed=2, timeout=max(600, n * (5 if sanitized else 1)))
