"""VectorE kernel-level API: elementwise ALU ops, reductions, softmax, norms, pooling, copies, transposes, scans.

Every function takes float32 CPU tensors, runs one VectorE instruction through the extension and returns
``(out, cost)`` where ``cost`` is the instruction's cost dict (engine, cycles, ns, instructions, bytes, flops).
Elementwise ops (binary, tensor_scalar, copy) accept strided views and broadcast like torch; the row-wise ops
require contiguous inputs. Cost formulas: see the comment at the top of csrc/vector_engine.cpp.
"""
from __future__ import annotations

import math
from numbers import Number
from typing import Optional, Sequence

import torch

from neuron_emu.dtypes import parse_dtype
from neuron_emu.isa import Alu, DType, Instr, Op, ReduceOp, view_layout
from neuron_emu.kernels._run import check_tensor, output_for, run

_ALU = {"add": Alu.Add, "sub": Alu.Sub, "mul": Alu.Mul, "div": Alu.Div, "max": Alu.Max, "min": Alu.Min,
        "pow": Alu.Pow, "eq": Alu.Eq, "ne": Alu.Ne, "lt": Alu.Lt, "le": Alu.Le, "gt": Alu.Gt, "ge": Alu.Ge,
        "and": Alu.And, "or": Alu.Or, "xor": Alu.Xor, "fmod": Alu.Fmod, "remainder": Alu.Remainder,
        "floordiv": Alu.FloorDiv, "floor_divide": Alu.FloorDiv, "maximum": Alu.Max, "minimum": Alu.Min,
        "subtract": Alu.Sub, "multiply": Alu.Mul, "divide": Alu.Div, "true_divide": Alu.Div,
        "atan2": Alu.Atan2, "hypot": Alu.Hypot, "copysign": Alu.Copysign, "fmax": Alu.FMax, "fmin": Alu.FMin}

_REDUCE = {"sum": ReduceOp.Sum, "max": ReduceOp.Max, "amax": ReduceOp.Max, "min": ReduceOp.Min,
           "amin": ReduceOp.Min, "mean": ReduceOp.Mean, "prod": ReduceOp.Prod, "argmax": ReduceOp.ArgMax,
           "argmin": ReduceOp.ArgMin, "any": ReduceOp.Any, "all": ReduceOp.All}

_SCAN = {"add": Alu.Add, "sum": Alu.Add, "cumsum": Alu.Add, "mul": Alu.Mul, "prod": Alu.Mul, "cumprod": Alu.Mul,
         "max": Alu.Max, "cummax": Alu.Max, "min": Alu.Min, "cummin": Alu.Min}


# ---------------------------------------------------------------- shared helpers (used by the other engines too)
def parse_out_dtype(out_dtype, fn: str) -> DType:
    """Emulated dtype for `out_dtype` (a name like "bf16", a DType or a torch dtype; neuron_emu.dtypes)."""
    try:
        return parse_dtype(out_dtype)
    except ValueError as e:
        raise ValueError(f"{fn}: argument 'out_dtype': {e}") from None


def parse_enum(value, table: dict, enum_cls, fn: str, arg: str):
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str) and value.lower() in table:
        return table[value.lower()]
    raise ValueError(f"{fn}: argument '{arg}' must be one of {sorted(table)}, got {value!r}")


def storage_view(t: torch.Tensor):
    """(flat contiguous float32 tensor over t's storage, element offset, element strides) of a strided view."""
    if t.is_contiguous() and t.storage_offset() == 0:
        return t.reshape(-1) if t.dim() != 1 else t, 0, list(t.stride())
    n = t.untyped_storage().nbytes() // 4
    base = torch.empty(0, dtype=torch.float32).set_(t.untyped_storage(), 0, (n,), (1,))
    return base, t.storage_offset(), list(t.stride())


def coalesce(shape: Sequence[int], strides: Sequence[Sequence[int]]):
    """Drop unit dims and merge dims contiguous in every operand, so views up to rank 6 fit the view layout."""
    dims = [(s, [st[d] for st in strides]) for d, s in enumerate(shape) if s != 1]
    out: list = []
    for s, st in dims:
        if out and all(ps == cs * s for ps, cs in zip(out[-1][1], st)):
            out[-1] = (out[-1][0] * s, st)
        else:
            out.append((s, list(st)))
    return [s for s, _ in out], [[st[j] for _, st in out] for j in range(len(strides))]


def elementwise_instr(op: Op, fn: str, inputs: Sequence[tuple[str, torch.Tensor]], out: torch.Tensor, fields: dict):
    """Run an elementwise view-layout instruction with its named `fields`; inputs already expanded to out's shape."""
    bases, offs, strides = [], [], []
    for name, t in list(inputs) + [("out", out)]:
        if any(s < 0 for s in t.stride()):
            raise ValueError(f"{fn}: argument '{name}' has a negative stride {t.stride()}")
        b, o, st = storage_view(t)
        bases.append((name, b))
        offs.append(o)
        strides.append(st)
    shape, cstrides = coalesce(list(out.shape), strides)
    if len(shape) > 6:
        raise ValueError(f"{fn}: shape {tuple(out.shape)} needs {len(shape)} strided dims, the view layout has 6")
    cost = run(Instr(op, [], fields, view_layout(shape, list(zip(offs, cstrides)))), bases)
    return cost


def _broadcast(fn: str, **tensors):
    try:
        shape = torch.broadcast_shapes(*[t.shape for t in tensors.values()])
    except RuntimeError:
        desc = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
        raise ValueError(f"{fn}: shapes do not broadcast: {desc}") from None
    return shape


def _dim(x: torch.Tensor, dim: int, fn: str) -> int:
    if not isinstance(dim, int):
        raise TypeError(f"{fn}: argument 'dim' must be an int, got {type(dim).__name__}")
    nd = max(x.dim(), 1)
    if not -nd <= dim < nd:
        raise ValueError(f"{fn}: argument 'dim' = {dim} out of range for a tensor of shape {tuple(x.shape)}")
    return dim % nd


def _ori(x: torch.Tensor, d: int):
    shape = list(x.shape) or [1]
    return math.prod(shape[:d]), shape[d], math.prod(shape[d + 1:])


# ---------------------------------------------------------------- elementwise
def binary(a, b, op="add", out_dtype="fp32"):
    """out = a <op> b with torch broadcasting (TensorTensor); a Python number for b uses tensor_scalar."""
    fn = "binary"
    alu = parse_enum(op, _ALU, Alu, fn, "op")
    if isinstance(b, Number) and not isinstance(b, bool):
        return tensor_scalar(a, float(b), alu, out_dtype=out_dtype)
    if isinstance(a, Number) and not isinstance(a, bool):
        return tensor_scalar(b, float(a), alu, reverse0=True, out_dtype=out_dtype)
    check_tensor(a, "a", fn)
    check_tensor(b, "b", fn)
    dt = parse_out_dtype(out_dtype, fn)
    shape = _broadcast(fn, a=a, b=b)
    out = torch.empty(shape, dtype=torch.float32)
    cost = elementwise_instr(Op.TensorTensor, fn, [("a", a.expand(shape)), ("b", b.expand(shape))], out,
                             dict(alu=alu, in_dtype=DType.F32, out_dtype=dt))
    return out, cost


def tensor_scalar(x, scalar0: float, op0="mul", scalar1: Optional[float] = None, op1=None, reverse0: bool = False,
                  reverse1: bool = False, out_dtype="fp32"):
    """out = (x op0 scalar0) op1 scalar1 (reverse flags swap the operands of each op), TensorScalar."""
    fn = "tensor_scalar"
    check_tensor(x, "x", fn)
    a0 = parse_enum(op0, _ALU, Alu, fn, "op0")
    if not isinstance(scalar0, Number):
        raise TypeError(f"{fn}: argument 'scalar0' must be a number, got {type(scalar0).__name__}")
    f = dict(alu0=a0, reverse0=int(bool(reverse0)), alu1=-1, reverse1=0, in_dtype=DType.F32,
             out_dtype=parse_out_dtype(out_dtype, fn), scalar0=float(scalar0), scalar1=0.0)
    if op1 is not None:
        if not isinstance(scalar1, Number):
            raise TypeError(f"{fn}: argument 'scalar1' must be a number when op1 is given, got {scalar1!r}")
        f.update(alu1=parse_enum(op1, _ALU, Alu, fn, "op1"), reverse1=int(bool(reverse1)), scalar1=float(scalar1))
    out = torch.empty(x.shape, dtype=torch.float32)
    return out, elementwise_instr(Op.TensorScalar, fn, [("x", x)], out, f)


def copy(x, out_dtype="fp32", out: Optional[torch.Tensor] = None):
    """Strided copy / cast (TensorCopy): out = round(x, out_dtype); `out` may be a strided view written in place."""
    fn = "copy"
    check_tensor(x, "x", fn)
    dt = parse_out_dtype(out_dtype, fn)
    out = output_for(x, out, fn)
    return out, elementwise_instr(Op.TensorCopy, fn, [("x", x)], out, dict(in_dtype=DType.F32, out_dtype=dt))


def cast(x, out_dtype):
    return copy(x, out_dtype)


def transpose(x):
    """[P, F] -> [F, P] through VectorE 32x32 reshape banks (VecTranspose)."""
    fn = "transpose"
    check_tensor(x, "x", fn, contiguous=True)
    if x.dim() != 2:
        raise ValueError(f"{fn}: argument 'x' must be 2-D [P, F], got shape {tuple(x.shape)}")
    P, F = x.shape
    out = torch.empty((F, P), dtype=torch.float32)
    cost = run(Instr(Op.VecTranspose, [], dict(P=P, F=F, in_dtype=DType.F32)), [("x", x), ("out", out)])
    return out, cost


# ---------------------------------------------------------------- row-wise ops
def reduce(x, dim: int = -1, op="sum", keepdim: bool = False, out_dtype="fp32"):
    """Reduce along `dim` (TensorReduce): sum/max/min/mean/prod/argmax/argmin (index as float)/any/all."""
    fn = "reduce"
    check_tensor(x, "x", fn, contiguous=True)
    rop = parse_enum(op, _REDUCE, ReduceOp, fn, "op")
    d = _dim(x, dim, fn)
    outer, R, inner = _ori(x, d)
    if R == 0:
        raise ValueError(f"{fn}: cannot reduce an empty dim {dim} of shape {tuple(x.shape)}")
    shape = list(x.shape)
    if shape:
        if keepdim:
            shape[d] = 1
        else:
            del shape[d]
    out = torch.empty(shape, dtype=torch.float32)
    f = dict(outer=outer, R=R, inner=inner, reduce_op=rop, in_dtype=DType.F32, out_dtype=parse_out_dtype(out_dtype, fn))
    return out, run(Instr(Op.TensorReduce, [], f), [("x", x), ("out", out)])


def softmax(x, dim: int = -1, log: bool = False, out_dtype="fp32"):
    """Numerically stable (log-)softmax along `dim` (Softmax)."""
    fn = "softmax"
    check_tensor(x, "x", fn, contiguous=True)
    d = _dim(x, dim, fn)
    outer, R, inner = _ori(x, d)
    out = torch.empty(x.shape, dtype=torch.float32)
    if x.numel() == 0:
        return out, {"engine": "VectorE", "cycles": 0.0, "ns": 0.0, "instructions": 0, "bytes": 0, "flops": 0}
    f = dict(outer=outer, R=R, inner=inner, log=int(bool(log)), in_dtype=DType.F32,
             out_dtype=parse_out_dtype(out_dtype, fn))
    return out, run(Instr(Op.Softmax, [], f), [("x", x), ("out", out)])


def log_softmax(x, dim: int = -1, out_dtype="fp32"):
    return softmax(x, dim, log=True, out_dtype=out_dtype)


def scan(x, dim: int = -1, op="add", out_dtype="fp32"):
    """Inclusive scan along `dim` (Scan): add (cumsum), mul (cumprod), max (cummax values), min (cummin values)."""
    fn = "scan"
    check_tensor(x, "x", fn, contiguous=True)
    alu = parse_enum(op, _SCAN, Alu, fn, "op")
    d = _dim(x, dim, fn)
    outer, R, inner = _ori(x, d)
    out = torch.empty(x.shape, dtype=torch.float32)
    f = dict(outer=outer, R=R, inner=inner, alu=alu, in_dtype=DType.F32, out_dtype=parse_out_dtype(out_dtype, fn))
    return out, run(Instr(Op.Scan, [], f), [("x", x), ("out", out)])


def layer_norm(x, weight=None, bias=None, eps: float = 1e-5, normalized_shape=None, out_dtype="fp32"):
    """torch.nn.functional.layer_norm over the trailing `normalized_shape` (default: the last dim)."""
    fn = "layer_norm"
    check_tensor(x, "x", fn, contiguous=True)
    if x.dim() == 0:
        raise ValueError(f"{fn}: argument 'x' must have at least one dim, got a scalar")
    if normalized_shape is None:
        normalized_shape = tuple(x.shape[-1:])
    normalized_shape = tuple(int(s) for s in normalized_shape)
    k = len(normalized_shape)
    if k == 0 or k > x.dim() or tuple(x.shape[-k:]) != normalized_shape:
        raise ValueError(f"{fn}: normalized_shape {normalized_shape} does not match the trailing dims of x "
                         f"{tuple(x.shape)}")
    D = math.prod(normalized_shape)
    if D == 0:
        raise ValueError(f"{fn}: normalized_shape {normalized_shape} is empty")
    tensors = [("x", x)]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            check_tensor(t, name, fn, contiguous=True)
            if tuple(t.shape) != normalized_shape:
                raise ValueError(f"{fn}: argument '{name}' has shape {tuple(t.shape)}, expected {normalized_shape}")
            tensors.append((name, t))
    out = torch.empty(x.shape, dtype=torch.float32)
    tensors.append(("out", out))
    f = dict(rows=x.numel() // D, D=D, has_weight=int(weight is not None), has_bias=int(bias is not None),
             in_dtype=DType.F32, out_dtype=parse_out_dtype(out_dtype, fn), eps=float(eps))
    return out, run(Instr(Op.LayerNorm, [], f), tensors)


def batch_norm(x, mean, var, weight=None, bias=None, eps: float = 1e-5, out_dtype="fp32"):
    """Inference batch norm over channel dim 1 of x [N, C, *]: (x - mean) / sqrt(var + eps) * weight + bias."""
    fn = "batch_norm"
    check_tensor(x, "x", fn, contiguous=True)
    if x.dim() < 2:
        raise ValueError(f"{fn}: argument 'x' must be [N, C, *], got shape {tuple(x.shape)}")
    N, C = x.shape[0], x.shape[1]
    HW = math.prod(x.shape[2:])
    tensors = [("x", x)]
    for name, t, req in (("mean", mean, True), ("var", var, True), ("weight", weight, False), ("bias", bias, False)):
        if t is None:
            if req:
                raise TypeError(f"{fn}: argument '{name}' is required")
            continue
        check_tensor(t, name, fn, contiguous=True)
        if tuple(t.shape) != (C,):
            raise ValueError(f"{fn}: argument '{name}' has shape {tuple(t.shape)}, expected ({C},) for x "
                             f"{tuple(x.shape)}")
        tensors.append((name, t))
    out = torch.empty(x.shape, dtype=torch.float32)
    tensors.append(("out", out))
    f = dict(N=N, C=C, HW=HW, has_weight=int(weight is not None), has_bias=int(bias is not None), in_dtype=DType.F32,
             out_dtype=parse_out_dtype(out_dtype, fn), eps=float(eps))
    return out, run(Instr(Op.BatchNorm, [], f), tensors)


def _pair(v, name, fn):
    if isinstance(v, int):
        return v, v
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(e, int) for e in v):
        return int(v[0]), int(v[1])
    raise TypeError(f"{fn}: argument '{name}' must be an int or a pair of ints, got {v!r}")


def _pool_out(size, k, s, p, d, ceil_mode):
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def pool2d(x, kernel, stride=None, padding=0, kind="max", dilation=1, ceil_mode=False, count_include_pad=True,
           divisor_override=None, out_dtype="fp32"):
    """max_pool2d / avg_pool2d of x [N, C, H, W] or [C, H, W], with torch's output-size rules."""
    fn = "pool2d"
    check_tensor(x, "x", fn, contiguous=True)
    if x.dim() not in (3, 4):
        raise ValueError(f"{fn}: argument 'x' must be [N, C, H, W] or [C, H, W], got shape {tuple(x.shape)}")
    if kind not in ("max", "avg"):
        raise ValueError(f"{fn}: argument 'kind' must be 'max' or 'avg', got {kind!r}")
    kh, kw = _pair(kernel, "kernel", fn)
    sh, sw = _pair(kernel if stride is None else stride, "stride", fn)
    ph, pw = _pair(padding, "padding", fn)
    dh, dw = _pair(dilation, "dilation", fn)
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{fn}: kernel {kernel}, stride {stride}, dilation {dilation} must be positive and "
                         f"padding {padding} non-negative")
    if kind == "avg" and (dh, dw) != (1, 1):
        raise ValueError(f"{fn}: avg pooling has no dilation, got {dilation}")
    if ph > ((kh - 1) * dh + 1) // 2 or pw > ((kw - 1) * dw + 1) // 2:
        raise ValueError(f"{fn}: padding {padding} should be at most half of the effective kernel size")
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override <= 0):
        raise ValueError(f"{fn}: argument 'divisor_override' must be a positive int, got {divisor_override!r}")
    H, W = x.shape[-2], x.shape[-1]
    OH = _pool_out(H, kh, sh, ph, dh, ceil_mode)
    OW = _pool_out(W, kw, sw, pw, dw, ceil_mode)
    if OH <= 0 or OW <= 0 or H == 0 or W == 0:
        raise ValueError(f"{fn}: output size {OH}x{OW} is empty for input {tuple(x.shape)} and kernel {kernel}")
    NC = math.prod(x.shape[:-2])
    out = torch.empty(tuple(x.shape[:-2]) + (OH, OW), dtype=torch.float32)
    f = dict(NC=NC, H=H, W=W, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw, OH=OH, OW=OW,
             kind=0 if kind == "max" else 1, count_include_pad=int(bool(count_include_pad)),
             divisor_override=int(divisor_override or 0), in_dtype=DType.F32, out_dtype=parse_out_dtype(out_dtype, fn))
    return out, run(Instr(Op.Pool2d, [], f), [("x", x), ("out", out)])
