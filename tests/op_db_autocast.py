"""op_db under `--auto-cast all` (bf16): one sample compiled with every fp32 result rounded to bf16, checked
against `neuron_emu.compiler.reference` (the eager statement of the policy: inputs and constants rounded, each
captured node computed by torch in fp32 and its fp32 result rounded) rather than against fp32 eager.

Tolerances (why not bit-exact): both sides round the same captured nodes, but each node's fp32 value comes from
a different implementation (our engines' transcendentals and summation order vs torch's), a few fp32 ulp apart
(the fp32 suite allows rtol 1e-4). Where an exact value lies that close to a bf16 rounding boundary the two
roundings go opposite ways: one bf16 ulp, 2^-8 of the value (2^-7 just above a power of two). A flipped
intermediate moves a later node's result by that ulp times the node's sensitivity, so
  1. pass when every element is within RTOL = 2 bf16 ulps (2^-7) of the reference, ATOL = 1e-5 as in fp32;
  2. otherwise (a flip amplified by cancellation, a long reduction) measure both against float64 on the same
     bf16-rounded inputs, the exact value both approximate: ours passes when its error is within ERR_FACTOR times
     the reference's own error plus 2^-8 of the output's scale (one flip's worth, as tests/test_autocast.py).
Integer and boolean outputs (argmax, comparisons) are exact: both sides see the same rounded inputs. Rounding to
bf16 makes ties common (topk over 8000 values), and which of equal elements an index names is unspecified: an index
output passes when it selects the same input values as the reference's.

The cast must really happen: every fp32 output of ours is bf16-representable (the device rounds each result),
and where the reference differs from fp32 eager by more than the tolerance ours must be nearer the reference."""
from __future__ import annotations

import warnings

import torch
from torch.utils import _pytree as pytree

from neuron_emu.compiler import compile_graph
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.compiler.reference import round_tensor, run_reference
from neuron_emu.runtime.model import LoadedModel

ULP = 2.0 ** -8  # bf16: 8 significand bits
RTOL, ATOL = 2 * ULP, 1e-5
ERR_FACTOR = 2.0
CAST_TYPE = {"all": "bf16"}


def _float_leaves(x):
    return [t for t in pytree.tree_leaves(x) if isinstance(t, torch.Tensor)]


def _exact(m, tensors, cast):
    """float64 run of the op on the cast-rounded inputs: what both the reference and ours approximate."""
    try:
        return _float_leaves(m(*[round_tensor(t, cast).double() if t.dtype == torch.float32 else t.clone()
                                 for t in tensors]))
    except Exception:  # noqa: BLE001 - no float64 kernel: no third opinion
        return None


def _within(g: torch.Tensor, r: torch.Tensor) -> bool:
    try:
        torch.testing.assert_close(g, r, rtol=RTOL, atol=ATOL, equal_nan=True, check_dtype=False)
        return True
    except AssertionError:
        return False


def _as_accurate_as_reference(g, r, x) -> bool:
    if x is None or x.shape != r.shape or not x.is_floating_point():
        return False
    if not torch.equal(torch.isnan(g), torch.isnan(r)):
        return False
    ok = torch.isfinite(x) & torch.isfinite(r)
    if not torch.equal(g[~ok].nan_to_num(), r[~ok].nan_to_num()):  # infinities agree exactly
        return False
    if not ok.any():
        return True
    x, scale = x.double()[ok], x.double()[ok].abs().max().item()
    ours = (g.double()[ok] - x).abs().max().item()
    theirs = (r.double()[ok] - x).abs().max().item()
    return ours <= ERR_FACTOR * theirs + ULP * scale + ATOL


def _same_up_to_ties(g, r, inputs) -> bool:
    """Index outputs `g` and `r` name equal values of some rounded float input, along some dim (or flattened)."""
    if g.dtype != torch.int64 or not g.numel() or int(min(g.min(), r.min())) < 0:
        return False
    for x in inputs:
        if not x.is_floating_point():
            continue
        if (g.dim() == 0 or x.dim() <= 1) and int(max(g.max(), r.max())) < x.numel():  # argmax over all
            if torch.equal(x.flatten()[g.flatten()], x.flatten()[r.flatten()]):
                return True
        for d in range(x.dim()):
            if g.dim() == x.dim() and all(g.shape[k] <= x.shape[k] for k in range(x.dim()) if k != d) and \
                    int(max(g.max(), r.max())) < x.shape[d]:
                xs = x[tuple(slice(0, g.shape[k]) if k != d else slice(None) for k in range(x.dim()))]
                if torch.equal(xs.gather(d, g), xs.gather(d, r)):
                    return True
    return False


def compare(got, ref, fp32, exact, inputs=()) -> str:
    """'' when `got` (ours under --auto-cast all) matches the reference; else why not."""
    if len(got) != len(ref):
        return f"{len(got)} outputs, the reference has {len(ref)}"
    for i, (g, r) in enumerate(zip(got, ref)):
        if g.shape != r.shape:
            return f"output {i}: shape {tuple(g.shape)} != reference {tuple(r.shape)}"
        if not r.is_floating_point():
            if not torch.equal(g.to(r.dtype), r) and not _same_up_to_ties(g.to(r.dtype), r, inputs):
                return f"output {i}: {r.dtype} values differ from the reference"
            continue
        g = g.to(r.dtype)
        if g.dtype == torch.float32:
            fin = torch.isfinite(g)
            if not torch.equal(g[fin], round_tensor(g[fin], "bf16")):
                return f"output {i}: not rounded to bf16 (the cast did not happen)"
        if not _within(g, r) and not _as_accurate_as_reference(
                g, r, exact[i] if exact is not None and i < len(exact) else None):
            err = (g.double() - r.double()).abs().nan_to_num(0).max().item()
            return f"output {i}: max |ours - reference| {err:.3g} (scale {r.abs().nan_to_num(0).max().item():.3g})"
        f = fp32[i] if i < len(fp32) else None
        if isinstance(f, torch.Tensor) and f.shape == r.shape and f.is_floating_point() and not _within(f.to(r.dtype), r):
            d = lambda a, b: (a.double() - b.double()).abs().nan_to_num(0).max().item()  # noqa: E731
            if d(g, r) >= d(g, f):
                return f"output {i}: nearer fp32 eager than the auto-cast reference (the cast did not happen)"
    return ""


def run_cast_sample(m, tensors, want, cast: str):
    """(outcome, detail) of one op_db sample compiled with `--auto-cast <cast>`, as conformance.run_sample."""
    from neuron_emu.compiler.rejected import RejectedOpError

    options = parse_compiler_args(f"--auto-cast {cast} --auto-cast-type {CAST_TYPE[cast]}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph, _ = capture(m, tuple(t.clone() for t in tensors))
            got = LoadedModel(compile_graph(graph, options).blob)([t.clone() for t in tensors])
    except RejectedOpError as e:
        return "rejected", str(e).split("\n")[0][:200]
    except Exception as e:  # noqa: BLE001 - every refusal is recorded with its message
        return "unsupported", f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    ref = run_reference(graph, options, [t.clone() for t in tensors])
    rounded = [round_tensor(t, CAST_TYPE[cast]) for t in tensors]
    why = compare(list(got), list(ref), _float_leaves(want), _exact(m, tensors, CAST_TYPE[cast]), rounded)
    return ("wrong", why) if why else ("pass", "")
