"""torch_neuronx.experimental placement APIs (neuron-api.md 2.8): which NeuronCores a traced model runs on.

`set_neuron_cores(trace, start_nc=-1, nc_count=-1)`: start_nc -1 = the least-used core(s); nc_count -1 = one
core; nc_count > 1 loads a copy on each of nc_count contiguous cores and round-robins executions over them.
`set_multicore(trace)`: every visible core. The contexts apply the same to every model `torch.jit.load`
returns inside them (not thread-safe, as documented). Core numbers are relative to the process's visible cores
(NEURON_RT_VISIBLE_CORES). DataParallel calls set_neuron_cores as torch_neuronx does
(`torch_neuronx.experimental.placement.set_neuron_cores(module, device_ids[0], len(device_ids))`)."""
from __future__ import annotations

import contextlib
from typing import Iterator, List, Tuple

import torch

from neuron_emu.runtime import placement as rt_placement
from neuron_emu.runtime.placement import Runtime

__all__ = ["set_neuron_cores", "set_multicore", "neuron_cores_context", "multicore_context", "move_trace_to_device"]


def artifacts(trace) -> List[torch.Tensor]:
    """The compiled artifacts (`neff` buffers) of a traced module, or of a module that contains traced ones."""
    if not isinstance(trace, torch.nn.Module):
        raise TypeError(f"Expected a module returned by torch_neuronx.trace (or torch.jit.load of one), got "
                        f"{type(trace).__name__}")
    blobs = [b for name, b in trace.named_buffers() if name.rsplit(".", 1)[-1] == "neff" and b.dtype == torch.uint8]
    if not blobs:
        raise ValueError("The module contains no Neuron-compiled graph: pass a module returned by "
                         "torch_neuronx.trace (or torch.jit.load of a saved trace)")
    return blobs


def runtime_of(blob: torch.Tensor) -> Runtime:
    return rt_placement.runtime_for(rt_placement._generation(blob))


def core_range(rt: Runtime, start_nc: int, nc_count: int) -> Tuple[int, int]:
    """(first core, count) for set_neuron_cores' arguments on this runtime's visible cores."""
    n = len(rt.cores)
    if not isinstance(nc_count, int) or isinstance(nc_count, bool) or nc_count == 0 or nc_count < -1:
        raise ValueError(f"Invalid nc_count {nc_count!r}: expected -1 (one NeuronCore) or a count of NeuronCores "
                         f"from 1 to {n} (visible NeuronCores 0-{n - 1})")
    count = 1 if nc_count == -1 else nc_count
    if count > n:
        raise ValueError(f"Invalid nc_count {nc_count}: only {n} NeuronCores are visible to this process "
                         f"(0-{n - 1})")
    if not isinstance(start_nc, int) or isinstance(start_nc, bool) or start_nc < -1 or start_nc >= n:
        raise ValueError(f"Invalid start_nc {start_nc!r}: expected -1 (least used) or a NeuronCore from 0 to "
                         f"{n - 1} (the visible NeuronCores)")
    if start_nc == -1:   # the contiguous window with the fewest models loaded (lowest index on ties)
        start_nc = min(range(n - count + 1),
                       key=lambda s: (sum(c.loaded_models for c in rt.cores[s:s + count]), s))
    elif start_nc + count > n:
        raise ValueError(f"Invalid nc_count {nc_count} for start_nc {start_nc}: NeuronCores {start_nc}-"
                         f"{start_nc + count - 1} are not all visible (0-{n - 1})")
    return start_nc, count


def set_neuron_cores(trace, start_nc: int = -1, nc_count: int = -1) -> None:
    """Load `trace` on NeuronCores start_nc .. start_nc + nc_count - 1 (in place; returns None)."""
    for blob in artifacts(trace):
        rt = runtime_of(blob)
        with rt._lock:
            start, count = core_range(rt, start_nc, nc_count)
            rt_placement.place(blob, list(range(start, start + count)))


def set_multicore(trace) -> None:
    """Load `trace` on every visible NeuronCore; executions round-robin over them."""
    for blob in artifacts(trace):
        rt_placement.place(blob, list(range(len(runtime_of(blob).cores))))


def move_trace_to_device(trace, device_id: int) -> None:
    """torch_neuronx.move_trace_to_device (neuron-api.md 2.1): load `trace` on NeuronCore `device_id` (0 ..
    visible cores - 1), in place; returns None. For separate-weights traces (inline_weights_to_neff=False) the
    real SDK also moves the weights to the device; here the weights stay in the module and are fed (copied in by
    the program's input DMA, which the cost model charges) at every call."""
    for blob in artifacts(trace):
        n = len(runtime_of(blob).cores)
        if isinstance(device_id, bool) or not isinstance(device_id, int) or not 0 <= device_id < n:
            raise ValueError(f"Invalid device_id {device_id!r}: expected a NeuronCore from 0 to {n - 1} (the "
                             f"visible NeuronCores)")
        rt_placement.place(blob, [device_id])


@contextlib.contextmanager
def _placing_loads(place) -> Iterator[None]:
    real = torch.jit.load

    def load(*args, **kwargs):
        from torch_neuronx_emu.loading import placement_pending
        with placement_pending():   # the context places the model, not torch.jit.load's default load
            module = real(*args, **kwargs)
        try:
            artifacts(module)
        except ValueError:
            return module   # not a Neuron trace: nothing to place
        place(module)
        return module

    torch.jit.load = load
    try:
        yield
    finally:
        torch.jit.load = real


@contextlib.contextmanager
def neuron_cores_context(start_nc: int = -1, nc_count: int = -1) -> Iterator[None]:
    """Every model torch.jit.load returns inside the block is placed as set_neuron_cores(model, start_nc,
    nc_count) would."""
    rt = rt_placement.runtime()
    core_range(rt, start_nc, nc_count)   # invalid arguments fail at the `with`, not at the first load
    with _placing_loads(lambda m: set_neuron_cores(m, start_nc, nc_count)):
        yield


@contextlib.contextmanager
def multicore_context() -> Iterator[None]:
    """Every model torch.jit.load returns inside the block is placed on every visible NeuronCore."""
    with _placing_loads(set_multicore):
        yield
