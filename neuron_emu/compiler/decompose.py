"""Capture-time decomposition: an ATen op with no lowering of its own is recorded as the ops of its PyTorch
decomposition (`torch._decomp`), as torch-xla lowers many composite ops to the HLO of their parts before neuronx-cc
sees them; dense linear algebra and the Cephes special functions use our own (decompose_linalg.py, decompose_special.py), as do a few
others (decompose_ops.py), as
torch has none written with ops we lower. Only ops that the real neuronx-cc is not known to reject (rejected.py) are decomposed; a rejected op
stays whole, so it still raises `RejectedOpError` under its own name. A composite op (CompositeImplicitAutograd,
normally decomposed above the dispatcher) that a decomposition calls reaches capture whole and is expanded the same
way."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
from torch._decomp import decomposition_table

from neuron_emu.compiler import decompose_linalg as linalg
from neuron_emu.compiler import decompose_special as special
from neuron_emu.compiler import decompose_ops as ops
from neuron_emu.compiler.ir import op_name
from neuron_emu.compiler.rejected import rejection

_SEEDED = torch.Tag.nondeterministic_seeded
_cache: Dict[int, Optional[Callable]] = {}


def decomposition_for(func) -> Optional[Callable]:
    """PyTorch's decomposition of `func` when the compiler has no lowering for it, else None."""
    key = id(func)
    if key not in _cache:
        from neuron_emu.compiler.lowering import lookup  # (lowering imports the builder: keep capture light)
        fn = linalg.TABLE.get(func) or special.TABLE.get(func) or ops.TABLE.get(func) or decomposition_table.get(func)
        if fn is None and torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd"):
            fn = func.decompose  # a composite op called from inside a decomposition (e.g. broadcast_tensors)
        # (an in-place op stays whole: capture records it as its out-of-place form, which may have a lowering)
        if fn is not None and (lookup(func) is not None or rejection(op_name(func)) or _SEEDED in func.tags
                               or func._schema.is_mutable):
            fn = None
        _cache[key] = fn
    return _cache[key]
