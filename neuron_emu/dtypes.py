"""Emulated element types: names, parsing, and fp32 -> dtype rounding (csrc/dtype_convert.cpp).

Storage is always float32: a tensor "in bf16" is a float32 tensor holding bf16-representable values,
rounded exactly as torch's ``.to(torch.bfloat16)`` would round them (round to nearest, ties to even).
fp8 out-of-range behaviour follows torch 2.13: e4m3 saturates to +-448 (inf too), e5m2 overflows to inf;
see the header comment of csrc/dtype_convert.cpp for the sources.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

from neuron_emu import _C
from neuron_emu.isa import DType

DTYPE_NAMES: dict[str, DType] = {
    "fp32": DType.F32,
    "bf16": DType.BF16,
    "fp16": DType.FP16,
    "tf32": DType.TF32,
    "fp8_e4m3": DType.FP8E4M3,
    "fp8_e5m2": DType.FP8E5M2,
}

_TORCH_DTYPES: dict[str, Optional[torch.dtype]] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "tf32": None,  # torch has no tf32 storage dtype
    "fp8_e4m3": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}

_NAME_OF = {v: k for k, v in DTYPE_NAMES.items()}

DTypeLike = Union[str, DType, int]


def parse_dtype(name: DTypeLike) -> DType:
    """The emulated DType for a name ("bf16", ...), a DType, or its integer code; ValueError otherwise."""
    if isinstance(name, DType):
        return name
    if isinstance(name, str):
        key = name.strip().lower()
        if key in DTYPE_NAMES:
            return DTYPE_NAMES[key]
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
    return _TORCH_DTYPES[dtype_name(name)]


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
