"""Emulated element types: names, parsing, and fp32 -> dtype rounding (csrc/dtype_convert.cpp).

Storage is always float32: a tensor "in bf16" is a float32 tensor holding bf16-representable values,
rounded exactly as torch's ``.to(torch.bfloat16)`` would round them (round to nearest, ties to even).
fp8 out-of-range behaviour follows torch 2.13: e4m3 saturates to +-448 (inf too), e5m2 overflows to inf;
see the header comment of csrc/dtype_convert.cpp for the sources.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from neuron_emu import _C
from neuron_emu.isa import DType, IoDType


@dataclass(frozen=True)
class DTypeInfo:
    """One emulated dtype: its code and name and device size (from the C++ table, csrc/common.h), the torch
    dtype with the same values, other spellings users pass, and whether `--auto-cast-type` accepts it."""
    dtype: DType
    name: str
    bytes: int
    torch: Optional[torch.dtype]
    aliases: Tuple[str, ...]
    auto_cast: bool


_PY_COLUMNS = {  # name -> (torch dtype, aliases, valid --auto-cast-type); the C++ table supplies code and size
    "fp32": (torch.float32, ("float32", "f32"), False),
    "bf16": (torch.bfloat16, ("bfloat16",), True),
    "fp16": (torch.float16, ("float16", "f16"), True),
    "tf32": (None, (), True),  # torch has no tf32 storage type
    "fp8_e4m3": (torch.float8_e4m3fn, ("float8_e4m3fn",), True),
    "fp8_e5m2": (torch.float8_e5m2, ("float8_e5m2",), False),
}

DTYPES: Tuple[DTypeInfo, ...] = tuple(
    DTypeInfo(DType(code), name, nbytes, *_PY_COLUMNS[name]) for code, name, nbytes in _C.dtype_table())
if {d.name for d in DTYPES} != set(_PY_COLUMNS) or [int(d.dtype) for d in DTYPES] != [int(v) for v in DType]:
    raise ImportError("neuron_emu.dtypes: the Python columns do not match the extension's dtype table")

DTYPE_NAMES: Dict[str, DType] = {d.name: d.dtype for d in DTYPES}
DTYPE_BYTES: Dict[DType, int] = {d.dtype: d.bytes for d in DTYPES}
AUTO_CAST_TYPES: Dict[str, DType] = {d.name: d.dtype for d in DTYPES if d.auto_cast}
# torch dtype of a tensor -> the emulated dtype its values are representable in (fp32 is the default storage)
TORCH_TO_EMU: Dict[torch.dtype, DType] = {d.torch: d.dtype for d in DTYPES if d.torch is not None}
_BY_SPELLING: Dict[str, DType] = {a: d.dtype for d in DTYPES for a in (d.name,) + d.aliases}
_NAME_OF = {d.dtype: d.name for d in DTYPES}

# Host-side element types of model inputs and outputs (converted by IoIn/IoOut).
IO_DTYPES: Dict[torch.dtype, IoDType] = {
    torch.float32: IoDType.F32, torch.float64: IoDType.F64, torch.float16: IoDType.F16, torch.bfloat16: IoDType.BF16,
    torch.int64: IoDType.I64, torch.int32: IoDType.I32, torch.int16: IoDType.I16, torch.int8: IoDType.I8,
    torch.uint8: IoDType.U8, torch.bool: IoDType.Bool}

DTypeLike = Union[str, DType, int, torch.dtype]


def parse_dtype(name: DTypeLike) -> DType:
    """The emulated DType for a name ("bf16", ...), a DType, or its integer code; ValueError otherwise."""
    if isinstance(name, DType):
        return name
    if isinstance(name, torch.dtype):
        if name in TORCH_TO_EMU:
            return TORCH_TO_EMU[name]
        raise ValueError(f"{name} is not an emulated dtype; valid: {', '.join(str(t) for t in TORCH_TO_EMU)}")
    if isinstance(name, str):
        key = name.strip().lower()
        if key in _BY_SPELLING:
            return _BY_SPELLING[key]
        raise ValueError(f"unknown emulated dtype {name!r}; valid names: {', '.join(DTYPE_NAMES)}")
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        try:
            return DType(int(name))
        except ValueError:
            pass
        raise ValueError(f"unknown emulated dtype code {name!r}; valid codes: "
                         + ", ".join(f"{int(v)} ({k})" for k, v in DTYPE_NAMES.items()))
    raise ValueError(f"unknown emulated dtype {name!r} (type {type(name).__name__}); valid names: {', '.join(DTYPE_NAMES)}")


def dtype_name(dtype: DTypeLike) -> str:
    return _NAME_OF[parse_dtype(dtype)]


def torch_dtype(name: DTypeLike) -> Optional[torch.dtype]:
    """The torch dtype with the same values (tf32 -> None: torch has no tf32 storage type)."""
    return DTYPES[int(parse_dtype(name))].torch


def _as_f32_array(t: torch.Tensor, fn: str) -> np.ndarray:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{fn}: argument 't' must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.float32:
        raise TypeError(f"{fn}: argument 't' must be float32, got {t.dtype} with shape {tuple(t.shape)}")
    if t.device.type != "cpu":
        raise ValueError(f"{fn}: argument 't' must be a CPU tensor, got device {t.device}")
    return t.detach().contiguous().numpy()  # zero-copy when already contiguous


def round_to(t: torch.Tensor, dtype: DTypeLike) -> torch.Tensor:
    """A new float32 tensor with every value of `t` rounded to `dtype` (bit-exact with torch's .to())."""
    d = parse_dtype(dtype)
    out = _C.round_to(_as_f32_array(t, "round_to"), int(d))
    return torch.from_numpy(out).reshape(t.shape)


def to_bits(t: torch.Tensor, dtype: DTypeLike) -> torch.Tensor:
    """Bit patterns of the rounded values: uint16 for bf16/fp16, uint8 for fp8, uint32 for fp32/tf32
    (returned as torch.uint16/uint8/uint32 tensors)."""
    d = parse_dtype(dtype)
    out = _C.to_bits(_as_f32_array(t, "to_bits"), int(d))
    return torch.from_numpy(out).reshape(t.shape)
