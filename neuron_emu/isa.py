"""Python mirror of csrc/isa.h: op codes, enums and the fixed-width instruction encoding.

The compiler and the kernel-level API both build instructions here, so there is one encoder.
Keep the numbers in step with csrc/isa.h (tests/test_isa.py checks them against the extension).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

INSTR_WORDS = 64
MAX_OPERANDS = 6
NUM_IPARAMS = 48
NUM_FPARAMS = 4
MAX_DIMS = 6


class Op(enum.IntEnum):
    MatMul = 1
    Conv2d = 2
    Transpose = 3
    TensorTensor = 10
    TensorScalar = 11
    TensorReduce = 12
    Softmax = 13
    LayerNorm = 14
    BatchNorm = 15
    Pool2d = 16
    TensorCopy = 17
    VecTranspose = 18
    Scan = 19
    Activation = 30
    Iota = 40
    Select = 41
    Gather = 42
    DmaCopy = 50
    DmaLoad = 51
    IoIn = 52
    IoOut = 53


class Engine(enum.IntEnum):
    Tensor = 0
    Vector = 1
    Scalar = 2
    GpSimd = 3
    Dma = 4


ENGINE_NAMES = ("TensorE", "VectorE", "ScalarE", "GpSimdE", "DMA")


class DType(enum.IntEnum):
    """Emulated element types (storage is fp32 holding values representable in the type)."""
    F32 = 0
    BF16 = 1
    FP16 = 2
    TF32 = 3
    FP8E4M3 = 4
    FP8E5M2 = 5


# Bytes per element of each emulated dtype (what DMA transfers are charged for).
DTYPE_BYTES = {DType.F32: 4, DType.TF32: 4, DType.BF16: 2, DType.FP16: 2, DType.FP8E4M3: 1, DType.FP8E5M2: 1}


class Alu(enum.IntEnum):
    Add = 0
    Sub = 1
    Mul = 2
    Div = 3
    Max = 4
    Min = 5
    Pow = 6
    Eq = 7
    Ne = 8
    Lt = 9
    Le = 10
    Gt = 11
    Ge = 12
    And = 13
    Or = 14
    Xor = 15
    Fmod = 16
    Remainder = 17
    FloorDiv = 18


class ActFunc(enum.IntEnum):
    Identity = 0
    Relu = 1
    Gelu = 2
    GeluTanh = 3
    Sigmoid = 4
    Tanh = 5
    Exp = 6
    Log = 7
    Silu = 8
    Sqrt = 9
    Rsqrt = 10
    Reciprocal = 11
    Abs = 12
    Square = 13
    Erf = 14
    Sin = 15
    Cos = 16
    Softplus = 17
    Sign = 18
    Floor = 19
    Ceil = 20
    Round = 21
    Log1p = 22
    Expm1 = 23
    LogicalNot = 24
    Hardsigmoid = 25
    Hardswish = 26
    Mish = 27
    Elu = 28
    LeakyRelu = 29
    Trunc = 30


class ReduceOp(enum.IntEnum):
    Sum = 0
    Max = 1
    Min = 2
    Mean = 3
    Prod = 4
    ArgMax = 5
    ArgMin = 6
    Any = 7
    All = 8


class DmaQueue(enum.IntEnum):
    HbmToSbuf = 0
    SbufToHbm = 1
    SbufToSbuf = 2
    HbmToHbm = 3


class IoDType(enum.IntEnum):
    F32 = 0
    F64 = 1
    F16 = 2
    BF16 = 3
    I64 = 4
    I32 = 5
    I16 = 6
    I8 = 7
    U8 = 8
    Bool = 9


@dataclass
class Instr:
    op: Op
    operands: list[int]
    ip: dict[int, int] = field(default_factory=dict)      # sparse: index -> value
    fp: dict[int, float] = field(default_factory=dict)
    src: int = -1                                           # source-op index (for timelines/reports)
    deps: list[int] = field(default_factory=list)           # earlier instruction indices

    def encode(self, dep_begin: int = 0) -> np.ndarray:
        if len(self.operands) > MAX_OPERANDS:
            raise ValueError(f"{self.op.name}: {len(self.operands)} operands > {MAX_OPERANDS}")
        row = np.zeros(INSTR_WORDS, dtype=np.int64)
        row[0] = int(self.op)
        row[1] = self.src
        row[2] = len(self.operands)
        row[3:9] = -1
        for j, b in enumerate(self.operands):
            row[3 + j] = b
        for k, v in self.ip.items():
            if not 0 <= k < NUM_IPARAMS:
                raise ValueError(f"{self.op.name}: ip index {k} out of range")
            row[9 + k] = int(v)
        for k, v in self.fp.items():
            row[57 + k] = struct.unpack("<q", struct.pack("<d", float(v)))[0]
        row[61] = dep_begin
        row[62] = len(self.deps)
        return row


def view_layout(shape: Sequence[int], views: Sequence[tuple[int, Sequence[int]]]) -> dict[int, int]:
    """ip entries for the shared iteration `shape` and per-operand (offset, strides), as in isa.h."""
    if len(shape) > MAX_DIMS:
        raise ValueError(f"view of rank {len(shape)} exceeds the {MAX_DIMS}-D DMA/engine access pattern")
    if len(views) > 4:
        raise ValueError("at most 4 strided operands")
    ip = {0: len(shape)}
    for d, s in enumerate(shape):
        ip[1 + d] = int(s)
    for j, (offset, strides) in enumerate(views):
        if len(strides) != len(shape):
            raise ValueError(f"operand {j}: {len(strides)} strides for a rank-{len(shape)} view")
        ip[7 + 7 * j] = int(offset)
        for d, s in enumerate(strides):
            ip[8 + 7 * j + d] = int(s)
    return ip


def contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for s in reversed(list(shape)):
        strides.append(acc)
        acc *= max(int(s), 1)
    return strides[::-1]


def encode_program(instrs: Sequence[Instr]) -> tuple[np.ndarray, np.ndarray]:
    """(instruction table [n, 64] int64, flat dependency list int64)."""
    rows = np.zeros((len(instrs), INSTR_WORDS), dtype=np.int64)
    deps: list[int] = []
    for i, ins in enumerate(instrs):
        rows[i] = ins.encode(dep_begin=len(deps))
        deps.extend(ins.deps)
    return rows, np.asarray(deps, dtype=np.int64)
