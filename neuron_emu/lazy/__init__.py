"""The lazy-tensor dev loop: an emulated XLA device (PrivateUse1 renamed `neuron`) whose ops are recorded
(tensor.py, record.py) and compiled at a sync (executor.py) by the shared compiler, with an in-memory and on-disk
graph cache (cache.py), torch_xla's metrics (metrics.py) and the reason for every compilation (recompile.py).
User modules: torch_neuronx_emu.xla_model, .debug_metrics, .parallel_loader; shim.py aliases them as torch_xla."""
from __future__ import annotations

from typing import Callable, List

from neuron_emu.lazy import metrics, recompile  # noqa: F401
from neuron_emu.lazy.device import device, device_type  # noqa: F401

_closures: List[tuple] = []


def mark_step(where: str = None, wait: bool = True) -> int:
    """Compile (or reuse) and run the pending graph of every live device tensor; run the step closures.
    With `wait=False` a cached step runs on the device's worker thread (device_queue.py). Returns the number of
    ops run."""
    from neuron_emu.lazy.backward_errors import raise_pending
    from neuron_emu.lazy.executor import sync_step
    from neuron_emu.lazy.record import user_frame
    raise_pending()   # (a backward through torch.autograd.grad that deferred an error, with no device op since)
    metrics.counter_add("MarkStep")
    n = sync_step(where or user_frame(), wait)
    closures = list(_closures)
    _closures.clear()
    for fn, args in closures:
        fn(*args)
    return n


def add_step_closure(fn: Callable, args=()) -> None:
    _closures.append((fn, tuple(args)))


def recompile_reasons() -> List[str]:
    """Why each graph of this process was compiled, oldest first."""
    return [str(r) for r in recompile.recompiles]


def graph_cuts() -> List[str]:
    """Each sync that was not a mark_step (`.item()`, print, `.cpu()`, a CPU fallback) with its source line."""
    return list(recompile.graph_cuts)
