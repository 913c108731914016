"""Keeps the native forward op's placements (csrc/forward_op.h) in step with the runtime's (`placement._placed`):
which artifact runs on which programs, so that a call from TorchScript reaches Program::run without the GIL.

What the native kernel cannot run (pipeline stages, fp32-as-fp16 inputs) is not placed there, and what it does
not run of what is placed (see csrc/forward_op.h) goes on to the Python kernels (`neuron_emu/runtime/ops.py`)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, TYPE_CHECKING

import torch

from neuron_emu import _C

if TYPE_CHECKING:
    from neuron_emu.runtime.model import LoadedModel

_registered: Dict[int, int] = {}   # id(artifact tensor) -> the data pointer it is placed under natively
enabled = False                    # set by runtime/ops.py when the native kernel is installed


def place(blob: torch.Tensor, models: Sequence["LoadedModel"], dynamic: bool = False) -> None:
    """The artifact now runs on `models` (round robin; with dynamic batching, chunks of one call on one copy);
    [] or a model the native kernel cannot run: Python only."""
    forget(id(blob))
    if not enabled or not models or not all(m.native_ok for m in models):
        return
    from neuron_emu.runtime.batching import compiled_batch
    batch = compiled_batch(models[0]) if dynamic else 0
    ins, outs = models[0].io_specs()
    data = blob.data_ptr()
    _C.forward_op_place(data, blob.numel(), bytes(blob[16:32].numpy()), [m.program for m in models],
                        [m.core.index for m in models], ins, outs, max(batch, 0), models[0].n_user)
    _registered[id(blob)] = data


def forget(key: int) -> None:
    """The artifact (by id of its tensor) is released, evicted or placed anew."""
    data = _registered.pop(key, None)
    if data is not None:
        _C.forward_op_remove(data)


def pin(core: Optional[int]) -> None:
    _C.forward_op_pin(-1 if core is None else core)
