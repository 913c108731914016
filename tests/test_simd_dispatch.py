"""Run-time SIMD dispatch (csrc/simd.h): NEMU_SIMD picks the path, an unsupported one fails loudly, and every
path this CPU can run gives the same kernel results. Each path runs in its own process (the choice is made
once, when neuron_emu._C loads)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from neuron_emu import _C

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Computes a few kernels on fixed inputs under the inherited NEMU_SIMD and saves them to argv[1].
CHILD = r"""
import ctypes, os, sys
import numpy as np, torch
import neuron_emu
from neuron_emu import _C, dtypes
from neuron_emu.kernels import scalar_engine as se, vector_engine as ve
import scipy_openblas32 as ob

g = torch.Generator().manual_seed(0)
x = torch.randn(37, 1031, generator=g) * 3
y = torch.randn(37, 1031, generator=g).abs() + 0.25
x[0, :6] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-40])
w, b = torch.randn(1031, generator=g), torch.randn(1031, generator=g)
out = {}
for op in ("add", "mul", "div", "max", "pow", "floordiv", "remainder"):
    out["alu_" + op] = ve.binary(x, y, op)[0]
out["softmax_rows"] = ve.softmax(x, -1)[0]
out["softmax_cols"] = ve.softmax(x, 0)[0]
out["log_softmax"] = ve.softmax(x, -1, log=True)[0]
out["layernorm"] = ve.layer_norm(x, w, b)[0]
for f in ("gelu", "gelutanh", "exp", "tanh", "sigmoid", "silu", "softplus"):
    out["act_" + f] = se.activation(x, f)[0]
big = torch.randn(1 << 16, generator=g) * 1e3  # above the thread split: round_array's parallel path too
for d in ("bf16", "fp16", "tf32", "fp8_e4m3", "fp8_e5m2"):
    out["round_" + d] = dtypes.round_to(big, d)
lib = ctypes.CDLL(os.path.join(ob.get_lib_dir(), "libscipy_openblas.so"))
lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
np.savez(sys.argv[1], simd_path=_C.simd_path(), blas_core=lib.scipy_openblas_get_corename().decode(),
         **{k: v.numpy() for k, v in out.items()})
"""

# Results that use only exactly-rounded operations (alu, round_*) must agree bit for bit on every path. The
# AVX2 / AVX-512 builds may contract a*b+c into one FMA (one rounding instead of two) in the polynomial math
# (exp, erf, tanh), in softmax's scaling and layernorm's affine tail. Measured portable vs AVX2 here: <= 2.2e-7
# relative, and where terms cancel (gelu, layernorm near 0) <= 1.2e-7 of the array's largest value. Allowed:
# 4 ulp relative plus 2 ulp of the array's largest finite magnitude; NaN/inf positions must match exactly.
EXACT = {"alu_add", "alu_mul", "alu_div", "alu_max", "alu_pow", "alu_floordiv", "alu_remainder",
         "round_bf16", "round_fp16", "round_tf32", "round_fp8_e4m3", "round_fp8_e5m2"}
EPS = float(np.finfo(np.float32).eps)


def supported_paths():
    f = _C.cpu_features()
    paths = ["portable"]
    if f["arch"] == "x86_64" and f["avx2"] and f["fma"]:
        paths.append("avx2")
        if all(f[k] for k in ("avx512f", "avx512bw", "avx512vl", "avx512dq")):
            paths.append("avx512")
    return paths


def run_child(args, simd):
    env = {**os.environ, "NEMU_SIMD": simd, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("OPENBLAS_CORETYPE", None)
    return subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    res = {}
    for p in supported_paths():
        f = tmp_path_factory.mktemp("simd") / f"{p}.npz"
        r = run_child(["-c", CHILD, str(f)], p)
        assert r.returncode == 0, r.stderr[-3000:]
        res[p] = dict(np.load(f))
    return res


def test_default_is_widest_supported():
    assert _C.simd_path() == supported_paths()[-1] or "NEMU_SIMD" in os.environ


def test_env_var_selects_path(results):
    for p, r in results.items():
        assert str(r["simd_path"]) == p


def test_portable_pins_openblas_to_conservative_kernels(results):
    if _C.cpu_features()["arch"] != "x86_64":
        pytest.skip("OPENBLAS_CORETYPE is only set on x86-64")
    # Prescott (SSE3) reports itself as "Katmai", the name of the table entry it aliases
    assert str(results["portable"]["blas_core"]) in ("Katmai", "Prescott")
    for p in results:
        if p != "portable":
            assert str(results[p]["blas_core"]) not in ("Katmai", "Prescott")


def test_unsupported_path_fails_loudly():
    missing = [p for p in ("avx2", "avx512") if p not in supported_paths()]
    if not missing:
        pytest.skip("this CPU runs every SIMD path")
    r = run_child(["-c", "import neuron_emu"], missing[-1])
    assert r.returncode != 0
    assert f"NEMU_SIMD={missing[-1]}" in r.stderr and "CPU features" in r.stderr, r.stderr[-2000:]


def test_unknown_path_fails_loudly():
    r = run_child(["-c", "import neuron_emu"], "sse9")
    assert r.returncode != 0 and "NEMU_SIMD=sse9: unknown SIMD path" in r.stderr, r.stderr[-2000:]


def test_kernels_agree_across_paths(results):
    if len(results) < 2:
        pytest.skip("this CPU runs only the portable path")
    base = results["portable"]
    names = [k for k in base if k not in ("simd_path", "blas_core")]
    for p, r in results.items():
        for k in names:
            a, b = base[k], r[k]
            if k in EXACT:
                assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), (p, k)
            else:
                np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{p} {k}")
                fin = np.isfinite(a)
                np.testing.assert_array_equal(a[~fin & ~np.isnan(a)], b[~fin & ~np.isnan(a)], err_msg=f"{p} {k}")
                scale = float(np.abs(a[fin]).max())
                np.testing.assert_allclose(a[fin], b[fin], rtol=4 * EPS, atol=2 * EPS * scale, err_msg=f"{p} {k}")
