"""TensorE kernel-level API: matmul, conv2d and transpose on float32 torch tensors.

Each function validates its arguments (TypeError / ValueError naming the argument and shapes) before it
builds one instruction (neuron_emu.isa.Instr, layouts in csrc/isa.h) and runs it through the extension.
Every function returns ``(result, cost)``, cost being the dict of neuron_emu._C.run_instr (engine, cycles,
ns, instructions, bytes, flops). ``dtype`` selects the TensorE input type: inputs are rounded to it
(round-to-nearest-even), products are accumulated in fp32, the result is fp32 unless ``out_dtype`` says otherwise.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from neuron_emu.dtypes import DTYPE_NAMES, parse_dtype
from neuron_emu.hardware import CORES
from neuron_emu.isa import DType, Instr, Op
from neuron_emu.kernels._run import as_array, run

IntPair = Union[int, Sequence[int]]


def _dtype_arg(fn: str, name: str, value) -> DType:
    try:
        return parse_dtype(value)
    except ValueError as e:
        raise ValueError(f"{fn}: argument '{name}': {e}") from None


def _check_generation(fn: str, generation: int, in_dtype: DType) -> None:
    if generation not in CORES:
        raise ValueError(f"{fn}: argument 'generation' must be one of {sorted(CORES)}, got {generation!r}")
    core = CORES[generation]
    name = {v: k for k, v in DTYPE_NAMES.items()}[in_dtype]
    if in_dtype == DType.F32 and not core.has_fp32_matmul:
        raise ValueError(f"{fn}: dtype='fp32' is not supported by the TensorE of {core.name} "
                         f"(supported: {', '.join(core.matmul_dtypes)})")
    if name not in core.matmul_dtypes and in_dtype != DType.F32:
        raise ValueError(f"{fn}: dtype={name!r} is not a TensorE input type of {core.name} "
                         f"(supported: {', '.join(core.matmul_dtypes)})")


def _tensor(fn: str, name: str, t, ndims: Sequence[int]) -> torch.Tensor:
    as_array(t, name, fn)  # type / dtype / device / contiguity, with the argument name
    if t.dim() not in ndims:
        raise ValueError(f"{fn}: argument '{name}' must have {' or '.join(map(str, ndims))} dimensions, "
                         f"got shape {tuple(t.shape)}")
    return t


def matmul(a: torch.Tensor, b: torch.Tensor, *, dtype="fp32", bias: Optional[torch.Tensor] = None,
           out: Optional[torch.Tensor] = None, transpose_a: bool = False, transpose_b: bool = False,
           stationary: str = "a", generation: int = 2, accumulate: bool = False, alpha: float = 1.0,
           beta: float = 1.0, out_dtype="fp32"):
    """out = alpha * op(a) @ op(b) (+ beta * bias) (+ out if accumulate), with op(x) = x.T if transpose_x.

    a: [M, K] (or [K, M] with transpose_a), optionally batched [batch, ...]; b: [K, N] (or [N, K]), optionally
    batched. A 2-D operand (or a batch of 1) is broadcast over the other's batch. bias: [N]. out: optional
    float32 [M, N] / [batch, M, N] result tensor (required for accumulate=True). stationary: "a" (a's M rows are
    the stationary TensorE operand) or "b" (b's N columns are) -- it changes the cost, not the result.
    """
    fn = "matmul"
    in_dt = _dtype_arg(fn, "dtype", dtype)
    out_dt = _dtype_arg(fn, "out_dtype", out_dtype)
    _check_generation(fn, generation, in_dt)
    if stationary not in ("a", "b"):
        raise ValueError(f"{fn}: argument 'stationary' must be 'a' or 'b', got {stationary!r}")
    _tensor(fn, "a", a, (2, 3))
    _tensor(fn, "b", b, (2, 3))
    ab = a.shape[0] if a.dim() == 3 else 1
    bb = b.shape[0] if b.dim() == 3 else 1
    a_rows, a_cols = a.shape[-2], a.shape[-1]
    b_rows, b_cols = b.shape[-2], b.shape[-1]
    M, K = (a_cols, a_rows) if transpose_a else (a_rows, a_cols)
    Kb, N = (b_cols, b_rows) if transpose_b else (b_rows, b_cols)
    if K != Kb:
        raise ValueError(f"{fn}: contraction sizes differ: argument 'a' of shape {tuple(a.shape)} "
                         f"(transpose_a={transpose_a}) has K={K}, argument 'b' of shape {tuple(b.shape)} "
                         f"(transpose_b={transpose_b}) has K={Kb}")
    if ab != bb and ab != 1 and bb != 1:
        raise ValueError(f"{fn}: batch sizes differ: argument 'a' of shape {tuple(a.shape)}, "
                         f"argument 'b' of shape {tuple(b.shape)}")
    batch = max(ab, bb)
    batched = a.dim() == 3 or b.dim() == 3
    out_shape = (batch, M, N) if batched else (M, N)
    if bias is not None:
        _tensor(fn, "bias", bias, (1,))
        if bias.shape[0] != N:
            raise ValueError(f"{fn}: argument 'bias' of shape {tuple(bias.shape)} must have N={N} elements")
    if out is None:
        if accumulate:
            raise ValueError(f"{fn}: accumulate=True needs argument 'out' (the tensor accumulated into)")
        out = torch.empty(out_shape, dtype=torch.float32)
    else:
        as_array(out, "out", fn)
        if tuple(out.shape) != out_shape:
            raise ValueError(f"{fn}: argument 'out' has shape {tuple(out.shape)}, expected {out_shape} for "
                             f"'a' {tuple(a.shape)} and 'b' {tuple(b.shape)}")
        for name, t in (("a", a), ("b", b), ("bias", bias)):
            if t is not None and t.numel() and out.numel() and t.untyped_storage().data_ptr() == out.untyped_storage().data_ptr():
                raise ValueError(f"{fn}: argument 'out' shares memory with argument '{name}'")
    f = dict(batch=batch, M=M, K=K, N=N, a_off=0, a_bstride=a_rows * a_cols if ab > 1 else 0,
             transA=int(transpose_a), lda=max(a_cols, 1), b_off=0, b_bstride=b_rows * b_cols if bb > 1 else 0,
             transB=int(transpose_b), ldb=max(b_cols, 1), out_off=0, out_bstride=M * N, in_dtype=in_dt,
             a_prerounded=0, b_prerounded=0, has_bias=int(bias is not None), bias_off=0, out_dtype=out_dt,
             accumulate=int(accumulate), stationary_side=0 if stationary == "a" else 1, pe_transpose=0,
             alpha=alpha, beta=beta)
    tensors = [("a", a), ("b", b)] + ([("bias", bias)] if bias is not None else []) + [("out", out)]
    cost = run(Instr(Op.MatMul, [], f), tensors, generation)
    return out, cost


def _pair(fn: str, name: str, v: IntPair, minimum: int) -> tuple:
    if isinstance(v, bool):
        raise TypeError(f"{fn}: argument '{name}' must be an int or a pair of ints, got {v!r}")
    if isinstance(v, int):
        v = (v, v)
    try:
        v = tuple(int(x) for x in v)
    except TypeError:
        raise TypeError(f"{fn}: argument '{name}' must be an int or a pair of ints, got {v!r}") from None
    if len(v) != 2 or min(v) < minimum:
        raise ValueError(f"{fn}: argument '{name}' must be an int or a pair of ints >= {minimum}, got {v!r}")
    return v


def conv2d(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor] = None, *, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, dtype="fp32", out_dtype="fp32",
           generation: int = 2):
    """torch.nn.functional.conv2d semantics (NCHW) on TensorE; returns (out [N, O, OH, OW], cost)."""
    fn = "conv2d"
    in_dt = _dtype_arg(fn, "dtype", dtype)
    out_dt = _dtype_arg(fn, "out_dtype", out_dtype)
    _check_generation(fn, generation, in_dt)
    _tensor(fn, "x", x, (4,))
    _tensor(fn, "w", w, (4,))
    sh, sw = _pair(fn, "stride", stride, 1)
    ph, pw = _pair(fn, "padding", padding, 0)
    dh, dw = _pair(fn, "dilation", dilation, 1)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{fn}: argument 'groups' must be a positive int, got {groups!r}")
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    if C % groups or O % groups:
        raise ValueError(f"{fn}: argument 'groups'={groups} must divide the channels of 'x' {tuple(x.shape)} "
                         f"and the filters of 'w' {tuple(w.shape)}")
    if Cg * groups != C:
        raise ValueError(f"{fn}: argument 'w' of shape {tuple(w.shape)} expects {Cg * groups} input channels "
                         f"with groups={groups}, argument 'x' of shape {tuple(x.shape)} has {C}")
    if min(C, H, W, O, kh, kw) < 1:
        raise ValueError(f"{fn}: empty argument 'x' {tuple(x.shape)} or 'w' {tuple(w.shape)}")
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if H + 2 * ph < eh or W + 2 * pw < ew:
        raise ValueError(f"{fn}: kernel of 'w' {tuple(w.shape)} with dilation {(dh, dw)} is larger than the "
                         f"padded input of 'x' {tuple(x.shape)} with padding {(ph, pw)}")
    OH, OW = (H + 2 * ph - eh) // sh + 1, (W + 2 * pw - ew) // sw + 1
    if bias is not None:
        _tensor(fn, "bias", bias, (1,))
        if bias.shape[0] != O:
            raise ValueError(f"{fn}: argument 'bias' of shape {tuple(bias.shape)} must have O={O} elements")
    out = torch.empty((N, O, OH, OW), dtype=torch.float32)
    f = dict(N=N, C=C, H=H, W=W, O=O, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw, groups=groups,
             in_dtype=in_dt, w_prerounded=0, has_bias=int(bias is not None), out_dtype=out_dt, OH=OH, OW=OW)
    tensors = [("x", x), ("w", w)] + ([("bias", bias)] if bias is not None else []) + [("out", out)]
    cost = run(Instr(Op.Conv2d, [], f), tensors, generation)
    return out, cost


def transpose(x: torch.Tensor, *, dtype="fp32", generation: int = 2):
    """[P, F] -> [F, P] through the identity on TensorE (P <= 128 partitions); returns (out, cost)."""
    fn = "transpose"
    in_dt = _dtype_arg(fn, "dtype", dtype)
    _tensor(fn, "x", x, (2,))
    P, F = x.shape
    if P > 128:
        raise ValueError(f"{fn}: argument 'x' of shape {tuple(x.shape)} has {P} partitions; TensorE transposes at most 128")
    if generation not in CORES:
        raise ValueError(f"{fn}: argument 'generation' must be one of {sorted(CORES)}, got {generation!r}")
    out = torch.empty((F, P), dtype=torch.float32)
    cost = run(Instr(Op.Transpose, [], dict(P=P, F=F, in_dtype=in_dt)), [("x", x), ("out", out)], generation)
    return out, cost
