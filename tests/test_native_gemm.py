"""The native low-precision GEMM path (csrc/native_gemm.h) against the oracle: float64 products of the inputs
rounded as TensorE sees them, fp32 accumulation (bound: 2*K*2^-24 of sum|a||b|, the fp32 summation error of
any order). Denormals: each case has at most two nonzero products per output, so the exact result is known
and a flush-to-zero / denormals-are-zero path could not hide. Every check runs in this process (the policy
NEMU_NATIVE_GEMM gives, "auto" by default) and again in a child with NEMU_NATIVE_GEMM=on, where the library's
GEMM runs on any CPU it supports."""
import os
import subprocess
import sys

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import _C
from neuron_emu.kernels.tensor_engine import conv2d, matmul

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_DT = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


def _rounded(t, dt):
    return t.to(TORCH_DT[dt]).double()


def check_random():
    g = torch.Generator().manual_seed(0)
    cases = [(dt, M, K, N, ta, tb, batch) for dt in TORCH_DT for (M, K, N) in [(1, 64, 48), (37, 200, 129), (128, 768, 256)]
             for ta, tb, batch in [(False, False, 0), (True, True, 0), (False, True, 3)]]
    for dt, M, K, N, ta, tb, batch in cases:
        sa = ((batch,) if batch else ()) + ((K, M) if ta else (M, K))
        sb = ((batch,) if batch else ()) + ((N, K) if tb else (K, N))
        a, b = torch.randn(sa, generator=g), torch.randn(sb, generator=g)
        bias = torch.randn(N, generator=g)
        out, _ = matmul(a, b, dtype=dt, transpose_a=ta, transpose_b=tb, bias=bias)
        ra, rb = _rounded(a, dt), _rounded(b, dt)
        ra, rb = (ra.transpose(-1, -2) if ta else ra), (rb.transpose(-1, -2) if tb else rb)
        ref = ra @ rb + bias.double()
        bound = 2 * K * 2.0**-24 * (ra.abs() @ rb.abs() + bias.double().abs())
        err = (out.double() - ref).abs()
        assert (err <= bound).all(), (dt, M, K, N, ta, tb, batch, float((err - bound).max()))


def check_denormals():
    t = 2.0**-130  # a bf16 (and fp32) denormal
    for dt in ("bf16", "fp8_e4m3"):
        n = 8
        # denormal input: out = 1.5 * 2^-130 (DAZ would give 0)
        a = torch.eye(n) * (t if dt == "bf16" else 2.0**-9)  # fp8 e4m3: its own smallest denormal
        b = torch.full((n, n), 1.5)
        out, _ = matmul(a, b, dtype=dt)
        assert torch.equal(out, (_rounded(a, dt) @ _rounded(b, dt)).float())
        # normal inputs, denormal product: 2^-70 * 2^-70 = 2^-140 (FTZ would give 0)
        if dt == "bf16":
            a = torch.eye(n) * 2.0**-70
            out, _ = matmul(a, torch.full((n, n), 2.0**-70), dtype=dt)
            assert torch.equal(out, torch.full((n, n), 2.0**-140))
            # cancellation to a denormal: 2^-120 (1 + 2^-7) - 2^-120 = 2^-127
            a = torch.tensor([[2.0**-60 * (1 + 2.0**-7), -2.0**-60]])
            out, _ = matmul(a, torch.full((2, 3), 2.0**-60), dtype=dt)
            assert torch.equal(out, torch.full((1, 3), 2.0**-127))
    # denormal bias and accumulated Out with zero products
    z = torch.zeros(4, 16)
    out, _ = matmul(z, torch.ones(16, 5), dtype="bf16", bias=torch.full((5,), 2.0**-140))
    assert torch.equal(out, torch.full((4, 5), 2.0**-140))
    acc = torch.full((4, 5), 2.0**-140)
    matmul(z, torch.ones(16, 5), dtype="bf16", out=acc, accumulate=True)
    assert torch.equal(acc, torch.full((4, 5), 2.0**-140))
    # fp16 denormal input: 3 * 2^-20
    out, _ = matmul(torch.eye(4) * 2.0**-20, torch.full((4, 4), 3.0), dtype="fp16")
    assert torch.equal(out, torch.full((4, 4), 3 * 2.0**-20))


def check_conv():
    """Conv2d in the 16-bit modes (native: 16-bit im2col into the 16-bit GEMM) against float64 convolution of
    the rounded inputs; denormal inputs, products and bias keep their exact values."""
    g = torch.Generator().manual_seed(4)
    F = torch.nn.functional
    cases = [dict(shape=(2, 6, 9, 11), o=8, k=3, stride=1, padding=1, dilation=1, groups=1),
             dict(shape=(1, 3, 20, 17), o=5, k=7, stride=2, padding=3, dilation=1, groups=1),
             dict(shape=(1, 8, 10, 10), o=4, k=3, stride=(2, 1), padding=0, dilation=2, groups=2),
             dict(shape=(2, 16, 5, 6), o=12, k=1, stride=1, padding=0, dilation=1, groups=1)]
    for dt in ("bf16", "fp16", "fp8_e4m3"):
        for c in cases:
            x = torch.randn(c["shape"], generator=g)
            w = torch.randn(c["o"], c["shape"][1] // c["groups"], c["k"], c["k"], generator=g)
            bias = torch.randn(c["o"], generator=g)
            kw = {k: c[k] for k in ("stride", "padding", "dilation", "groups")}
            out, _ = conv2d(x, w, bias, dtype=dt, **kw)
            rx, rw = _rounded(x, dt), _rounded(w, dt)
            ref = F.conv2d(rx, rw, bias.double(), **kw)
            kg = w[0].numel()
            bound = 2 * kg * 2.0**-24 * (F.conv2d(rx.abs(), rw.abs(), bias.double().abs(), **kw))
            assert ((out.double() - ref).abs() <= bound).all(), (dt, c)
    # denormal input (bf16 2^-130, fp16 2^-20), denormal product of normal values, denormal bias, tiny weight
    ones = torch.ones(3, 2, 3, 3)
    for dt, t in (("bf16", 2.0**-130), ("fp16", 2.0**-20)):
        x = torch.zeros(1, 2, 5, 5)
        x[0, 1, 2, 2] = t
        out, _ = conv2d(x, ones * 1.5, padding=1, dtype=dt)
        assert torch.equal(out, F.conv2d(x.double(), ones.double() * 1.5, padding=1).float()), dt
    x = torch.zeros(1, 2, 5, 5)
    x[0, 0, 1, 1] = 2.0**-70
    out, _ = conv2d(x, ones * 2.0**-70, stride=2, dtype="bf16")
    assert torch.equal(out, F.conv2d(x.double(), ones.double() * 2.0**-70, stride=2).float())
    out, _ = conv2d(torch.zeros(1, 2, 4, 4), ones, torch.full((3,), 2.0**-140), dtype="bf16")
    assert torch.equal(out, torch.full((1, 3, 2, 2), 2.0**-140))
    w = ones.clone()
    w[1, 0, 0, 0] = 2.0**-130
    x = torch.zeros(1, 2, 3, 3)
    x[0, 0, 0, 0] = 1.0
    out, _ = conv2d(x, w, dtype="bf16")
    assert torch.equal(out, F.conv2d(x.double(), w.double()).float())


def check_fp32():
    """fp32 mode on whichever fp32 GEMM NEMU_SGEMM picks (MKL's sgemm or OpenBLAS): plain fp32 products and sums,
    incl. the matrix-vector shapes, transposes, batches, accumulation and fp32 denormals kept (no FTZ/DAZ)."""
    g = torch.Generator().manual_seed(3)
    for M, K, N in [(1, 64, 48), (37, 200, 1), (37, 200, 129), (128, 768, 256)]:
        for ta, tb, batch in [(False, False, 0), (True, True, 0), (False, True, 2), (True, False, 0)]:
            sa = ((batch,) if batch else ()) + ((K, M) if ta else (M, K))
            sb = ((batch,) if batch else ()) + ((N, K) if tb else (K, N))
            a, b = torch.randn(sa, generator=g), torch.randn(sb, generator=g)
            acc = torch.randn(((batch,) if batch else ()) + (M, N), generator=g)
            out = acc.clone()
            matmul(a, b, dtype="fp32", transpose_a=ta, transpose_b=tb, out=out, accumulate=True)
            ra, rb = a.double(), b.double()
            ra, rb = (ra.transpose(-1, -2) if ta else ra), (rb.transpose(-1, -2) if tb else rb)
            ref = ra @ rb + acc.double()
            bound = 2 * (K + 1) * 2.0**-24 * (ra.abs() @ rb.abs() + acc.double().abs())
            assert ((out.double() - ref).abs() <= bound).all(), (M, K, N, ta, tb, batch)
    out, _ = matmul(torch.eye(8) * 2.0**-70, torch.full((8, 8), 2.0**-70), dtype="fp32")
    assert torch.equal(out, torch.full((8, 8), 2.0**-140))


def check_traced_constants():
    """A traced Linear under --auto-cast matmult: its weight is a bf16 constant read in place; a weight holding a
    denormal takes the exact fp32 path (the guard computed at load)."""
    for tiny in (False, True):  # a traced Conv2d: its weight a bf16 constant read in place, or with a denormal
        conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=False).eval()
        with torch.no_grad():
            conv.weight.copy_(torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(5)))
            if tiny:
                conv.weight[:, 0] = 2.0**-130
        x = torch.randn(1, 4, 7, 7, generator=torch.Generator().manual_seed(6))
        if tiny:  # only the denormal weights meet a nonzero input: FTZ/DAZ would give 0
            x[:, 0] = 1.0
            x[:, 1:] = 0.0
        out = torch_neuronx_emu.trace(conv, x, compiler_args="--auto-cast matmult")(x)
        rx, rw = _rounded(x, "bf16"), _rounded(conv.weight.detach(), "bf16")
        ref = torch.nn.functional.conv2d(rx, rw, padding=1)
        if tiny:
            assert torch.equal(out, ref.float())
        else:
            bound = 2 * 36 * 2.0**-24 * torch.nn.functional.conv2d(rx.abs(), rw.abs(), padding=1)
            assert ((out.double() - ref).abs() <= bound).all()
    for tiny in (False, True):
        lin = torch.nn.Linear(64, 32, bias=False).eval()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(32, 64, generator=torch.Generator().manual_seed(1)))
            if tiny:
                lin.weight[:, 0] = 2.0**-130
        x = torch.randn(16, 64, generator=torch.Generator().manual_seed(2))
        if tiny:
            x[:, 0] = 1.0
            x[:, 1:] = 0.0
        out = torch_neuronx_emu.trace(lin, x, compiler_args="--auto-cast matmult")(x)
        ref = _rounded(x, "bf16") @ _rounded(lin.weight.detach(), "bf16").T
        if tiny:
            assert torch.equal(out, ref.float())
        else:
            bound = 2 * 64 * 2.0**-24 * (_rounded(x, "bf16").abs() @ _rounded(lin.weight.detach(), "bf16").abs().T)
            assert ((out.double() - ref).abs() <= bound).all()


CHECKS = [check_random, check_denormals, check_traced_constants, check_fp32, check_conv]


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_in_process(check):
    check()


def test_policy_is_reported():
    info = _C.native_gemm_info()
    policy = os.environ.get("NEMU_NATIVE_GEMM", "auto") or "auto"
    assert info.startswith(f"policy {policy}"), info
    f = _C.cpu_features()
    if policy == "auto" and not (f["avx512_bf16"] or f["amx_bf16"]):
        assert "bf16" not in info.split("native:")[1]  # auto: only where the CPU has bf16 instructions


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch built without MKL: no native GEMM to force")
@pytest.mark.parametrize("native,sgemm", [("on", "mkl"), ("off", "openblas")])
def test_forced_paths(native, sgemm):
    """Both ends of both policies in a child: every GEMM on MKL, then every GEMM on the exact fp32/OpenBLAS path."""
    want = "native: bf16 fp16" if native == "on" else "native: none"
    code = ("import sys; sys.path.insert(0, %r); from neuron_emu import _C; import tests.test_native_gemm as t;"
            "info = _C.native_gemm_info(); assert %r in info and info.endswith(': %s'), info;"
            "[c() for c in t.CHECKS]; print('ok')") % (ROOT, want, sgemm)
    env = dict(os.environ, NEMU_NATIVE_GEMM=native, NEMU_SGEMM=sgemm, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_bad_policy_is_named():
    env = dict(os.environ, NEMU_NATIVE_GEMM="fast", PYTHONPATH=ROOT)
    code = "import torch; from neuron_emu import _C; _C.native_gemm_info()"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "NEMU_NATIVE_GEMM must be auto, on or off, got 'fast'" in r.stderr
    env = dict(os.environ, NEMU_SGEMM="fast", PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "NEMU_SGEMM must be auto, mkl or openblas, got 'fast'" in r.stderr


_FORK_CHILD = """
import os, sys, numpy as np, torch
sys.path.insert(0, %r)
from neuron_emu import _C
from neuron_emu.kernels.tensor_engine import matmul
torch.set_num_threads(2)
a, b = torch.randn(256, 512), torch.randn(512, 256)
torch.mm(a, b)                      # the parent's OpenMP team exists
ref, _ = matmul(a, b, dtype="bf16")  # MKL's bf16 GEMM in the parent
ref32, _ = matmul(a, b, dtype="fp32")
pid = os.fork()
if pid == 0:
    out, _ = matmul(a, b, dtype="bf16")      # the portable GEMMs: the same values
    out32, _ = matmul(a, b, dtype="fp32")
    # compared in numpy: torch's own parallel kernels hang in such a child too
    same = all(np.allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-4) for x, y in ((out, ref), (out32, ref32)))
    os._exit(0 if same else 3)
_, st = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(st))
"""


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch built without MKL: no native GEMM to force")
def test_forked_child_does_not_hang():
    """A process forked after the parent ran MKL's GEMMs (a DataLoader worker, a multiprocessing pool) must not
    enter MKL's OpenMP, which hangs in a forked child; it runs the portable GEMMs instead (fuzzer case found on
    an AVX512-BF16 machine)."""
    env = dict(os.environ, NEMU_NATIVE_GEMM="on", NEMU_SGEMM="mkl", PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", _FORK_CHILD % ROOT], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("child 0"), (r.stdout, r.stderr[-2000:])
