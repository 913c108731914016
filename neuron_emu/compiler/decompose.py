"""Capture-time decomposition: an ATen op with no lowering of its own is recorded as the ops of a decomposition, as
torch-xla lowers many composite ops to the HLO of their parts before neuronx-cc sees them. PyTorch's (`torch._decomp`)
where it has one written with ops we lower; our own for dense linear algebra (decompose_linalg.py), the Cephes
special functions (decompose_special.py) and a few others (decompose_ops.py). A composite op (CompositeImplicitAutograd,
normally decomposed above the dispatcher) that a decomposition calls reaches capture whole and is expanded the same
way. Only ops that the real neuronx-cc is not known to reject (rejected.py) are decomposed: a rejected op stays
whole, so it still raises `RejectedOpError` under its own name."""
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
    """The decomposition to record instead of `func`: a rewrite of a case its lowering refuses (decompose_ops
    PREFERRED; it returns NotImplemented for the cases the lowering takes), or, when the compiler has no lowering
    for `func`, our own or PyTorch's decomposition. None: record `func` whole."""
    key = id(func)
    if key not in _cache:
        from neuron_emu.compiler.lowering import lookup  # (lowering imports the builder: keep capture light)
        fn = ops.PREFERRED.get(func)
        if fn is None and lookup(func) is None:
            fn = linalg.TABLE.get(func) or special.TABLE.get(func) or ops.TABLE.get(func) or decomposition_table.get(func)
            if fn is None and torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd"):
                fn = func.decompose  # a composite op called from inside a decomposition (e.g. broadcast_tensors)
        # (an in-place op stays whole: capture records it as its out-of-place form, which may have a lowering)
        if fn is not None and (rejection(op_name(func)) or _SEEDED in func.tags or func._schema.is_mutable):
            fn = None
        _cache[key] = fn
    return _cache[key]
