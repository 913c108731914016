"""The instruction encoding, read from the one op schema of csrc/op_schema.h (via `_C.op_schema()`).

An `Instr` names its parameters: `Instr(Op.MatMul, operands, {"M": 4, "K": 8, ...})`. Encoding looks up each
field's slot in the schema the extension exports, so the compiler, the kernel-level API and the C++ kernels
cannot disagree about a layout; an unknown or missing field is an error naming the op and the field.
The enums below (Alu, ActFunc, ...) are value tables of fields and mirror csrc/isa.h
(tests/test_isa.py checks their sizes against the extension and their meaning against torch).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, Optional, Sequence, Union

import numpy as np

from neuron_emu import _C

INSTR_WORDS = 64
MAX_OPERANDS = 6
NUM_IPARAMS = 48
NUM_FPARAMS = 4
MAX_DIMS = 6
VIEW_WORDS = _C.VIEW_WORDS

# Built-in op codes, generated from the schema (run-time ops are addressed by name).
Op = enum.IntEnum("Op", {name: d["code"] for name, d in sorted(_C.op_schema().items(), key=lambda kv: kv[1]["code"])
                         if d["code"] < 64})
Op.__doc__ = "Built-in op codes (csrc/op_schema.h)."


@dataclass(frozen=True)
class OpSchema:
    name: str
    code: int
    engine: str
    operands: tuple
    min_operands: int
    max_operands: int
    views: int
    writes: int
    ints: Dict[str, int]     # field name -> ip slot
    reals: Dict[str, int]    # field name -> fp slot


_schemas: Dict[str, OpSchema] = {}


def refresh_schema() -> None:
    """Re-read the schema from the extension (after an op was registered at run time)."""
    _schemas.clear()
    for name, d in _C.op_schema().items():
        _schemas[name] = OpSchema(name, d["code"], d["engine"], tuple(d["operands"]), d["min_operands"],
                                  d["max_operands"], d["views"], d["writes"],
                                  {f: slot for f, kind, slot in d["fields"] if kind == "int"},
                                  {f: slot for f, kind, slot in d["fields"] if kind == "real"})


def schema(op: Union[Op, str]) -> OpSchema:
    """The schema of a built-in op (Op) or of any registered op by name; KeyError names unknown ones."""
    name = op.name if isinstance(op, Op) else str(op)
    if name not in _schemas:
        refresh_schema()
    if name not in _schemas:
        raise KeyError(f"unknown op {name!r}; registered ops: {', '.join(sorted(_schemas))}")
    return _schemas[name]


refresh_schema()


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
    Atan2 = 19
    Hypot = 20
    Copysign = 21
    FMax = 22
    FMin = 23


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
    Tan = 31
    Sinh = 32
    Cosh = 33
    Asin = 34
    Acos = 35
    Atan = 36
    Asinh = 37
    Acosh = 38
    Atanh = 39
    Log2 = 40
    Log10 = 41
    Exp2 = 42
    Erfc = 43
    Lgamma = 44
    IsNan = 45
    IsInf = 46
    Signbit = 47


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


def _f64_bits(v: float) -> int:
    return struct.unpack("<q", struct.pack("<d", float(v)))[0]


@dataclass
class Instr:
    op: Union[Op, str]                                     # a built-in Op, or a run-time op's name
    operands: list[int]
    fields: Dict[str, Union[int, float]] = field(default_factory=dict)  # every field of the op, by name
    view: Optional[Dict[int, int]] = None                  # ops with views: view_layout(...)
    src: int = -1                                           # source-op index (for timelines/reports)
    deps: list[int] = field(default_factory=list)           # earlier instruction indices

    @property
    def name(self) -> str:
        return self.op.name if isinstance(self.op, Op) else str(self.op)

    def encode(self, dep_begin: int = 0) -> np.ndarray:
        sch = schema(self.op)
        who = sch.name
        if len(self.operands) > MAX_OPERANDS:
            raise ValueError(f"{who}: {len(self.operands)} operands > {MAX_OPERANDS}")
        row = np.zeros(INSTR_WORDS, dtype=np.int64)
        row[0] = sch.code
        row[1] = self.src
        row[2] = len(self.operands)
        row[3:9] = -1
        for j, b in enumerate(self.operands):
            row[3 + j] = b
        if sch.views:
            if self.view is None:
                raise ValueError(f"{who}: needs a view layout (view_layout(...)) for its {sch.views} strided operands")
            for k, v in self.view.items():
                if not 0 <= k < VIEW_WORDS:
                    raise ValueError(f"{who}: view slot {k} outside the view layout")
                row[9 + k] = int(v)
        elif self.view is not None:
            raise ValueError(f"{who}: takes no view layout")
        unknown = [k for k in self.fields if k not in sch.ints and k not in sch.reals]
        if unknown:
            raise ValueError(f"{who}: unknown field(s) {', '.join(map(repr, unknown))}; fields: "
                             f"{', '.join(list(sch.ints) + list(sch.reals))}")
        missing = [k for k in list(sch.ints) + list(sch.reals) if k not in self.fields]
        if missing:
            raise ValueError(f"{who}: missing field(s) {', '.join(missing)}")
        for k, slot in sch.ints.items():
            row[9 + slot] = int(self.fields[k])
        for k, slot in sch.reals.items():
            row[57 + slot] = _f64_bits(self.fields[k])
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
