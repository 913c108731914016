"""`'xla'` as a device name in user scripts run by the launcher: the Neuron training guide and torch_xla's docs
write `device = 'xla'`, `model.to('xla')`, `torch.randn(2, 2, device='xla')`. torch parses 'xla' as its own XLA
device type, which this process cannot back (no Python device guard for that key; PyTorch reports it is "not
linked with support for xla devices"), so the Python entry points that take a device map `xla[:n]` to the
emulated device n. Patched entry points, not a TorchFunctionMode: a mode would add a Python call to every op of a
training step (~15% of a small cached step, measured), these add one to `.to()` and factory calls only."""
from __future__ import annotations

import functools

import torch

# torch functions taking `device=` (factories and *_like); Tensor methods taking it (new_*); `to` also positionally
_FACTORIES = ("zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange", "range", "tensor",
              "as_tensor", "eye", "linspace", "logspace", "scalar_tensor", "empty_strided", "zeros_like", "ones_like",
              "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "tril_indices", "triu_indices")
_METHODS = ("new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "new_empty_strided")
_installed = False


def emulated(d):
    """`d` with an XLA device named as the emulated device of the same index; anything else unchanged."""
    if type(d) is str:
        if d != "xla" and not d.startswith("xla:"):
            return d
        d = torch.device(d)
    elif type(d) is not torch.device or d.type != "xla":
        return d
    from torch_neuronx_emu.xla_model import xla_device
    return xla_device(d.index)


def _device_kwarg(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        d = kwargs.get("device")
        if d is not None:
            kwargs["device"] = emulated(d)
        return fn(*args, **kwargs)
    return call


def _to(fn):
    @functools.wraps(fn)
    def to(self, *args, **kwargs):
        if args and (type(args[0]) is str or type(args[0]) is torch.device):
            args = (emulated(args[0]),) + args[1:]
        d = kwargs.get("device")
        if d is not None:
            kwargs["device"] = emulated(d)
        return fn(self, *args, **kwargs)
    return to


def install() -> None:
    """Map 'xla' in torch's device-taking entry points (Module.to goes through Tensor.to). Once per process."""
    global _installed
    if _installed:
        return
    _installed = True
    for name in _FACTORIES:
        setattr(torch, name, _device_kwarg(getattr(torch, name)))
    for name in _METHODS:
        setattr(torch.Tensor, name, _device_kwarg(getattr(torch.Tensor, name)))
    torch.Tensor.to = _to(torch.Tensor.to)
    init = torch.amp.autocast_mode.autocast.__init__

    @functools.wraps(init)
    def autocast_init(self, device_type, *args, **kwargs):   # torch.autocast("xla", dtype=torch.bfloat16)
        return init(self, _device_type(device_type), *args, **kwargs)
    torch.amp.autocast_mode.autocast.__init__ = autocast_init


def _device_type(name: str) -> str:
    return emulated(name).type if name == "xla" else name
