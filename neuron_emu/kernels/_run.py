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


def check_tensor(t, name: str, fn: str, contiguous: bool = False) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{fn}: argument '{name}' must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.float32:
        raise TypeError(f"{fn}: argument '{name}' must be float32 (emulated dtypes are chosen by the dtype/out_dtype "
                        f"arguments), got {t.dtype} with shape {tuple(t.shape)}")
    if t.device.type != "cpu":
        raise ValueError(f"{fn}: argument '{name}' must be a CPU tensor, got device {t.device}")
    if contiguous and not t.is_contiguous():
        raise ValueError(f"{fn}: argument '{name}' must be contiguous, got shape {tuple(t.shape)} "
                         f"with strides {t.stride()}")
    return t


def output_for(x: torch.Tensor, out, fn: str, out_name: str = "out", x_name: str = "x") -> torch.Tensor:
    """`out` checked to have x's shape, or a new contiguous float32 tensor of that shape."""
    if out is None:
        return torch.empty(x.shape, dtype=torch.float32)
    check_tensor(out, out_name, fn)
    if tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"{fn}: argument '{out_name}' has shape {tuple(out.shape)}, {x_name} has {tuple(x.shape)}")
    return out


def as_array(t: torch.Tensor, name: str, op: str) -> np.ndarray:
    """Zero-copy float32 view of a contiguous CPU tensor; a clear error otherwise (never a silent copy)."""
    return check_tensor(t, name, op, contiguous=True).detach().numpy()


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
