"""LazyTensor: a tensor on the emulated XLA device whose value is recorded, not computed.

Every device tensor refers to a `Storage` (one device allocation, whose current value is a DeviceData or a Ref into
the pending graph) and a chain of view steps over it, as torch_xla's functionalization does: reading a view records
its view ops over the storage's value; writing to a tensor (an in-place op, `copy_`, `out=`) computes the new
value functionally and scatters it back through the chain into the storage, so every alias sees it. Device tensors
report contiguous strides, as XLA tensors do.

An op is routed once: view ops extend the chain; mutating ops run their functional variant and write back;
functional ops with a lowering are recorded; others use PyTorch's decomposition when one exists, else run on CPU
with an `aten::<op>` counter (their device inputs are materialised first: a graph cut)."""
from __future__ import annotations

import collections
import itertools
import os
import weakref
from typing import Any, Dict, List, Optional

import torch
from torch._decomp import decomposition_table

from neuron_emu.compiler.lowering import lookup
from neuron_emu.lazy import backward_errors, bf16, draws, foreach, fused_optim, metrics, replay
from neuron_emu.lazy.decompositions import TABLE as preferred, VALUE_TABLE as value_decomposition
from neuron_emu.lazy import pool_backward, rnn_cells, upsample_backward  # noqa: F401,E402  (register decompositions)
from neuron_emu.lazy.device import device_type, is_ours
from neuron_emu.lazy.storage_handle import DeviceStorageHandle, tensor_address
from neuron_emu.lazy.record import DeviceData, LNode, MetaError, Ref, _infer, _meta_cache, add_to_trace, record, \
    user_frame, user_site
from neuron_emu.lazy.record import dispatch_site as _site

aten = torch.ops.aten


class Storage:
    """One device allocation on device `dev` (an index among the visible NeuronCores); `seq` orders a step's
    outputs deterministically (graph hashing)."""
    __slots__ = ("value", "seq", "dev", "__weakref__")


# Storages that may hold a pending value (a Ref), by seq: what mark_step materialises. Only storages given a Ref
# are entered (one dict store of a weak reference per recorded op); dead and materialised ones are dropped at
# the sync, or when the registry outgrows its last live size (a loop without mark_step).
_pending: Dict[int, "weakref.ref[Storage]"] = {}
_backward_errors = backward_errors.pending   # (the list itself: one truthiness test per op)
_prune_at = [4096]
_seq = itertools.count()
_ref = weakref.ref


def _register(s: Storage) -> None:
    _pending[s.seq] = _ref(s)
    if len(_pending) > _prune_at[0]:
        prune_pending()


def _storage(value, live: bool = True, dev: int = 0) -> Storage:
    s = Storage()
    s.value = value
    s.seq = next(_seq)
    s.dev = dev
    if live and type(value) is Ref:
        _register(s)
    return s


def _set_value(s: Storage, value) -> None:
    s.value = value
    if type(value) is Ref:
        _register(s)


def prune_pending() -> bool:
    """Drop dead and materialised storages from the registry; True while some live storage is still pending."""
    for k, r in list(_pending.items()):
        s = r()
        if s is None or type(s.value) is not Ref:
            del _pending[k]
    _prune_at[0] = 2 * len(_pending) + 4096
    return bool(_pending)


def _by_seq(s: Storage) -> int:
    return s.seq


def pending_storages() -> List[Storage]:
    """Every live storage with a pending value, in creation order."""
    out = []
    for r in _pending.values():
        s = r()
        if s is not None and type(s.value) is Ref:
            out.append(s)
    out.sort(key=_by_seq)
    return out


def forget_pending() -> None:
    """After a sync of every pending storage: none is pending any more."""
    _pending.clear()
    _prune_at[0] = 4096


class LazyTensor(torch.Tensor):
    _view: tuple = ()    # chain of view steps over the storage (most tensors have none)
    _vc = None           # (storage value, value of the view chain) cached by value_of

    @staticmethod
    def __new__(cls, st: Storage, view: tuple, shape, dtype):
        r = torch.Tensor._make_wrapper_subclass(cls, shape, dtype=dtype, device=_device(st.dev))
        r._st = st
        if view:
            r._view = view
        return r

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        if _backward_errors and not backward_errors.in_backward_node():
            backward_errors.raise_pending()   # (after torch.autograd.grad / .backward, which have no hook of ours)
        try:
            if not kwargs and not _EAGER and _fast_ok.get(id(func)):
                r = _fast(func, args)
                if r is not None:
                    return r
            if getattr(_site, "v", None) is not None:   # nested in another op's dispatch: that op's line
                return dispatch(func, args, kwargs or {})
            _site.v = user_site(1)
            try:
                return dispatch(func, args, kwargs or {})
            finally:
                _site.v = None
        except BaseException as e:   # raised in a C++ backward node it would abort the process (backward_errors.py)
            if getattr(_site, "v", None) is not None or not backward_errors.in_backward_node():
                raise
            return backward_errors.defer(e, func, args, kwargs or {}, empty_data)

    def register_hook(self, hook):
        return super().register_hook(backward_errors.deferring(hook))

    def register_post_accumulate_grad_hook(self, hook):
        return super().register_post_accumulate_grad_hook(backward_errors.deferring(hook))

    def __repr__(self, *, tensor_contents=None):
        cpu = to_cpu(self, "print")
        s = repr(cpu)
        dev = f", device='{self.device}'"
        i = s.find(", dtype=")
        s = s[:i] + dev + s[i:] if i >= 0 else s[:-1] + dev + ")"
        if self.grad_fn is not None:
            s = s[:-1] + f", grad_fn=<{type(self.grad_fn).__name__}>)"
        elif self.requires_grad:
            s = s[:-1] + ", requires_grad=True)"
        return s

    def __format__(self, spec):
        if self.dim() == 0:
            return self.item().__format__(spec)
        return repr(self).__format__(spec)

    # `p.data = new` (and Module.to(dtype) of a device model, which assigns each converted parameter that way)
    # copies the C++ tensor's metadata only: the value, held in Python, must follow or it silently stays the old one
    @property
    def data(self):
        return torch._C.TensorBase.data.__get__(self)

    @data.setter
    def data(self, new):
        torch._C.TensorBase.data.__set__(self, new)   # (torch's checks: a CPU tensor is refused there)
        self._st, self._view, self._vc = new._st, new._view, new._vc

    # What torch does for a tensor of a storage-less device (XLA's): the subclass's own paths refuse
    def tolist(self):
        return to_cpu(self, ".tolist()").tolist()

    def untyped_storage(self):
        return DeviceStorageHandle(self._st, self.device)   # identity for tied-weight checks (storage_handle.py)

    def data_ptr(self):
        return tensor_address(self)

    def numpy(self, *, force: bool = False):
        if force:
            return to_cpu(self, ".numpy()").clone().numpy()
        raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                        f"tensor to host memory first.")

    def __array__(self, dtype=None, copy=None):
        return self.numpy()

    def __reduce_ex__(self, proto):
        """Pickled (torch.save) as torch pickles an XLA tensor: a CPU copy rebuilt on the device at load, where
        `map_location` applies; loadable with weights_only (the subclass itself would be refused). A parameter
        (`nn.Parameter` of a device tensor is the tensor flagged `_is_param`) is rebuilt as one, as torch pickles it."""
        if getattr(self, "_is_param", False):
            return torch._utils._rebuild_parameter, (self.detach(), self.requires_grad, collections.OrderedDict())
        return (torch._utils._rebuild_device_tensor_from_cpu_tensor,
                (to_cpu(self, "torch.save").clone(), self.dtype, str(self.device), self.requires_grad))


_DEVICES: List[torch.device] = []   # torch.device of each device index
_make = torch.Tensor._make_wrapper_subclass


def _device(dev: int) -> torch.device:
    try:
        return _DEVICES[dev]
    except IndexError:
        while len(_DEVICES) <= dev:
            _DEVICES.append(torch.device(device_type(), len(_DEVICES)))
        return _DEVICES[dev]


def device_index(d) -> int:
    """The device index of a `device=` argument naming this device (None: index 0)."""
    return (torch.device(d).index or 0) if d is not None else 0


class MixedDevices(RuntimeError):
    pass


def mixed_devices(a: int, b: int) -> RuntimeError:
    """torch's error for an op whose tensors are on two devices."""
    return MixedDevices(f"Expected all tensors to be on the same device, but found at least two devices, "
                        f"{_device(a)} and {_device(b)}!")


def _device_of(args, kwargs) -> int:
    """The device of an op's device tensors (raising torch's error if they are on two), else of its `device=`."""
    dev = None
    for a in itertools.chain(args, kwargs.values()):
        if type(a) is LazyTensor:
            d = a._st.dev
        elif isinstance(a, (list, tuple)) and a and any(type(x) is LazyTensor for x in a):
            d = _device_of(a, _NOKW)
        else:
            continue
        if dev is None:
            dev = d
        elif d != dev:
            raise mixed_devices(dev, d)
    d = kwargs.get("device")
    if d is not None and is_ours(d):   # (an explicit device wins: `zeros_like(x, device='xla:1')`, `new_ones`)
        return device_index(d)
    return 0 if dev is None else dev


def _wrap(value, live: bool = True, dev: int = 0) -> LazyTensor:
    st = Storage()
    st.value = value
    st.seq = next(_seq)
    st.dev = dev
    if live and type(value) is Ref:
        _register(st)
    r = _make(LazyTensor, value.shape, dtype=value.dtype, device=_DEVICES[dev] if dev < len(_DEVICES) else
              _device(dev))
    r._st = st
    return r


_RESIZABLE = 1 << 40   # bytes a 0-element allocation claims (no memory behind a wrapper: only a bound)


def empty_data(size, dtype=None, dev: int = 0) -> LazyTensor:
    """The allocation factories (torch.empty / empty_strided on the device): fresh device data. A 0-element one
    (ATen's placeholder for an out= result, e.g. in combinations) claims a large storage so that the op can
    resize it (_resize_out)."""
    t = _wrap(DeviceData(torch.empty(tuple(size), dtype=dtype or torch.get_default_dtype())), dev=dev)
    if t.numel() == 0:
        r = _make(LazyTensor, t.shape, dtype=t.dtype, device=_device(dev), storage_size=_RESIZABLE)
        r._st = t._st
        return r
    return t


def from_cpu(t: torch.Tensor, dev: int = 0) -> LazyTensor:
    with metrics.timed("TransferToDeviceTime"):
        return _wrap(DeviceData(bf16.round_transfer(t.detach().clone())), dev=dev)


# -- values of tensors, view chains -------------------------------------------------------------------------

def value_of(t: LazyTensor):
    """The tensor's current value (recording its view ops over the storage's value)."""
    v = t._st.value
    if not t._view:
        return v
    vc = t._vc
    if vc is not None and vc[0] is v:
        return vc[1]
    base = v
    for func, args, kwargs, idx in t._view:
        r = record(func, (v,) + args, kwargs)
        v = r[idx] if idx is not None else r
    t._vc = (base, v)
    return v


def to_cpu(t: LazyTensor, cut: str = ".cpu()") -> torch.Tensor:
    """The tensor's data on CPU (a view of the device buffer: callers must not write to it). Runs the pending
    graph of this tensor's storage only, as torch_xla does for a print or `.item()`."""
    st = t._st
    replay.impure_events[0] += 1
    if isinstance(st.value, Ref):
        from neuron_emu.lazy.executor import sync
        sync([st], cut, user_frame())
    with metrics.timed("TransferFromDeviceTime"):
        data = st.value.t
        if data is None:       # written by a step still running on the device (device_queue.py)
            from neuron_emu.lazy import device_queue
            device_queue.wait()
            data = st.value.t
            if data is None:
                raise RuntimeError("this device tensor has no value: the asynchronous step computing it failed")
        return apply_view(t, data)


def apply_view(t: LazyTensor, data: torch.Tensor) -> torch.Tensor:
    """`t`'s view chain taken over `data` (CPU or meta data shaped as its storage's value)."""
    for func, args, kwargs, idx in t._view:
        r = cpu_view(func)(data, *args, **kwargs)
        data = r[idx] if idx is not None else r
    return data


# device tensors report contiguous strides (as XLA's do), so a view of one is a reshape of strided CPU data
_CPU_VIEW = {aten.view.default: aten.reshape.default, aten._unsafe_view.default: aten.reshape.default}


def cpu_view(func):
    """The op that takes view step `func` on CPU data."""
    return _CPU_VIEW.get(func, func)


def _view_step(func, args, kwargs, i, multi):
    """Normalise one output of a view op into a chain step whose inverse is known (split/unbind -> slice/select)."""
    rest = tuple(args[1:])
    if func in (aten.split.Tensor, aten.split_with_sizes.default, aten.unbind.int):
        x = args[0]
        if func is aten.unbind.int:
            dim = rest[0] if rest else kwargs.get("dim", 0)
            return (aten.select.int, (dim, i), {}, None)
        dim = rest[1] if len(rest) > 1 else kwargs.get("dim", 0)
        dim = dim % x.dim()
        if func is aten.split.Tensor:
            size = rest[0]
            start = i * size
            return (aten.slice.Tensor, (dim, start, min(start + size, x.shape[dim]), 1), {}, None)
        sizes = rest[0]
        start = sum(sizes[:i])
        return (aten.slice.Tensor, (dim, start, start + sizes[i], 1), {}, None)
    return (func, rest, dict(kwargs), i if multi else None)


def _view(func, args, kwargs):
    x = args[0]
    if not isinstance(x, LazyTensor) or any(isinstance(a, torch.Tensor) for a in args[1:]):
        return _functional(func, args, kwargs)
    if func in _SHARE:  # same storage and chain
        return LazyTensor(x._st, x._view, x.shape, x.dtype)
    if _composite_view(func):
        r = func.decompose(*args, **kwargs)
        return LazyTensor(x._st, x._view, x.shape, x.dtype) if r is x else r
    base = x._st.value
    vargs = (value_of(x),) + tuple(args[1:])
    r = _fast_record(func, vargs) if not kwargs else None
    if r is None:
        try:
            r = record(func, vargs, kwargs)
        except MetaError:
            return fallback(func, args, kwargs)
    multi = isinstance(r, list)
    outs = []
    for i, ref in enumerate(r if multi else [r]):
        step = _view_step(func, args, kwargs, i, multi)
        t = LazyTensor(x._st, x._view + (step,), ref.shape, ref.dtype)
        t._vc = (base, ref)   # the chain's value over the storage's current value: recorded once, here
        outs.append(t)
    return outs if multi else outs[0]


_SHARE = {aten.detach.default, aten.alias.default, aten.lift_fresh.default}
_composite: Dict[int, bool] = {}


def _composite_view(func) -> bool:
    """A view op the compiler has no lowering for but PyTorch composes of others (`flatten`, `unflatten`, which
    torch's decompositions call): run its composition, whose views are lowered. Recorded as itself, the whole graph
    would fail to compile and run op by op on CPU."""
    c = _composite.get(id(func))
    if c is None:
        c = _composite[id(func)] = lookup(func) is None and \
            func.has_kernel_for_dispatch_key(torch._C.DispatchKey.CompositeImplicitAutograd)
    return c


def _scatter(step, base: LazyTensor, src: LazyTensor) -> LazyTensor:
    """The base with `src` written where view `step` of it reads: the inverse of one view step."""
    func, args, kwargs, idx = step
    if func is aten.slice.Tensor:
        a = list(args) + [None] * (4 - len(args))
        dim, start, end, st = (a[0] if a[0] is not None else 0), a[1], a[2], (a[3] if a[3] is not None else 1)
        return dispatch(aten.slice_scatter.default, (base, src, dim, start, end, st), {})
    if func is aten.select.int:
        return dispatch(aten.select_scatter.default, (base, src) + tuple(args), {})
    if func is aten.diagonal.default:
        return dispatch(aten.diagonal_scatter.default, (base, src) + tuple(args), kwargs)
    if func is aten.as_strided.default:   # (fill_diagonal_'s; strides over the contiguous value at this step)
        return dispatch(aten.as_strided_scatter.default, (base, src) + tuple(args), kwargs)
    if func in (aten.view.default, aten._unsafe_view.default, aten._reshape_alias.default, aten.unsqueeze.default,
                aten.reshape.default, aten.flatten.using_ints, aten.unflatten.int,
                aten.squeeze.default, aten.squeeze.dim, aten.squeeze.dims, aten.view.dtype):
        if func is aten.view.dtype:
            raise RuntimeError("in-place write through a dtype view is not supported on the lazy device")
        return dispatch(aten.view.default, (src, list(base.shape)), {})
    if func is aten.permute.default:
        dims = [d % src.dim() for d in args[0]]
        inv = [dims.index(i) for i in range(len(dims))]
        return dispatch(aten.permute.default, (src, inv), {})
    if func is aten.transpose.int:
        return dispatch(aten.transpose.int, (src,) + tuple(args), {})
    if func is aten.t.default:
        return dispatch(aten.t.default, (src,), {})
    raise ViewWriteError(f"in-place write through a view made by {func._schema.name} is not supported on the lazy "
                         f"device (it would not reach the viewed tensor); write to a clone instead")


class ViewWriteError(RuntimeError):
    """A write through a view whose inverse the device does not know (unfold, real/imag, a dtype view, ...)."""


def _tmp(value, dev: int) -> LazyTensor:
    return _wrap(value, live=False, dev=dev)


def assign(t: LazyTensor, value) -> None:
    """Give `t` a new value (same shape and dtype), visible through every alias of its storage."""
    if not t._view:
        _set_value(t._st, value)
        return
    vals = [t._st.value]
    for func, args, kwargs, idx in t._view[:-1]:
        r = record(func, (vals[-1],) + args, kwargs)
        vals.append(r[idx] if idx is not None else r)
    dev = t._st.dev
    new = _tmp(value, dev)
    for step, b in zip(reversed(t._view), reversed(vals)):
        new = _scatter(step, _tmp(b, dev), new)
    _set_value(t._st, value_of(new))


def _coerce(t: LazyTensor, v, what: str):
    """`v` made to `t`'s dtype and shape for a write (in-place result or copy_ source)."""
    if v.dtype != t.dtype:
        if what != "copy_" and not torch.can_cast(v.dtype, t.dtype):
            raise RuntimeError(f"result type {_tname(v.dtype)} can't be cast to the desired output type "
                               f"{_tname(t.dtype)}")
        v = record(aten._to_copy.default, (v,), {"dtype": t.dtype})
    if v.shape != tuple(t.shape):
        v = record(aten.expand.default, (v, list(t.shape)), {})
        v = record(aten.clone.default, (v,), {})
    return v


def _tname(d):
    return {torch.float32: "Float", torch.float64: "Double", torch.int64: "Long", torch.int32: "Int",
            torch.bool: "Bool", torch.float16: "Half", torch.bfloat16: "BFloat16"}.get(d, str(d))


# -- argument conversion ------------------------------------------------------------------------------------

_tensor_slots: Dict[Any, tuple] = {}


def _slots(func):
    s = _tensor_slots.get(id(func))
    if s is None:
        pos, names = [], []
        for i, a in enumerate(func._schema.arguments):
            if isinstance(a.type, torch.TensorType):
                (names if a.kwarg_only else pos).append(i if not a.kwarg_only else a.name)
        s = _tensor_slots[id(func)] = (frozenset(pos), frozenset(names))
    return s


def _val(a, f64: bool):
    if isinstance(a, LazyTensor):
        return value_of(a)
    if isinstance(a, torch.Tensor):   # a CPU tensor mixed in (0-dim scalars, captured constants): device data
        return DeviceData(a.detach().clone())
    if isinstance(a, (list, tuple)) and a and any(isinstance(x, torch.Tensor) for x in a):
        return type(a)(_val(x, f64) for x in a)
    return a


def _scalar_data(x: float, f64: bool) -> DeviceData:
    """A Python float in a Tensor slot becomes device data, as torch_xla makes non-special scalars parameters:
    an optimizer's step-dependent constants (Adam's bias corrections) then do not change the graph."""
    return DeviceData(torch.full((), x, dtype=torch.float64 if f64 else torch.float32))   # (torch.tensor is 2x slower)


def _values(func, args, kwargs):
    pos, names = _slots(func)
    f64 = False
    vargs = []
    for i, a in enumerate(args):
        if type(a) is LazyTensor:
            v = value_of(a)
            f64 = f64 or v.dtype is torch.float64
            vargs.append(v)
        elif type(a) is float and i in pos and a not in (0.0, 1.0, -1.0):
            vargs.append(None)  # filled below, once the tensors' float width is known
        else:
            vargs.append(_val(a, f64))
    for i, a in enumerate(args):
        if vargs[i] is None and type(a) is float:
            vargs[i] = _scalar_data(a, f64)
    vkw = {}
    for k, v in kwargs.items():
        if k in ("device", "pin_memory"):
            continue
        vkw[k] = _scalar_data(v, f64) if (k in names and type(v) is float and v not in (0.0, 1.0, -1.0)) \
            else _val(v, f64)
    return tuple(vargs), vkw


def _has_lazy(args, kwargs) -> bool:
    if args and type(args[0]) is LazyTensor:
        return True
    for a in itertools.chain(args, kwargs.values()):
        if isinstance(a, LazyTensor):
            return True
        if isinstance(a, (list, tuple)) and any(isinstance(x, LazyTensor) for x in a):
            return True
    return False


def _on_device(kwargs) -> bool:
    d = kwargs.get("device")
    return d is not None and is_ours(d)


# -- routing --------------------------------------------------------------------------------------------------

_EAGER = os.environ.get("NEURON_USE_EAGER_DEBUG_MODE") == "1"
_seeded = torch.Tag.nondeterministic_seeded
_decomposing: set = set()


# Lowerings that skip secondary outputs (mean/rstd, indices, logsumexp) inference never reads; when autograd will
# save them for backward the op is decomposed instead, so every output is computed.
_PARTIAL = {aten.native_layer_norm.default, aten.native_batch_norm.default, aten._native_batch_norm_legit.default,
            aten._native_batch_norm_legit.no_stats, aten.native_group_norm.default,
            aten.max_pool2d_with_indices.default, aten._scaled_dot_product_flash_attention_for_cpu.default,
            aten._scaled_dot_product_efficient_attention.default}


def _needs_grad(args) -> bool:
    return torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)


_lowered: Dict[Any, bool] = {}
# overloads the compiler would take through their packet's lowering although it ignores an argument of theirs;
# and ops whose Scalar argument changes every step (Adam's step size is addcdiv's `value`): decomposed
# (decompositions.py) so that it sits in a Tensor slot and becomes device data, not a graph constant
_NOT_LOWERED = {aten.round.decimals, aten.addcdiv.default, aten.addcmul.default}


def _lowering(func) -> int:
    """0: no lowering, 1: lowered, 2: lowered but skips outputs autograd needs."""
    lowered = _lowered.get(id(func))
    if lowered is None:
        ok = lookup(func) is not None and _seeded not in func.tags and func not in _NOT_LOWERED
        lowered = _lowered[id(func)] = (2 if func in _PARTIAL else 1) if ok else 0
    return lowered


_fast_ok: Dict[int, bool] = {}   # id(op) -> recorded through _fast when its arguments allow
_NOKW: Dict[str, Any] = {}       # the kwargs of a node recorded without any (never mutated)
_SPECIAL_FLOATS = (0.0, 1.0, -1.0)


def _fast(func, args):
    """The common case of `_functional`, in one pass: a lowered op whose arguments are device tensors and plain
    scalars (no kwargs, lists, CPU tensors). Returns None to let the general path take it. Per op this is the
    signature (a tuple looked up in the shape-inference cache), one node, one trace extension and the outputs."""
    r = _fast_record(func, args)
    if r is None:
        return None
    dev = 0
    for a in args:
        if type(a) is LazyTensor:
            dev = a._st.dev
            break
    return [_wrap(x, True, dev) for x in r] if type(r) is list else _wrap(r, True, dev)


def _fast_record(func, args):
    """`_fast` without the output tensors: the Ref (or list of Refs) recorded, or None. Arguments may also be
    values (Ref, DeviceData): the value-level decompositions (decompositions.VALUE_TABLE) chain ops this way."""
    sig = [id(func)]
    vals = []
    vargs = list(args)
    floats = None
    f64 = False
    dev = None
    for i, a in enumerate(args):
        t = type(a)
        if t is LazyTensor or t is Ref or t is DeviceData:
            if t is LazyTensor:
                d = a._st.dev
                if dev is None:
                    dev = d
                elif d != dev:
                    raise mixed_devices(dev, d)
            v = a if t is not LazyTensor else a._st.value if not a._view else value_of(a)
            vals.append(v)
            vargs[i] = v
            dt = v.dtype
            sig.append((v.shape, dt))
            if dt is torch.float64:
                f64 = True
        elif t is int or t is bool or a is None:
            sig.append(a)
        elif t is list and all(type(e) is int for e in a):   # dims, sizes: as record's _sig_of writes them
            sig.append(len(a))
            sig.extend(a)
        elif t is float:
            if a in _SPECIAL_FLOATS or i not in _slots(func)[0]:
                sig.append(("f", a))
            else:   # a Python float in a Tensor slot: 0-dim device data (see _scalar_data), made below
                if floats is None:
                    floats = []
                floats.append((i, len(sig), len(vals)))
                sig.append(None)
                vals.append(None)
        else:
            return None
    if floats is not None:
        if len(floats) == len(vals):
            return None
        for i, si, vi in floats:
            d = vargs[i] = vals[vi] = _scalar_data(args[i], f64)
            sig[si] = ((), d.dtype)
    elif not vals:
        return None
    key = tuple(sig)
    hit = _meta_cache.get(key)
    if hit is None:
        try:
            hit = _infer(func, tuple(vargs), _NOKW, key)
        except MetaError:
            return None
    metas, multi, s = hit
    site = getattr(_site, "v", None)
    code, line = site if site is not None else user_site(3)
    node = LNode(func, tuple(vargs), _NOKW, vals, metas, s, code, line)
    add_to_trace(node, s, vals)
    if multi:
        return [Ref(node, i, sh, dt) for i, (sh, dt) in enumerate(metas)]
    sh, dt = metas[0]
    return Ref(node, 0, sh, dt)


def _functional(func, args, kwargs):
    if not kwargs and not _EAGER and _fast_ok.get(id(func)):   # (ops dispatched from our code: foreach, scatters)
        r = _fast(func, args)
        if r is not None:
            return r
    dev = _device_of(args, kwargs)
    vd = value_decomposition.get(func)
    if vd is not None and not _EAGER:
        r = vd(_fast_record, *args, **kwargs)
        if r is not None:
            return _wrap(r, True, dev)
    lowered = _lowering(func)
    if lowered == 2 and _needs_grad(args):
        lowered = 0
    if lowered and (_has_lazy(args, kwargs) or _on_device(kwargs)):
        vargs, vkw = _values(func, args, kwargs)
        try:
            r = record(func, vargs, vkw)
        except MetaError:
            return fallback(func, args, kwargs)
        out = [_wrap(x, True, dev) for x in r] if isinstance(r, list) else _wrap(r, True, dev)
        if _EAGER:
            from neuron_emu.lazy.executor import sync
            sync([t._st for t in (out if isinstance(out, list) else [out])], "eager debug mode", user_frame())
        return out
    if _seeded not in func.tags and func not in _decomposing and _has_lazy(args, kwargs):
        out = _decompose(func, args, kwargs) if _EAGER else replay.run(func, args, kwargs, _decompose)
        if out is not NotImplemented:
            return out
    return fallback(func, args, kwargs)


def _decompose(func, args, kwargs):
    """Our decomposition of the op, else PyTorch's, else its composite kernel (`pad`, which torch's max-pool
    decomposition calls); NotImplemented when none applies."""
    for decomp in (preferred.get(func), decomposition_table.get(func), func.decompose):
        if decomp is None:
            continue
        _decomposing.add(func)
        try:
            out = decomp(*args, **kwargs)
        except ViewWriteError:  # the decomposition writes through aliases the device cannot invert
            return NotImplemented
        finally:
            _decomposing.discard(func)
        if out is not NotImplemented:
            return _to_lazy(out, _device_of(args, kwargs))
    return NotImplemented


def _to_lazy(out, dev: int):
    if isinstance(out, LazyTensor):
        return out
    if isinstance(out, torch.Tensor):
        return from_cpu(out, dev)
    if isinstance(out, list):
        return [_to_lazy(o, dev) for o in out]
    if isinstance(out, tuple):
        return tuple(_to_lazy(o, dev) for o in out)   # (a torch.return_types namedtuple becomes a plain tuple)
    return out


_mut_cache: Dict[Any, tuple] = {}


def _mutation(func):
    """(functional variant or None, mutated argument names in order, is an out= op, writes only its first
    argument and has a functional variant) for a mutating op."""
    m = _mut_cache.get(id(func))   # (ids: OpOverload hashes in Python)
    if m is not None:
        return m
    schema = func._schema
    written = [a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    functional = None
    name, overload = schema.name.split("::")[1], func._overloadname
    out_names = [a.name for a in schema.arguments if a.is_out]
    if out_names:
        keep = [a.name for a in schema.arguments if not a.is_out]
        packet = getattr(aten, name, None)
        for ov in (packet.overloads() if packet is not None else []):
            cand = getattr(packet, ov)
            if not cand._schema.is_mutable and [a.name for a in cand._schema.arguments] == keep:
                functional = cand
                break
    elif name.endswith("_"):
        packet = getattr(aten, name[:-1], None)
        if packet is not None and overload in packet.overloads():
            cand = getattr(packet, overload)
            if not cand._schema.is_mutable:
                functional = cand
    writes_self = functional is not None and not out_names and written == [schema.arguments[0].name]
    m = _mut_cache[id(func)] = (functional, written, bool(out_names), writes_self)
    return m


_arg_pos: Dict[int, Dict[str, int]] = {}   # id(op) -> argument name -> position (schemas are slow to walk)


def _arg(func, args, kwargs, name):
    pos = _arg_pos.get(id(func))
    if pos is None:
        pos = _arg_pos[id(func)] = {a.name: i for i, a in enumerate(func._schema.arguments)}
    i = pos.get(name)
    if i is None:
        return None
    return args[i] if i < len(args) else kwargs.get(name)


def _mutating(func, args, kwargs):
    functional, written, is_out, writes_self = _mutation(func)
    if writes_self and not _EAGER:
        t = args[0]   # the common in-place op (`p.mul_(b)`): a lowered op writing its first argument, no view
        if type(t) is LazyTensor and not t._view:
            vd = value_decomposition.get(functional)
            r = vd(_fast_record, *args, **kwargs) if vd is not None else \
                _fast_record(functional, args) if not kwargs and _fast_eligible(functional) else None
            if type(r) is Ref and r.dtype is t.dtype and r.shape == t._st.value.shape:
                _set_value(t._st, r)
                return t
            if r is not None:   # (a broadcast or a cast to write back: the general path's write-back below)
                assign(t, _coerce(t, r, func._schema.name))
                return t
    targets = [_arg(func, args, kwargs, n) for n in written]
    flat_targets = [x for t in targets for x in (t if isinstance(t, (list, tuple)) else [t])]
    if functional is None or not all(isinstance(t, LazyTensor) for t in flat_targets):
        return fallback(func, args, kwargs)
    fkw = {k: v for k, v in kwargs.items() if k not in written}
    res = _fast(functional, args) if not fkw and not _EAGER and _lowering(functional) == 1 else None
    if res is None:
        res = _functional(functional, args, fkw)
    flat_res = [x for r in (res if isinstance(res, (list, tuple)) else [res])
                for x in (r if isinstance(r, (list, tuple)) else [r])]   # (Tensor[] results: _fused_adam's lists)
    for t, r in zip(flat_targets, flat_res):
        if not isinstance(r, LazyTensor):
            r = from_cpu(r, t._st.dev)
        if is_out and tuple(r.shape) != tuple(t.shape) and not t._view:
            _resize_out(t, value_of(r), func)
            continue
        if tuple(r.shape) != tuple(t.shape) and (is_out or torch.Size(r.shape).numel() == t.numel()):
            what = "out= tensors are not resized" if is_out else "a tensor's shape cannot change in place"
            raise RuntimeError(f"{func._schema.name}: {what} on the lazy device (device tensors have fixed shapes, "
                               f"{list(t.shape)} here, {list(r.shape)} wanted); use the out-of-place op")
        assign(t, _coerce(t, value_of(r), func._schema.name))
    return _returned(func, list(written), targets)


def _returned(func, written, targets):
    """What an op that wrote `targets` (the arguments named `written`) returns: the written arguments its schema's
    returns alias (`_amp_update_scale_` writes the scale and the growth tracker, and returns the scale)."""
    rets = func._schema.returns
    if not rets:   # (an op that only mutates its Tensor[] arguments: _fused_adam_)
        return None
    by_set = {frozenset(a.alias_info.before_set): targets[written.index(a.name)]
              for a in func._schema.arguments if a.name in written and a.alias_info is not None}
    out = [by_set.get(frozenset(r.alias_info.before_set)) if r.alias_info is not None else None for r in rets]
    if any(o is None for o in out):   # (a return that aliases no written argument: all of them, as before)
        return targets[0] if len(targets) == 1 else tuple(targets)
    return out[0] if len(out) == 1 else tuple(out)


# Deterministic factories read no device value: made on CPU they are a transfer of a constant, not a missing
# lowering (torch_xla folds them into the graph as constants), so they are not counted as fallbacks.
_CONSTANT_FACTORIES = {"aten::arange", "aten::full", "aten::zeros", "aten::ones", "aten::eye", "aten::linspace",
                       "aten::scalar_tensor", "aten::logspace", "aten::tril_indices", "aten::triu_indices"}


def fallback(func, args, kwargs):
    """Run the op on CPU: its device inputs are materialised (a graph cut), mutated ones written back, the
    results become device data. Counted as `aten::<op>` (torch_xla's counter for ops without a lowering)."""
    replay.impure_events[0] += 1
    dev = _device_of(args, kwargs)
    if func._schema.name not in _CONSTANT_FACTORIES and func._schema.name not in draws.FACTORY_NAMES:
        metrics.counter_add(func._schema.name)
    written = set(a.name for a in func._schema.arguments if a.alias_info is not None and a.alias_info.is_write)
    mutated: List[tuple] = []
    where = f"{func._schema.name} (CPU fallback)"

    def cpu(a, mut):
        if isinstance(a, LazyTensor):
            # contiguous, as the device tensor reports itself: a kernel may rely on it (the fused optimizers walk
            # several tensors' memory in step; autograd calls _weight_norm_interface_backward with grad.contiguous(),
            # a no-op on the device, and the CPU kernel reads the raw buffer: a transposed view read in storage order
            # gave silently wrong results)
            c = to_cpu(a, where)
            if mut:
                c = c.clone(memory_format=torch.contiguous_format)
                mutated.append((a, c))
            return c.contiguous()
        if isinstance(a, (list, tuple)) and any(isinstance(x, LazyTensor) for x in a):
            return type(a)(cpu(x, mut) for x in a)
        if isinstance(a, (torch.device, str)) and is_ours(a):
            return torch.device("cpu")
        return a

    names = [a.name for a in func._schema.arguments]
    cargs = tuple(cpu(a, i < len(names) and names[i] in written) for i, a in enumerate(args))
    ckw = {k: cpu(v, k in written) for k, v in kwargs.items()}
    out = func(*cargs, **ckw)
    back = {}
    for lazy, c in mutated:
        if c.shape != lazy.shape:   # an out= tensor the op resized (ATen resizes out tensors, e.g. arange's)
            _resize_out(lazy, DeviceData(c), func)
        else:
            assign(lazy, DeviceData(c))
        back[id(c)] = lazy

    def wrap(o):
        if isinstance(o, torch.Tensor):
            lazy = back.get(id(o))
            return lazy if lazy is not None else \
                _wrap(DeviceData(o if o.is_contiguous() else o.contiguous()), dev=dev)
        if isinstance(o, (list, tuple)):
            return type(o)(wrap(x) for x in o)
        return o
    return wrap(out)


# -- special ops ----------------------------------------------------------------------------------------------

def _to_copy(func, args, kwargs):
    x = args[0]
    dev = kwargs.get("device")
    if dev is not None and torch.device(dev).type == "cpu":
        cpu = to_cpu(x)
        dtype = kwargs.get("dtype") or cpu.dtype
        return cpu.to(dtype=dtype, copy=True)
    if dev is not None and device_index(dev) != x._st.dev:   # to another device: through the host, as torch_xla
        x = _transfer(x, device_index(dev))
    kw = {"dtype": kwargs["dtype"]} if kwargs.get("dtype") not in (None, x.dtype) else {}
    if not kw:
        return dispatch(aten.clone.default, (x,), {})
    return _functional(func, (x,), kw)


def _transfer(x: LazyTensor, dev: int) -> LazyTensor:
    """`x`'s value on device `dev`: materialised on its own device (a graph cut there) and copied over."""
    data = to_cpu(x, f"transfer to {_device(dev)}")
    with metrics.timed("TransferToDeviceTime"):
        return _wrap(DeviceData(data.clone()), dev=dev)


def _copy_(func, args, kwargs):
    dst, src = args[0], args[1]
    if not isinstance(dst, LazyTensor):  # device -> CPU tensor
        dst.copy_(to_cpu(src))
        return dst
    if isinstance(src, LazyTensor) and src._st.dev != dst._st.dev:
        src = _transfer(src, dst._st.dev)
    if isinstance(src, LazyTensor):
        v = value_of(src)
    else:
        with metrics.timed("TransferToDeviceTime"):
            v = DeviceData(bf16.round_transfer(src.detach().clone()))
    assign(dst, _coerce(dst, v, "copy_"))
    return dst


def copy_from(src, dst):
    return _copy_(None, (dst, src), {})


def _item(func, args, kwargs):
    return to_cpu(args[0], ".item()").item()


def _empty_like(func, args, kwargs):
    x = args[0]
    d = kwargs.get("device")
    return empty_data(x.shape, kwargs.get("dtype") or x.dtype, x._st.dev if d is None else device_index(d))


def _new_empty(func, args, kwargs):
    d = kwargs.get("device")
    return empty_data(args[1], kwargs.get("dtype") or args[0].dtype, args[0]._st.dev if d is None else
                      device_index(d))


def _conj(func, args, kwargs):
    # ATen's conj is a view that sets the conjugate bit, which a wrapper tensor does not carry: the conjugate is
    # computed instead (aliasing through it is lost; writing through a conj view is rare)
    return dispatch(aten.conj_physical.default, args, kwargs)


def _resize_(func, args, kwargs):
    x, size = args[0], list(args[1])
    if list(x.shape) == size:
        return x
    raise RuntimeError(f"resize_ from {list(x.shape)} to {size} is not supported on the lazy device (device tensors "
                       f"have fixed shapes)")


def _same_size(func, args, kwargs):
    return tuple(args[0].shape) == tuple(args[1].shape)


def _to(func, args, kwargs):
    # aten::to is composite: `self` itself when nothing changes (an alias, as in eager), else a _to_copy. Routed as
    # the view its schema says it may be, a converted result would share the source's storage chain, and a later
    # in-place write to it (autograd accumulating into a gradient a decomposition made with .to) would fail.
    return func.decompose(*args, **kwargs)


def _host_second_output(func, args, kwargs):
    # _pack_padded_sequence's batch sizes and _pad_packed_sequence's lengths are CPU tensors on every device
    # (PackedSequence refuses others; the RNN kernels read them on the host): the op's CPU result, kept there
    data, sizes = fallback(func, args, kwargs)
    return data, to_cpu(sizes, func._schema.name)


_SPECIAL = {
    aten._to_copy.default: _to_copy,
    aten._pack_padded_sequence.default: _host_second_output,
    aten._pad_packed_sequence.default: _host_second_output,
    aten.copy_.default: _copy_,
    aten._local_scalar_dense.default: _item,
    aten.empty_like.default: _empty_like,
    aten.new_empty.default: _new_empty,
    aten.new_empty_strided.default: _new_empty,
    aten.resize_.default: _resize_,
    aten._conj.default: _conj,
    aten._neg_view.default: lambda func, args, kwargs: dispatch(aten.neg.default, args, kwargs),
    aten.is_same_size.default: _same_size,
    **{getattr(aten.to, o): _to for o in ("dtype", "device", "other", "dtype_layout")},
    **draws.handlers(),
}


_route: Dict[Any, Any] = {}


_META_INPLACE = {aten.squeeze_.default, aten.squeeze_.dim, aten.squeeze_.dims, aten.unsqueeze_.default,
                 aten.transpose_.default, aten.t_.default, aten.swapdims_.default, aten.swapaxes_.default}
_META_VIEW = {aten.squeeze_.default: aten.squeeze.default, aten.squeeze_.dim: aten.squeeze.dim,
              aten.squeeze_.dims: aten.squeeze.dims, aten.unsqueeze_.default: aten.unsqueeze.default,
              aten.transpose_.default: aten.transpose.int, aten.t_.default: aten.t.default,
              aten.swapdims_.default: aten.transpose.int, aten.swapaxes_.default: aten.transpose.int}
_PYTHON_KEYS = torch._C.DispatchKeySet(torch._C.DispatchKey.Python) | \
    torch._C.DispatchKeySet(torch._C.DispatchKey.PythonTLSSnapshot)


def _set_sizes(t: LazyTensor, shape) -> None:
    """Change the wrapper's sizes (contiguous strides) in place, with the Python key excluded."""
    stride, acc = [], 1
    for d in reversed(shape):
        stride.append(acc)
        acc *= max(d, 1)
    with torch._C._ExcludeDispatchKeyGuard(_PYTHON_KEYS):
        aten.as_strided_.default(t, list(shape), list(reversed(stride)))


def _resize_out(t: LazyTensor, value, func) -> None:
    """An out= tensor resized to its result, as ATen does: it gets a storage of its own holding the value."""
    if t._view:
        raise RuntimeError(f"{func._schema.name}: the out= tensor is a view and would be resized from "
                           f"{list(t.shape)} to {list(value.shape)}; the lazy device cannot resize a view")
    try:
        _set_sizes(t, value.shape)
    except RuntimeError:
        raise RuntimeError(f"{func._schema.name}: the out= tensor of shape {list(t.shape)} would be resized to "
                           f"{list(value.shape)}; the lazy device resizes only empty out= tensors (pass "
                           f"torch.empty(0) or use the out-of-place op)") from None
    t._st = _storage(value, dev=t._st.dev)
    t._vc = None


def _metadata_inplace(func, args, kwargs):
    """squeeze_/unsqueeze_/transpose_...: the tensor becomes a new view of its storage (ATen's matmul and linear
    end 1-D cases with squeeze_). The wrapper's sizes change with the Python key excluded (as_strided_ on it)."""
    t = args[0]
    view_op = _META_VIEW[func]
    r = record(view_op, (value_of(t),) + tuple(args[1:]), kwargs)
    t._view = t._view + ((view_op, tuple(args[1:]), dict(kwargs), None),)
    t._vc = None
    _set_sizes(t, r.shape)
    return t


for _op in _META_INPLACE:
    _SPECIAL[_op] = _metadata_inplace


def _shared_scalar(x: float, like) -> LazyTensor:
    """A number a foreach op passes to every element, as one 0-dim device datum (see _scalar_data); None when
    the elements are not device tensors."""
    if type(like) is not LazyTensor:
        return None
    return _wrap(_scalar_data(x, like.dtype is torch.float64), live=False, dev=like._st.dev)


def _fused_optimizer(func, args, kwargs):
    r = fused_optim.run(func, args, kwargs)
    return fallback(func, args, kwargs) if r is NotImplemented else r


def _foreach(func, args, kwargs):
    r = foreach.run(func, args, kwargs, dispatch, _shared_scalar)
    return fallback(func, args, kwargs) if r is NotImplemented else r


_SPECIAL.update({op: _fused_optimizer for op in fused_optim.OPS})


def _fast_eligible(func) -> bool:
    """Whether `func` is recorded through `_fast` when its arguments allow (routed once, as dispatch does)."""
    ok = _fast_ok.get(id(func))
    if ok is None:
        _route_of(func)
        ok = _fast_ok[id(func)]
    return ok


def _route_of(func):
    h = _route[id(func)] = _SPECIAL.get(func) or (
        _foreach if func._schema.name.startswith("aten::_foreach_") else
        _mutating if func._schema.is_mutable else _view if func.is_view else _functional)
    _fast_ok[id(func)] = h is _functional and _lowering(func) == 1
    return h


def dispatch(func, args, kwargs):
    h = _route.get(id(func))   # (OpOverload hashes in Python: ids are cheaper, and ops live forever)
    if h is None:
        h = _route_of(func)
    return h(func, args, kwargs)
