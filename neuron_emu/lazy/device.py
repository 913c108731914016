"""The emulated XLA device as a real PyTorch device: PrivateUse1 renamed to `neuron` (Python-only; feasibility
notes Q2: the XLA dispatch key has no Python device guard, so autograd on it aborts the process).
`_setup_privateuseone_for_python_backend` registers the rename, the `torch.neuron` module, the hooks and the device
guard; the two allocation factories get PrivateUse1 kernels because a factory has no device tensor input for
`__torch_dispatch__` to catch."""
from __future__ import annotations

import types

import torch

_NAME = "neuron"
_lib = None


def _backend_module() -> types.ModuleType:
    """`torch.neuron`: the runtime module torch consults for the device (seeding, availability). torch_neuron_emu
    adds the Inf1 API to this same module (`torch.neuron.trace`), as one namespace serves both in this process."""
    m = types.ModuleType("torch.neuron")
    m.is_available = lambda: True
    m.is_initialized = lambda: True
    m.current_device = lambda: 0
    m.device_count = device_count
    m._is_in_bad_fork = lambda: False
    m.manual_seed_all = lambda seed: None   # device random ops draw from the CPU generator torch.manual_seed sets
    m.get_amp_supported_dtype = lambda: [torch.bfloat16, torch.float16, torch.float32]   # (torch.autocast asks)
    return m


def device_count() -> int:
    """The visible NeuronCores: one device each (autograd starts a thread per device index)."""
    from neuron_emu.runtime.placement import runtime_for
    return len(runtime_for(2).cores)


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
        _setup_privateuseone_for_python_backend(_NAME, backend_module=_backend_module())
    elif name != _NAME:
        raise RuntimeError(f"The PrivateUse1 backend is already named {name!r} in this process; the emulated XLA "
                           f"device needs it named {_NAME!r}")
    from neuron_emu.lazy.tensor import LazyTensor, copy_from, device_index, empty_data  # (cycle: tensor imports
    # device_type)
    lib = torch.library.Library("aten", "IMPL")
    lib.impl("empty.memory_format", lambda size, dtype=None, layout=None, device=None, pin_memory=None,
             memory_format=None: empty_data(size, dtype, device_index(device)), "PrivateUse1")
    lib.impl("empty_strided", lambda size, stride, dtype=None, layout=None, device=None, pin_memory=None:
             empty_data(size, dtype, device_index(device)), "PrivateUse1")
    # torch.tensor(data, device=...) copies with the Python key excluded, so its copy arrives here
    lib.impl("_copy_from", lambda self, dst, non_blocking=False: copy_from(self, dst), "PrivateUse1")
    _lib = lib
    # optimizers take their multi-tensor (foreach) path for device tensors, as for any tensor of a device torch
    # lists as foreach-capable (PrivateUse1 is): torch only checks the Python type, which ours is a subclass of
    single_threaded_autograd()
    from neuron_emu.lazy import autocast
    autocast.install(_NAME)
    _no_pinning_for_this_device()
    from torch.optim import optimizer
    if LazyTensor not in optimizer._foreach_supported_types:
        optimizer._foreach_supported_types.append(LazyTensor)
    return _NAME


def _no_pinning_for_this_device() -> None:
    """DataLoader(pin_memory=True) pins for the current accelerator, this device, whose pinned-memory allocator a
    Python backend cannot provide (torch raises). Its host memory is the device's: batches pass unpinned, as
    torch_xla's do (XLA is no torch.accelerator: torch warns and skips pinning)."""
    from torch.utils.data._utils import pin_memory as pm
    pin = pm.pin_memory
    if getattr(pin, "__neuron_emu__", False):
        return

    def pin_memory(data, device=None):
        return data if device == _NAME else pin(data, device)
    pin_memory.__neuron_emu__ = True
    pm.pin_memory = pin_memory


def device(index: int = 0) -> torch.device:
    return torch.device(device_type(), index)
