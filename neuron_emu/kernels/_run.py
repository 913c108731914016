"""Run one instruction through the extension: the kernel-level API is a one-instruction program."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from neuron_emu import _C
from neuron_emu.hardware import core_spec
from neuron_emu.isa import Instr

_SPECS: dict = {}


def spec(generation: int = 2):
    if generation not in _SPECS:
        _SPECS[generation] = core_spec(generation)
    return _SPECS[generation]


def as_array(t: torch.Tensor, name: str, op: str) -> np.ndarray:
    """Zero-copy float32 view of a contiguous CPU tensor; a clear error otherwise (never a silent copy)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: argument '{name}' must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.float32:
        raise TypeError(f"{op}: argument '{name}' must be float32 (emulated dtypes are selected with dtype=...), "
                        f"got {t.dtype} with shape {tuple(t.shape)}")
    if t.device.type != "cpu":
        raise ValueError(f"{op}: argument '{name}' must be a CPU tensor, got device {t.device}")
    if not t.is_contiguous():
        raise ValueError(f"{op}: argument '{name}' must be contiguous, got shape {tuple(t.shape)} "
                         f"with strides {t.stride()}")
    return t.detach().numpy()


def run(instr: Instr, tensors: Sequence[tuple[str, torch.Tensor]], generation: int = 2) -> dict:
    """Execute `instr` with operands given as (name, tensor); returns the cost dict."""
    arrays = [as_array(t, name, instr.op.name) for name, t in tensors]
    instr.operands = list(range(len(arrays)))
    return _C.run_instr(instr.encode(), arrays, spec(generation))


def counters() -> dict:
    """Per-engine counters accumulated by kernel-level calls since the last reset."""
    return _C.counters()


def reset_counters() -> None:
    _C.reset_counters()
