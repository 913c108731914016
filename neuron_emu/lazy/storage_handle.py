"""What `t.untyped_storage()` answers for a device tensor: an identity and a size, no host memory.

Libraries that save a model ask a tensor's storage for `data_ptr()` and `nbytes()` only to find tensors sharing
memory (tied weights: safetensors, huggingface_hub's shard splitter, transformers' `id_tensor_storage`,
accelerate's `clean_state_dict_for_safetensors`). On real torch_xla they take a `device.type == "xla"` branch
(`torch_xla._XLAC._xla_get_tensor_id`); our device is `neuron`, so they take the storage branch, where torch's own
answer for a storage-less wrapper raises. A handle per emulated allocation answers them: aliases (views, tied
parameters) give the same `data_ptr`, distinct allocations different ones, unique while the allocation lives, as
a pointer is. Anything that needs real storage (`TypedStorage`, sharing memory, `set_`) is refused by name.

`Tensor.data_ptr()` agrees with it (safetensors keeps a shared tensor only if one alias starts at the storage's
pointer and covers it, and measures overlaps from `data_ptr()`): each allocation gets a made-up address range of
its own, and a view's address adds the byte offset its view chain has over a contiguous buffer."""
from __future__ import annotations

import math
import weakref

import torch

_ALIGN = 64
_base = weakref.WeakKeyDictionary()   # allocation -> its made-up address (ranges never overlap)
_next = [1 << 44]   # the next free address (each range rounded up to _ALIGN)


def _nbytes(st) -> int:
    v = st.value    # a tensor or a pending Ref: both carry shape and dtype
    return math.prod(v.shape) * v.dtype.itemsize


def storage_address(st) -> int:
    a = _base.get(st)
    if a is None:
        a = _next[0]
        _next[0] += -(-max(_nbytes(st), 1) // _ALIGN) * _ALIGN
        _base[st] = a
    return a


def tensor_address(t) -> int:
    """`t.data_ptr()` of a device tensor: its allocation's address plus the offset of its view chain."""
    base = storage_address(t._st)
    if not t._view:
        return base
    from neuron_emu.lazy.tensor import apply_view
    v = t._st.value
    m = apply_view(t, torch.empty(tuple(v.shape), dtype=v.dtype, device="meta"))
    return base + m.storage_offset() * m.dtype.itemsize


class DeviceStorageHandle:
    __slots__ = ("_st", "device")

    def __init__(self, st, device: torch.device):
        self._st, self.device = st, device

    def data_ptr(self) -> int:
        return storage_address(self._st)   # the emulated allocation's: shared by every alias of it

    def nbytes(self) -> int:
        return _nbytes(self._st)

    def size(self) -> int:   # an untyped storage's size is in bytes
        return self.nbytes()

    def __len__(self) -> int:
        return self.nbytes()

    def __eq__(self, other) -> bool:
        return isinstance(other, DeviceStorageHandle) and other._st is self._st

    def __hash__(self) -> int:
        return hash(self.data_ptr())

    def __repr__(self) -> str:
        return f"<storage of {self.nbytes()} bytes on {self.device}: device memory, no host pointer>"

    def __getattr__(self, name):
        raise AttributeError(f"untyped_storage().{name}: a {self.device.type} tensor's storage is device memory with "
                             f"no host data; only data_ptr() (an identity), nbytes()/size() and device are available. "
                             f"Copy the tensor to CPU first (t.cpu()).")
