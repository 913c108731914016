"""GpSimdE kernel-level API: iota, select, gather. Each returns ``(out, cost)``.

Cost: GPSIMD_START + the slowest of the 8 emulated GpSimd cores (each owns 16 partitions; see
csrc/gpsimd_harness.h and csrc/gpsimd_engine.cpp).
"""
from __future__ import annotations

from numbers import Number

import torch

from neuron_emu.isa import DType, Instr, Op
from neuron_emu.kernels._run import check_tensor, run
from neuron_emu.kernels.vector_engine import _broadcast, elementwise_instr, parse_out_dtype


def iota(n: int, start: float = 0.0, step: float = 1.0):
    """out[i] = start + step * i for i in [0, n)."""
    fn = "iota"
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{fn}: argument 'n' must be a non-negative int, got {n!r}")
    for name, v in (("start", start), ("step", step)):
        if not isinstance(v, Number):
            raise TypeError(f"{fn}: argument '{name}' must be a number, got {type(v).__name__}")
    out = torch.empty(n, dtype=torch.float32)
    return out, run(Instr(Op.Iota, [], dict(numel=n, start=float(start), step=float(step))), [("out", out)])


def select(cond, a, b, out_dtype="fp32"):
    """out = where(cond != 0, a, b) with torch broadcasting; strided views allowed."""
    fn = "select"
    for name, t in (("cond", cond), ("a", a), ("b", b)):
        check_tensor(t, name, fn)
    shape = _broadcast(fn, cond=cond, a=a, b=b)
    out = torch.empty(shape, dtype=torch.float32)
    cost = elementwise_instr(Op.Select, fn, [("cond", cond.expand(shape)), ("a", a.expand(shape)),
                                             ("b", b.expand(shape))], out,
                             dict(in_dtype=DType.F32, out_dtype=parse_out_dtype(out_dtype, fn)))
    return out, cost


def gather(table, index):
    """Rows of table [rows, D] picked by index (any shape; float32 holding integers, or an integer tensor):
    out has shape index.shape + (D,). An out-of-range index raises ValueError."""
    fn = "gather"
    check_tensor(table, "table", fn, contiguous=True)
    if table.dim() != 2:
        raise ValueError(f"{fn}: argument 'table' must be 2-D [rows, D], got shape {tuple(table.shape)}")
    if not isinstance(index, torch.Tensor):
        raise TypeError(f"{fn}: argument 'index' must be a torch.Tensor, got {type(index).__name__}")
    if index.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        if index.numel() and int(index.abs().max()) >= 2 ** 24:
            raise ValueError(f"{fn}: argument 'index' holds values beyond 2**24, not exact in float32")
        idx = index.to(torch.float32).contiguous()
    else:
        check_tensor(index, "index", fn, contiguous=True)
        idx = index
    rows, D = table.shape
    out = torch.empty(tuple(index.shape) + (D,), dtype=torch.float32)
    cost = run(Instr(Op.Gather, [], dict(n=idx.numel(), rows=rows, D=D, in_dtype=DType.F32)),
               [("table", table), ("index", idx.reshape(-1)), ("out", out)])
    return out, cost
