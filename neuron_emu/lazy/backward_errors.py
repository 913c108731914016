"""Errors of device ops that autograd's engine runs inside a C++ backward node, raised when the backward returns.

Raised inside the node, such an error aborts the process ("terminate called without an active exception"): while
the exception unwinds out of the node, the stream guard of torch's Python device guard for PrivateUse1
(torch/csrc/acc/Module.cpp) calls into Python from a noexcept function with the Python error still set. So the op
returns placeholders of its outputs' shapes instead, the backward runs to its end, and the first error is raised
on the user's thread when `torch.autograd.backward` / `grad` (and so `Tensor.backward`) return, else at the next
device op or mark_step (a caller that imported them before the device was registered). The gradients of that
backward are then garbage, as after an error in eager.
A Python hook raising inside a node aborts too (the engine throws its error with the Python error still set): the
hooks of device tensors and modules, and saved-tensor unpack hooks, are wrapped to keep their errors the same way."""
from __future__ import annotations

import functools
from typing import List

import torch
from torch.utils._pytree import tree_flatten, tree_map
from torch.autograd.graph import saved_tensors_hooks
from torch.utils.hooks import BackwardHook

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

    _keep(exc, f"{func} while autograd ran {type(_current_node()).__name__}")
    return tree_map(back, out)


def deferring(hook):
    """`hook` (a Python hook of a device tensor, which autograd's engine calls inside a node) with its error kept
    for later instead of raised: raised there it aborts the process for the same reason (the engine throws it with
    the Python error still set). The gradient passes unchanged; the error is raised as `defer`'s are."""
    @functools.wraps(hook)
    def run(*args, **kwargs):
        try:
            return hook(*args, **kwargs)
        except BaseException as exc:   # (a KeyboardInterrupt in a hook too, as in __torch_dispatch__)
            if not _has_lazy(args):   # (a module hook of a CPU backward: raised as in eager)
                raise
            _keep(exc, f"the backward hook {getattr(hook, '__name__', hook)!r}")
            return None
    return run


def _has_lazy(args) -> bool:
    from neuron_emu.lazy.tensor import LazyTensor
    return any(isinstance(a, LazyTensor) for a in tree_flatten(args)[0])


def install() -> None:
    """Module backward hooks (`register_full_backward_hook`, `register_full_backward_pre_hook`) deferred too: torch
    calls them from a hook of its own on the backward node (torch.utils.hooks.BackwardHook), not one of ours."""
    init = BackwardHook.__init__
    if getattr(init, "_deferring", False):
        return

    def deferring_init(self, module, user_hooks, user_pre_hooks):
        init(self, module, [deferring(h) for h in user_hooks], [deferring(h) for h in user_pre_hooks])
    deferring_init._deferring = True
    BackwardHook.__init__ = functools.wraps(init)(deferring_init)
    saved_tensors_hooks.__enter__ = _enter_deferring
    # torch.autograd.backward / grad (Tensor.backward calls the former) raise what their backward kept, on return
    for name in ("backward", "grad"):
        setattr(torch.autograd, name, _raising_on_return(getattr(torch.autograd, name)))


def _raising_on_return(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        if pending and not in_backward_node():   # (a grad taken inside a node raises at that backward's end)
            raise_pending()
        return out
    return call


def _enter_deferring(self) -> None:
    """`saved_tensors_hooks.__enter__` with an unpack hook whose error is kept (it runs inside the node that reads the
    saved tensor): a device tensor is packed with its shape, dtype and device, to unpack a placeholder instead."""
    from neuron_emu.lazy.tensor import LazyTensor, empty_data
    pack_hook, unpack_hook = self.pack_hook, self.unpack_hook

    def pack(t):
        return (pack_hook(t), tuple(t.shape), t.dtype, t._st.dev) if type(t) is LazyTensor else (pack_hook(t),)

    def unpack(packed):
        try:
            return unpack_hook(packed[0])
        except BaseException as exc:
            if len(packed) == 1:
                raise
            _keep(exc, f"the unpack hook {getattr(unpack_hook, '__name__', unpack_hook)!r} of saved_tensors_hooks")
            return empty_data(*packed[1:])
    torch._C._autograd._push_saved_tensors_default_hooks(pack, unpack)


def _keep(exc: BaseException, what: str) -> None:
    if not pending:
        exc.add_note(f"(raised by {what} in a backward on the lazy device: reported when the backward returned; its "
                     f"gradients are not valid)")
        pending.append(exc)


def raise_pending() -> None:
    """Raise the error a finished backward deferred, if any (and forget it)."""
    if pending:
        exc = pending[0]
        pending.clear()
        raise exc
