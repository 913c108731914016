"""Keeps the native forward op's placements (csrc/forward_op.h) in step with the runtime's (`placement._placed`):
which artifact runs on which programs, so that a call from TorchScript reaches Program::run without the GIL.

What the native kernel cannot run (pipeline stages, fp32-as-fp16 inputs) is not placed there, and what it does
not run of what is placed (see csrc/forward_op.h) goes on to the Python kernels (`neuron_emu/runtime/ops.py`)."""
from __future__ import annotations

import threading
from typing import Dict, Optional, Sequence, Tuple, TYPE_CHECKING

import torch

from neuron_emu import _C

if TYPE_CHECKING:
    from neuron_emu.runtime.model import LoadedModel

# id(artifact tensor) -> (its data pointer, the arguments of _C.forward_op_place). Aliases of one artifact's
# storage (a detached copy called directly) share a data pointer, the native registry's key: it holds the latest
# placement of that pointer (_owner) and, when that tensor is released, another live alias's.
_registered: Dict[int, Tuple[int, tuple]] = {}
_owner: Dict[int, int] = {}        # data pointer -> id of the tensor whose placement the native registry holds
# RLock: a release (weakref.finalize) may run from a garbage collection inside place() on the same thread
_lock = threading.RLock()
enabled = False                    # set by runtime/ops.py when the native kernel is installed


def place(blob: torch.Tensor, models: Sequence["LoadedModel"], dynamic: bool = False) -> None:
    """The artifact now runs on `models` (round robin; with dynamic batching, a call's chunks on the pinned copy or
    spread over the copies); [] or a model the native kernel cannot run: Python only."""
    forget(id(blob))
    if not enabled or not models or not all(m.native_ok for m in models):
        return
    from neuron_emu.runtime.batching import compiled_batch
    batch = compiled_batch(models[0]) if dynamic else 0
    ins, outs = models[0].io_specs()
    data = blob.data_ptr()
    args = (blob.numel(), bytes(blob[16:32].numpy()), [m.program for m in models], [m.core.index for m in models],
            ins, outs, max(batch, 0), models[0].n_user)
    with _lock:
        _C.forward_op_place(data, *args)
        _registered[id(blob)] = (data, args)
        _owner[data] = id(blob)


def forget(key: int) -> None:
    """The artifact (by id of its tensor) is released, evicted or placed anew."""
    with _lock:
        entry = _registered.pop(key, None)
        if entry is None or _owner.get(entry[0]) != key:
            return
        data = entry[0]
        other = next((k for k, e in list(_registered.items()) if e[0] == data), None)
        if other is None:
            _owner.pop(data, None)
            _C.forward_op_remove(data)
        else:   # an alias of the same storage is still placed: the native kernel runs its placement now
            _owner[data] = other
            _C.forward_op_place(data, *_registered[other][1])


def pin(core: Optional[int]) -> None:
    _C.forward_op_pin(-1 if core is None else core)
