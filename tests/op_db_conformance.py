"""PyTorch's operator test database (`op_db`) run through torch_neuronx_emu.trace against CPU eager.

One op at a time: its first float32 CPU sample inputs become a tiny module whose tensor arguments are the traced
inputs (non-tensor arguments are baked in, as torch.jit.trace bakes them), the traced module runs on the same
inputs and every output is compared with eager's. An op passes when all its samples pass.

Outcomes: "pass"; "rejected" (the real neuronx-cc rejects it too: `neuron_emu.compiler.rejected`, with a source);
"skip" (SKIP below gives the reason); "unsupported" (the emulated compiler or capture refuses it with a clear
error: a coverage gap, never wrong numbers); "wrong" (numbers differ from eager: always a bug).

Run directly for the whole database: `python tests/op_db_conformance.py [op ...]` prints per-op outcomes and the
overall rate; tests/test_op_db.py runs a fast subset in CI and the full run under NEMU_OP_DB_FULL=1.
NEMU_OP_DB_CAST=all runs the same samples compiled with `--auto-cast all` (bf16) against the auto-cast reference
instead of fp32 eager (op_db_autocast.py states that oracle and its tolerances)."""
from __future__ import annotations

import os
import sys
import warnings

import torch
from torch.utils import _pytree as pytree

import torch_neuronx_emu
from neuron_emu.compiler.errors import CompilationError

N_SAMPLES = int(os.environ.get("NEMU_OP_DB_SAMPLES", "3"))  # first few CPU samples per op
CAST = os.environ.get("NEMU_OP_DB_CAST", "none")  # "all": bf16 under --auto-cast all against the reference

# fp32 with a different summation order (OpenBLAS blocking, pairwise vs sequential sums) and ScalarE's own
# transcendental implementations: a few ulp relative; atol covers cancellation around zero. A long reduction
# (a 3-D transposed convolution sums ~100 products of values ~10) cancels to errors past that atol in eager fp32
# itself; then both are measured against eager in float64, and ours passes when its error is within twice eager
# fp32's own (ERR_FACTOR) plus ATOL.
RTOL, ATOL = 1e-4, 1e-5
ERR_FACTOR = 2.0

_RANDOM = "random: draws differ from eager's generator by design (nothing to compare)"
_UNINIT = "returns uninitialised memory (nothing to compare)"
_PY_VALUE = ("returns a Python bool/int, not a tensor: torch.jit.trace (under torch_neuronx.trace) cannot return it "
             "either; capture refuses it by name")
_NONDET = "result depends on eager's unspecified choice (e.g. which of equal elements), not comparable"
SKIP = {
    **{n: _RANDOM for n in ["bernoulli", "normal", "normal.number_mean", "normal.in_place", "uniform", "rand_like",
                            "randint_like", "randn_like", "randint", "randn", "rand", "multinomial", "cauchy",
                            "exponential", "geometric", "log_normal", "nn.functional.dropout",
                            "nn.functional.dropout2d", "nn.functional.dropout3d", "nn.functional.alpha_dropout",
                            "nn.functional.rrelu",
                            "nn.functional.gumbel_softmax", "nn.functional.feature_alpha_dropout.with_train",
                            "randperm"]},
    **{n: _UNINIT for n in ["empty", "empty_like", "new_empty", "new_empty_strided", "empty_strided",
                            "empty_permuted"]},
    "nonzero_static": _NONDET,
    **{n: _PY_VALUE for n in ["allclose", "equal", "broadcast_shapes"]},
}


def _is_random(name: str) -> bool:
    return name in SKIP and SKIP[name] == _RANDOM


def _ensure_expecttest():
    """torch.testing._internal imports `expecttest` only to subclass its TestCase (golden-output tests we don't
    run); without that test-only package, a unittest.TestCase stands in so op_db can be imported."""
    try:
        import expecttest  # noqa: F401
    except ImportError:
        import types
        import unittest
        shim = types.ModuleType("expecttest")
        shim.TestCase, shim.ACCEPT = unittest.TestCase, False
        sys.modules["expecttest"] = shim


def float32_cpu_ops():
    _ensure_expecttest()
    from torch.testing._internal.common_methods_invocations import op_db
    return [o for o in op_db if torch.float32 in o.supported_dtypes("cpu")]


def _samples(op):
    out = []
    for s in op.sample_inputs("cpu", torch.float32, requires_grad=False):
        out.append(s)
        if len(out) >= N_SAMPLES:
            break
    return out


class _Call(torch.nn.Module):
    """forward(*tensors) = op(*args, **kwargs) with the sample's tensors put back in their places."""

    def __init__(self, fn, spec, consts):
        super().__init__()
        self.fn, self.spec, self.consts = fn, spec, consts

    def forward(self, *tensors):
        it = iter(tensors)
        leaves = [next(it) if c is _TENSOR else c for c in self.consts]
        args, kwargs = pytree.tree_unflatten(leaves, self.spec)
        return self.fn(*args, **kwargs)


_TENSOR = object()


def _close(got, want, ref64=None) -> str:
    gl, wl = pytree.tree_leaves(got), pytree.tree_leaves(want)
    rl = pytree.tree_leaves(ref64) if ref64 is not None else None
    if len(gl) != len(wl):
        return f"{len(gl)} outputs, eager has {len(wl)}"
    for i, (g, w) in enumerate(zip(gl, wl)):
        if not isinstance(w, torch.Tensor):
            if g != w:
                return f"output {i}: {g!r} != eager {w!r}"
            continue
        if not isinstance(g, torch.Tensor):
            return f"output {i} is {type(g).__name__}, eager gives a tensor"
        if g.shape != w.shape:
            return f"output {i}: shape {tuple(g.shape)} != eager {tuple(w.shape)}"
        if w.is_complex():
            return "complex output"
        try:
            torch.testing.assert_close(g.to(w.dtype), w, rtol=RTOL, atol=ATOL, equal_nan=True, check_dtype=False)
        except AssertionError as e:
            if not _as_accurate_as_eager(g, w, rl[i] if rl is not None and i < len(rl) else None):
                return f"output {i}: " + " ".join(str(e).split("\n")[:3])
    return ""


def _as_accurate_as_eager(g, w, r) -> bool:
    if not isinstance(r, torch.Tensor) or not w.is_floating_point() or r.shape != w.shape:
        return False
    r = r.double()
    if not torch.equal(torch.isnan(g), torch.isnan(w)):
        return False
    ok = ~torch.isnan(r)
    ours = (g.double() - r)[ok].abs().max().item() if ok.any() else 0.0
    eager = (w.double() - r)[ok].abs().max().item() if ok.any() else 0.0
    return ours <= ERR_FACTOR * eager + ATOL


def _reference64(m, tensors):
    try:
        return m(*[t.double() if t.is_floating_point() else t.clone() for t in tensors])
    except Exception:  # noqa: BLE001 - no float64 kernel: no second opinion
        return None


def run_sample(op, sample):
    """("pass"|"wrong"|"unsupported"|"rejected"|"eager-error", detail) for one sample."""
    from neuron_emu.compiler.rejected import RejectedOpError

    leaves, spec = pytree.tree_flatten(((sample.input,) + tuple(sample.args), dict(sample.kwargs)))
    tensors = [x for x in leaves if isinstance(x, torch.Tensor)]
    consts = [_TENSOR if isinstance(x, torch.Tensor) else x for x in leaves]
    if any(t.is_complex() for t in tensors):
        return "eager-error", "complex input"
    m = _Call(op.op, spec, consts)
    try:
        want = m(*[t.clone() for t in tensors])
    except Exception as e:  # noqa: BLE001 - the sample itself is invalid for a functional call
        return "eager-error", f"{type(e).__name__}: {e}"
    if CAST != "none":
        import op_db_autocast
        return op_db_autocast.run_cast_sample(m, tensors, want, CAST)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch_neuronx_emu.trace(m, tuple(t.clone() for t in tensors))
            got = traced(*[t.clone() for t in tensors])
    except RejectedOpError as e:
        return "rejected", str(e).split("\n")[0][:200]
    except Exception as e:  # noqa: BLE001 - every refusal is recorded with its message
        return "unsupported", f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    why = _close(got, want)
    if why:
        why = _close(got, want, _reference64(m, tensors))
    return ("wrong", why) if why else ("pass", "")


def run_op(op):
    """(outcome, detail) for an OpInfo: skip reason, first non-pass sample's outcome, or pass."""
    key = op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")
    for k in (key, op.name):
        if k in SKIP:
            return "skip", SKIP[k]
    results = []
    try:
        samples = _samples(op)
    except Exception as e:  # noqa: BLE001
        return "skip", f"sample generation fails on CPU: {e}"
    for s in samples:
        results.append(run_sample(op, s))
    results = [r for r in results if r[0] != "eager-error"]
    if not results:
        return "skip", "no float32 CPU sample runs in eager"
    for kind in ("wrong", "unsupported", "rejected"):
        for r in results:
            if r[0] == kind:
                return r
    return "pass", ""


def summarize(outcomes: dict) -> str:
    counts = {}
    for k, (o, _) in outcomes.items():
        counts[o] = counts.get(o, 0) + 1
    total = sum(counts.values())
    scored = total - counts.get("skip", 0)
    ok = counts.get("pass", 0) + counts.get("rejected", 0)
    mode = "float32" if CAST == "none" else f"bf16 --auto-cast {CAST} vs reference,"
    lines = [f"op_db {mode} CPU: {total} ops; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
             f"pass {counts.get('pass', 0)}/{total} ({100 * counts.get('pass', 0) / max(total, 1):.1f}%); "
             f"pass or sourced rejection {ok}/{scored} non-skipped ({100 * ok / max(scored, 1):.1f}%)"]
    return "\n".join(lines)


def main(argv):
    torch.manual_seed(0)
    ops = float32_cpu_ops()
    if argv:
        ops = [o for o in ops if o.name in argv or f"{o.name}.{o.variant_test_name}" in argv]
    outcomes = {}
    for o in ops:
        key = o.name + (f".{o.variant_test_name}" if o.variant_test_name else "")
        torch.manual_seed(0)
        outcomes[key] = run_op(o)
        out, why = outcomes[key]
        print(f"{out:12s} {key:45s} {why}", flush=True)
    print(summarize(outcomes))
    return outcomes


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main(sys.argv[1:])
