"""Conformance of the lazy device against CPU eager on PyTorch's OpInfo database (`op_db`): each op's float32
sample inputs run on CPU and on the device; an op passes when every sample's outputs match. Ops are skipped, with
the reason, when float32 is not supported on CPU or the op is random (its outputs differ between two CPU runs).

    python tests/lazy_opdb.py [--ops add,mul,...] [--samples 4]     # prints the pass rate and every failure"""
import argparse
import os
import sys
import traceback
from typing import Dict, List, Optional, Tuple

import torch
from torch.utils._pytree import tree_map

# Ops of the fast subset run in CI: common layers, elementwise math, reductions, shape ops, indexing.
FAST = ["add", "addmm", "amax", "bmm", "cat", "clamp", "combinations", "cumsum", "div.no_rounding_mode", "exp", "gather",
        "index_select", "log_softmax", "masked_fill", "matmul", "mean", "mul", "nn.functional.gelu",
        "nn.functional.layer_norm", "nn.functional.silu", "permute", "rsqrt", "softmax", "split", "sum", "transpose",
        "where"]


def _ops(names: Optional[List[str]]):
    if "expecttest" not in sys.modules:
        try:
            import expecttest  # noqa: F401
        except ImportError:  # torch's test utilities import it for their TestCase only; op_db does not need it
            import types
            import unittest
            sys.modules["expecttest"] = types.ModuleType("expecttest")
            sys.modules["expecttest"].TestCase = unittest.TestCase
    from torch.testing._internal.common_methods_invocations import op_db
    if names is None:
        return list(op_db)
    want = set(names)
    return [op for op in op_db if (op.name if not op.variant_test_name else f"{op.name}.{op.variant_test_name}")
            in want]


def _full_name(op) -> str:
    return op.name if not op.variant_test_name else f"{op.name}.{op.variant_test_name}"


def _run(op, sample, to):
    args = tree_map(to, (sample.input, sample.args, sample.kwargs))
    return op(args[0], *args[1], **args[2])


def _cpu(x):
    return x.cpu() if isinstance(x, torch.Tensor) else x


def check_op(op, dev, n_samples: int) -> Tuple[str, str]:
    """('pass'|'fail'|'skip', detail)."""
    if torch.float32 not in op.supported_dtypes("cpu"):
        return "skip", "no float32 support on CPU"
    try:
        samples = list(op.sample_inputs("cpu", torch.float32, requires_grad=False))[:n_samples]
    except Exception as e:  # noqa: BLE001  (a sample generator that fails on this torch build)
        return "skip", f"sample inputs unavailable: {type(e).__name__}"
    if not samples:
        return "skip", "no float32 samples"
    import torch_neuronx_emu.xla_model as xm
    for i, s in enumerate(samples):
        try:
            torch.manual_seed(0)
            want = _run(op, s, lambda t: t.clone() if isinstance(t, torch.Tensor) else t)
            torch.manual_seed(0)
            again = _run(op, s, lambda t: t.clone() if isinstance(t, torch.Tensor) else t)
            torch.testing.assert_close(again, want, equal_nan=True)
        except Exception:  # noqa: BLE001
            return "skip", "nondeterministic or failing on CPU"
        try:
            torch.manual_seed(0)
            got = _run(op, s, lambda t: t.to(dev) if isinstance(t, torch.Tensor) else t)
            xm.mark_step()
            got = tree_map(_cpu, got)
            # the compiled kernels sum in another order than ATen's: a few fp32 ulps of the result's magnitude
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, equal_nan=True, check_device=False)
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip().splitlines()
            return "fail", f"sample {i}: {type(e).__name__}: {msg[0] if msg else ''}"[:300]
    return "pass", f"{len(samples)} samples"


def run(names: Optional[List[str]] = None, n_samples: int = 4, log=None) -> Dict[str, Tuple[str, str]]:
    import torch_neuronx_emu.xla_model as xm
    dev = xm.xla_device()
    res = {}
    for op in _ops(names):
        res[_full_name(op)] = r = check_op(op, dev, n_samples)
        if log is not None:
            print(f"{r[0].upper():5s} {_full_name(op)}: {r[1]}", file=log, flush=True)
    return res


def summary(results: Dict[str, Tuple[str, str]]) -> str:
    passed = sum(1 for r, _ in results.values() if r == "pass")
    failed = sum(1 for r, _ in results.values() if r == "fail")
    skipped = len(results) - passed - failed
    rate = 100.0 * passed / max(1, passed + failed)
    return f"{passed}/{passed + failed} ops pass ({rate:.1f}%), {skipped} skipped"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", default=None, help="comma-separated op names (default: all of op_db)")
    ap.add_argument("--samples", type=int, default=4)
    a = ap.parse_args()
    res = run(a.ops.split(",") if a.ops else None, a.samples, log=sys.stdout)
    print(summary(res))


if __name__ == "__main__":
    main()
