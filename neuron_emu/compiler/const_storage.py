"""Constants stored in their cast type: a weight the compiler rounded to bf16/fp16/fp8 for TensorE is written to
the artifact as 16-bit elements (bf16 bit patterns, or float16) instead of an fp32 copy, so a loaded
`--auto-cast matmult` model holds its matmul weights in half the memory, and the native GEMM reads them in place
(csrc/native_gemm.h). fp8 values are stored as bf16, which holds every fp8 value exactly.

Only constants read solely as prerounded TensorE inputs qualify (MatMul A/B, Conv2d W, and the DmaLoad that
charges their transfer): the C++ Program refuses a 16-bit constant anywhere else (program.cpp)."""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from neuron_emu.isa import DType, Op

# buffer kinds in the artifact's buffer table (csrc/program.h BufKind)
CONST_BF16, CONST_FP16 = 2, 3

# TensorE input dtype -> the 16-bit kind its rounded values fit exactly
_HALF_KIND = {DType.BF16: CONST_BF16, DType.FP8E4M3: CONST_BF16, DType.FP8E5M2: CONST_BF16, DType.FP16: CONST_FP16}


def _half_reads(ins) -> Dict[int, DType]:
    """{operand index: in_dtype} of the operands this instruction may read from 16-bit storage."""
    if ins.op == Op.MatMul:
        f = ins.fields
        return {j: DType(f["in_dtype"]) for j, flag in ((0, "a_prerounded"), (1, "b_prerounded")) if f[flag]}
    if ins.op == Op.Conv2d and ins.fields["w_prerounded"]:
        return {1: DType(ins.fields["in_dtype"])}
    return {}


def half_kinds(instrs, const_emu: Dict[int, DType]) -> Dict[int, int]:
    """{constant buffer: 16-bit kind} for every rounded constant that only prerounded TensorE inputs of a matching
    dtype read."""
    cand = {b: _HALF_KIND[d] for b, d in const_emu.items() if d in _HALF_KIND}
    for ins in instrs:
        if ins.op == Op.DmaLoad or not cand:
            continue
        ok = _half_reads(ins)
        for j, b in enumerate(ins.operands):
            if b in cand and (j not in ok or _HALF_KIND.get(ok[j]) != cand[b]):
                del cand[b]
    return cand


def half_data(data: np.ndarray, kind: int) -> np.ndarray:
    """The 16-bit section for fp32 values already rounded to the kind's type (exact, no rounding here)."""
    if kind == CONST_FP16:
        return data.astype(np.float16)
    return (np.ascontiguousarray(data, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def storage_dtype(kind: int):
    """numpy dtype of a constant section of buffer kind `kind` (1: fp32 values)."""
    return {1: np.float32, CONST_BF16: np.uint16, CONST_FP16: np.float16}[kind]


__all__: List[str] = ["CONST_BF16", "CONST_FP16", "half_kinds", "half_data", "storage_dtype"]
