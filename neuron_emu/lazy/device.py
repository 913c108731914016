"""The emulated XLA device as a real PyTorch device: PrivateUse1 renamed to `neuron` (Python-only; feasibility
notes Q2: the XLA dispatch key has no Python device guard, so autograd on it aborts the process).
`_setup_privateuseone_for_python_backend` registers the rename, the `torch.neuron` module, the hooks and the device
guard; the two allocation factories get PrivateUse1 kernels because a factory has no device tensor input for
`__torch_dispatch__` to catch."""
from __future__ import annotations

import torch

from neuron_emu.lazy import backend_module

_NAME = "neuron"
_lib = None


def device_count() -> int:
    """The visible NeuronCores: one device each (autograd starts a thread per device index)."""
    from neuron_emu.runtime.placement import runtime_for
    return len(runtime_for(2).cores)


def checked_index(i: int) -> int:
    """`i` if it names a visible NeuronCore; else an error naming how many are visible."""
    n = device_count()
    if not 0 <= i < n:
        raise RuntimeError(f"Invalid device index {i}: {n} NeuronCore(s) are visible (NEURON_RT_VISIBLE_CORES)")
    return i


def single_threaded_autograd() -> None:
    """Run backward on the calling thread. Autograd's engine runs a device's backward on a thread per device
    index, but a Python device guard reports one device (torch/csrc/acc/Module.cpp: deviceCount() is 1), so a
    backward on `neuron:1` would fail an internal assert; with multithreading off (thread-local: set for the thread
    that registers the device and each thread asking xla_device for one) every device's backward runs here."""
    torch._C._set_multithreading_enabled(False)


def device_type() -> str:
    """The backend name, registering it on first use (a process can rename PrivateUse1 only once)."""
    global _lib
    if _lib is not None:
        return _NAME
    name = torch._C._get_privateuse1_backend_name()
    if name == "privateuseone":
        from torch.utils.backend_registration import _setup_privateuseone_for_python_backend
        _setup_privateuseone_for_python_backend(_NAME, backend_module=backend_module.module())
    elif name != _NAME:
        raise RuntimeError(f"The PrivateUse1 backend is already named {name!r} in this process; the emulated XLA "
                           f"device needs it named {_NAME!r}")
    from neuron_emu.lazy.tensor import LazyTensor, copy_from, device_index, empty_data  # (cycle: tensor imports
    # device_type)
    lib = torch.library.Library("aten", "IMPL")
    _factories(lib, "PrivateUse1", empty_data, device_index)
    # torch.tensor(data, device=...) copies with the Python key excluded, so its copy arrives here
    lib.impl("_copy_from", lambda self, dst, non_blocking=False: copy_from(self, dst), "PrivateUse1")
    _lib = lib
    _alias_xla(lib, empty_data, device_index)
    torch.serialization.register_package(5, lambda obj: None, _restore_location)
    if torch.version.cuda is None and torch.version.hip is None:
        # Pinning host memory means pinning it for this device, the accelerator torch now sees (a DataLoader with
        # pin_memory=True asks for it), and a Python backend cannot give torch a pinned allocator: its host
        # buffers are plain memory, so a pinned copy is a copy. (A CUDA build keeps its own kernel.)
        lib.impl("_pin_memory", lambda self, device=None: self.clone(), "CPU")
    single_threaded_autograd()
    from neuron_emu.lazy import autocast, backward_errors
    autocast.install(_NAME)
    backward_errors.install()
    # optimizers take their multi-tensor (foreach) path for device tensors, as for any tensor of a device torch
    # lists as foreach-capable (PrivateUse1 is): torch only checks the Python type, which ours is a subclass of
    from torch.optim import optimizer
    if LazyTensor not in optimizer._foreach_supported_types:
        optimizer._foreach_supported_types.append(LazyTensor)
    return _NAME


TYPES = [_NAME]   # device types naming this device: `neuron`, and `xla` once aliased


def is_ours(d) -> bool:
    """Whether a `device=` argument (torch.device or string; any other argument: no) names this device."""
    if isinstance(d, str):
        return d.partition(":")[0] in TYPES
    return isinstance(d, torch.device) and d.type in TYPES


def _alias_xla(lib, empty_data, device_index) -> None:
    """Let `xla` name this device too, as torch_xla's tutorials write it (`device = 'xla'`, `model.to(device)`).
    `torch.device('xla')` parses to the built-in XLA type, which without torch_xla has no device guard: `.to('xla')`
    asks one for the current index. The XLA slot of c10's guard registry gets PrivateUse1's guard (whose current
    device is `neuron:0`, so `.to('xla')` lands here) and the XLA key the allocation factories (`torch.zeros(...,
    device='xla:1')` makes a tensor on `neuron:1`). Skipped if something registered an XLA guard (torch_xla)."""
    import ctypes
    import os
    try:
        c10 = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libc10.so"))
        registry = (ctypes.c_void_p * 32).in_dll(c10, "_ZN3c104impl26device_guard_impl_registryE")
        xla, ours = int(torch._C._autograd.DeviceType.XLA), int(torch._C._autograd.DeviceType.PrivateUse1)
    except (OSError, ValueError, AttributeError):   # another build of torch: `xla` stays torch's own
        return
    if registry[xla] or not registry[ours]:
        return
    registry[xla] = registry[ours]
    _factories(lib, "XLA", empty_data, device_index)
    TYPES.append("xla")


def _factories(lib, key: str, empty_data, device_index) -> None:
    """The allocation factories on dispatch key `key`: a factory has no device tensor input for `__torch_dispatch__`
    to catch, so `torch.empty(..., device=<this device>)` (and every factory built on it) arrives here."""
    lib.impl("empty.memory_format", lambda size, dtype=None, layout=None, device=None, pin_memory=None,
             memory_format=None: empty_data(size, dtype, device_index(device)), key)
    lib.impl("empty_strided", lambda size, stride, dtype=None, layout=None, device=None, pin_memory=None:
             empty_data(size, dtype, device_index(device)), key)


def _restore_location(storage, location: str):
    """torch.load's hook for a storage whose `map_location` names this device: refused with the way that works
    (the device's tensors have no storage to load into; torch's own path ends in a missing `torch.neuron.device`)."""
    if is_ours(location):
        raise RuntimeError(f"torch.load(map_location={location!r}): the emulated device's tensors have no storage to "
                           f"load into; load to CPU (map_location='cpu') and move the tensors with .to(device) (or "
                           f"model.load_state_dict(...), which copies into the device parameters)")
    return None


def device(index: int = 0) -> torch.device:
    return torch.device(device_type(), index)
