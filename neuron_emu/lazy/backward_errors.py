"""Errors of device ops that autograd's engine runs inside a C++ backward node, raised when the backward returns.

Raised inside the node, such an error aborts the process ("terminate called without an active exception"): while
the exception unwinds out of the node, the stream guard of torch's Python device guard for PrivateUse1
(torch/csrc/acc/Module.cpp) calls into Python from a noexcept function with the Python error still set. So the op
returns placeholders of its outputs' shapes instead, the backward runs to its end, and the first error is raised
on the user's thread: when `backward()` returns, or at the next device op or mark_step (`torch.autograd.grad`,
`torch.autograd.backward`). The gradients of that backward are then garbage, as after an error in eager."""
from __future__ import annotations

from typing import List

import torch
from torch.utils._pytree import tree_map

_current_node = torch._C._current_autograd_node
pending: List[BaseException] = []   # the first error of the backward that raised it (truthiness checked per op)


def in_backward_node() -> bool:
    return _current_node() is not None


def defer(exc: BaseException, func, args, kwargs, empty):
    """Keep `exc` for later; return placeholders for `func`'s outputs (`empty(shape, dtype, dev)` makes one; an
    output that aliases an input is that input). Raises `exc` when the outputs' shapes cannot be inferred."""
    from neuron_emu.lazy.tensor import LazyTensor
    originals, dev = {}, [0]

    def to_meta(a):
        if isinstance(a, LazyTensor):
            m = torch.empty(a.shape, dtype=a.dtype, device="meta")
            originals[id(m)] = a
            dev[0] = a._st.dev
            return m
        if isinstance(a, torch.device) and a.type != "cpu":
            return torch.device("meta")
        return a

    try:
        out = func(*tree_map(to_meta, args), **tree_map(to_meta, kwargs))
    except Exception:
        raise exc from None   # (the process may abort: nothing better can be returned)

    def back(o):
        if isinstance(o, torch.Tensor):
            a = originals.get(id(o))
            return a if a is not None else empty(tuple(o.shape), o.dtype, dev[0])
        return o

    if not pending:
        node = _current_node()
        exc.add_note(f"(raised by {func} while autograd ran {type(node).__name__} on the lazy device: reported when "
                     f"the backward returned; its gradients are not valid)")
        pending.append(exc)
    return tree_map(back, out)


def raise_pending() -> None:
    """Raise the error a finished backward deferred, if any (and forget it)."""
    if pending:
        exc = pending[0]
        pending.clear()
        raise exc
