"""Mirror of `torch_xla.core.xla_model` (imported as `xm`) for the emulated lazy device. One process drives the
NeuronCores NEURON_RT_VISIBLE_CORES names; the device is `neuron:<n>` (the renamed PrivateUse1 backend: a Python
device cannot take the XLA dispatch key, see docs/architecture.md)."""
from __future__ import annotations

from typing import List, Optional

import torch

from neuron_emu import lazy
from neuron_emu.lazy.device import checked_index, device_count
from neuron_emu.lazy.record import user_frame


def xla_device(n: Optional[int] = None, devkind: Optional[str] = None) -> torch.device:
    """Device `n` (default 0) of this process: visible NeuronCore `n` (NEURON_RT_VISIBLE_CORES). Its tensors'
    graphs compile and run on that core; ops cannot mix devices; `.to(other)` copies through the host."""
    if n is not None:
        checked_index(n)
    from neuron_emu.lazy import bf16
    from neuron_emu.lazy.device import single_threaded_autograd
    bf16.enabled()  # the deprecation warning of XLA_USE_BF16 / XLA_DOWNCAST_BF16, once
    dev = lazy.device(n or 0)
    single_threaded_autograd()   # (this thread's backward on any device index: see device.py)
    return dev


def get_xla_supported_devices(devkind: Optional[str] = None, max_devices: Optional[int] = None) -> List[str]:
    names = [f"{lazy.device_type()}:{i}" for i in range(device_count())]
    return names[:max_devices] if max_devices else names


def xla_device_kind(device=None) -> str:
    return "NC_v2"


def get_ordinal(defval: int = 0) -> int:
    return 0


def get_local_ordinal(defval: int = 0) -> int:
    return 0


def xrt_world_size(defval: int = 1) -> int:
    return 1


def is_master_ordinal(local: bool = True) -> bool:
    return True


def mark_step(wait: bool = False, reset_scope: bool = True) -> None:
    """Cut the graph: compile it unless cached, run it, run the step closures. A cached step runs asynchronously
    unless `wait` (its values are waited for by `.cpu()`, `.item()`, print or `wait_device_ops`)."""
    lazy.mark_step(user_frame(), wait)


def wait_device_ops(devices: List[str] = []) -> None:  # noqa: B006  (torch_xla's signature)
    """Waits for all the async operations on the given devices to complete."""
    from neuron_emu.lazy import device_queue
    device_queue.wait()


def add_step_closure(closure, args=(), run_async: bool = False) -> None:
    lazy.add_step_closure(closure, args)


def optimizer_step(optimizer, barrier: bool = False, optimizer_args={}, groups=None, pin_layout: bool = True):  # noqa: B006
    """`optimizer.step(**optimizer_args)`; gradients need no all-reduce with a world size of 1. With `barrier`,
    a mark_step follows, as torch_xla does."""
    loss = optimizer.step(**optimizer_args)
    if barrier:
        mark_step()
    return loss


def reduce_gradients(optimizer, groups=None, pin_layout: bool = True) -> None:
    """No-op for a world size of 1."""


def save(data, file_or_path, master_only: bool = True, global_master: bool = False) -> None:
    """torch.save with device tensors moved to CPU first (what torch_xla's xm.save does)."""
    torch.save(_maybe_convert_to_cpu(data), file_or_path)


def set_rng_state(seed: int, device=None) -> None:
    torch.manual_seed(seed)


def get_rng_state(device=None) -> int:
    return int(torch.initial_seed())


# -- collectives and data movement for one process (world size 1): what libraries call on any torch_xla setup ------

REDUCE_SUM, REDUCE_MUL, REDUCE_AND, REDUCE_OR, REDUCE_MIN, REDUCE_MAX = "sum", "mul", "and", "or", "min", "max"


def rendezvous(tag: str, payload: bytes = b"", replicas: List[int] = []) -> List[bytes]:  # noqa: B006
    """Every replica's payload once all reached `tag`: with one replica, this one's."""
    return [payload]


def mesh_reduce(tag: str, data, reduce_fn):
    """`reduce_fn` over every replica's `data` as CPU copies (torch_xla exchanges them serialized, so the
    examples' `np.mean` works on tensors): with one replica, over this one's."""
    return reduce_fn([_maybe_convert_to_cpu(data)])


def all_reduce(reduce_type: str, inputs, scale: float = 1.0, groups=None, pin_layout: bool = True):
    """The reduction over one replica is the input itself, times `scale` (in place for a list, as torch_xla)."""
    if reduce_type not in (REDUCE_SUM, REDUCE_MUL, REDUCE_AND, REDUCE_OR, REDUCE_MIN, REDUCE_MAX):
        raise ValueError(f"Invalid reduce type: {reduce_type!r}")
    if isinstance(inputs, torch.Tensor):
        return inputs * scale if scale != 1.0 else inputs.clone()
    if scale != 1.0:
        for t in inputs:
            t.mul_(scale)
    return inputs


def send_cpu_data_to_device(datas, device, input_sharding=None, transfer_as_async: bool = False):
    """`datas` (a nest of lists, tuples, dicts) with its CPU tensors copied to `device`."""
    from torch.utils._pytree import tree_map
    return tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) and t.device.type == "cpu" else t, datas)


def master_print(*args, fd=None, finalizer=None, **kwargs) -> None:
    """print() on the master ordinal (this process)."""
    import sys
    print(*args, file=fd or sys.stdout, **kwargs)
    if finalizer is not None:
        finalizer()


def all_gather(value: torch.Tensor, dim: int = 0, groups=None, output=None, pin_layout: bool = True):
    """The concatenation over replicas along `dim`: with one replica, a copy of `value` (into `output` if given)."""
    if output is not None:
        output.copy_(value)
        return output
    return value.clone()


def collective_broadcast(tensors: List[torch.Tensor], root_ordinal: int = 0, groups=None,
                         pin_layout: bool = True) -> None:
    """Every replica gets the root's tensors: with one replica they are already its."""


def set_replication(device, devices) -> None:
    """Declares the replicas taking part in collectives: one process, nothing to set."""


def _fetch_gradients(optimizer) -> List[torch.Tensor]:
    return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


def _maybe_convert_to_cpu(data, convert: bool = True):
    """`data` with its device tensors materialised and copied to CPU (what save() writes)."""
    from torch.utils._pytree import tree_map
    return tree_map(lambda t: t.cpu() if isinstance(t, torch.Tensor) and t.device.type != "cpu" else t, data)


def broadcast_master_param(model, **kwargs) -> None:
    """The master's parameters to every replica: nothing to send with one."""


class RateTracker:
    """Samples per second, as the examples log it: `rate()` since the previous call (smoothed with the previous
    rate by `smooth_factor`), `global_rate()` since creation."""

    def __init__(self, smooth_factor: Optional[float] = None):
        import time
        self._clock = time.time
        self._smooth_factor = 0.4 if smooth_factor is None else smooth_factor
        self._start = self._last = self._clock()
        self._counted = 0.0   # before the last rate()
        self._count = 0.0     # since it
        self._last_rate = None

    def add(self, count) -> None:
        self._count += count

    def rate(self) -> float:
        now = self._clock()
        elapsed = now - self._last
        if elapsed <= 0:
            return 0.0
        r = self._count / elapsed
        if self._last_rate is not None:
            r = (1 - self._smooth_factor) * r + self._smooth_factor * self._last_rate
        self._counted += self._count
        self._count, self._last, self._last_rate = 0.0, now, r
        return r

    def global_rate(self) -> float:
        elapsed = self._clock() - self._start
        return (self._counted + self._count) / elapsed if elapsed > 0 else 0.0
