"""Dynamic batching (torch_neuronx.dynamic_batch, neuron-api.md 2.2): a model compiled for batch B runs a batch
of any size N by splitting dimension 0 into ceil(N / B) chunks of B, padding the last with zeros, running the
chunks one after the other on one core (or spread over the copies of a replicated model) and concatenating the outputs (trimmed back to N).

Every input must have the same size in dimension 0 and the compiled sizes in every other dimension; otherwise
ValueError. Outputs whose compiled dimension 0 is B are batched (concatenated); any other output is taken from
the first chunk (ASSUMPTION: the SDK documents only batched outputs)."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import List, Optional, Sequence

import torch

from neuron_emu.runtime.model import LoadedModel


MAX_CHUNK_THREADS = 32   # trn1.32xlarge's NeuronCores; threads start only when a call needs them


def compiled_batch(m: LoadedModel) -> int:
    """The batch size the model was compiled for: dimension 0 of its inputs (-1 when it has none in common)."""
    sizes = {shape[0] if len(shape) else -1 for shape, _ in m._in_specs[:m.n_user]}  # (weights are not batched)
    return sizes.pop() if len(sizes) == 1 else -1


def check(m: LoadedModel, inputs: List[torch.Tensor]) -> None:
    """Raise the documented ValueError for inputs dynamic batching cannot run (called before TorchScript, which
    would turn it into a RuntimeError)."""
    if (compiled_batch(m) >= 1 and len(inputs) == len(m._in_specs)
            and all(isinstance(x, torch.Tensor) for x in inputs)
            and not all(x.shape == s for x, (s, _) in zip(inputs, m._in_specs))):
        _check(m, inputs[:m.n_user])


def _check(m: LoadedModel, inputs: List[torch.Tensor]) -> int:
    """The batch size of `inputs` (ValueError when dimension 0 disagrees or another dimension changed)."""
    return check_batch([shape for shape, _ in m._in_specs], inputs)


def check_batch(compiled_shapes: Sequence[torch.Size], inputs: List[torch.Tensor]) -> int:
    """The batch size of `inputs` against the compiled input shapes (ValueError when dimension 0 disagrees or
    another dimension changed). Also torch_neuron_emu's dynamic_batch_size on partitioned models."""
    sizes = [x.shape[0] if x.dim() else None for x in inputs]
    if None in sizes or len(set(sizes)) != 1:
        shapes = ", ".join(str(list(x.shape)) for x in inputs)
        raise ValueError(f"Dynamic batching requires every input to have the same size in dimension 0 (the batch "
                         f"dimension), got inputs of shapes {shapes}")
    for i, (x, shape) in enumerate(zip(inputs, compiled_shapes)):
        if x.shape[1:] != shape[1:]:
            raise ValueError(f"Dynamic batching only changes dimension 0: input {i} has shape {list(x.shape)} but "
                             f"the model was compiled for shape {list(shape)} (only the first dimension may "
                             f"differ)")
    return sizes[0]


def run_dynamic(models: Sequence[LoadedModel], inputs: List[torch.Tensor], first: int = 0) -> List[torch.Tensor]:
    """Run a batch of any size along dimension 0 (see the module docstring) on copies of one artifact: chunk i on
    models[(first + i) % len(models)]. With several copies (set_neuron_cores nc_count > 1, set_multicore) their
    chunks run concurrently, each copy's in order (the first on the calling thread), so a call costs about
    ceil(batch / compiled batch) / cores executions, as neuron-api.md 2.2 states."""
    k = len(models)
    m = models[first % k]
    batch = compiled_batch(m)
    if len(inputs) != len(m._in_specs) or batch < 1 or not all(isinstance(x, torch.Tensor) for x in inputs):
        return m(inputs)   # not batchable: the model's own input check reports it
    if all(x.shape == s for x, (s, _) in zip(inputs, m._in_specs)):
        return m(inputs)
    weights = inputs[m.n_user:]   # fed whole to every chunk
    inputs = inputs[:m.n_user]
    n = _check(m, inputs)
    if n == 0:
        raise ValueError("Dynamic batching: the inputs have batch size 0")
    parts = []
    for start in range(0, n, batch):
        part = []
        for x in inputs:
            c = x[start:start + batch]
            if c.shape[0] < batch:
                c = torch.cat([c, c.new_zeros((batch - c.shape[0],) + tuple(c.shape[1:]))])
            part.append(c)
        parts.append(part + weights)
    chunks: List[Optional[List[torch.Tensor]]] = [None] * len(parts)
    groups = [list(range(j, len(parts), k)) for j in range(min(k, len(parts)))]

    def run(j: int) -> None:
        mj = models[(first + j) % k]
        for i in groups[j]:
            chunks[i] = mj(parts[i])

    futures = [_executor().submit(run, j) for j in range(1, len(groups))]
    try:
        run(0)
    finally:   # every chunk has finished (or failed) before this returns
        wait(futures)
    for f in futures:
        f.result()
    outs = []
    for j, (shape, _) in enumerate(m._out_specs):
        if len(shape) and shape[0] == batch:
            outs.append(torch.cat([c[j] for c in chunks])[:n] if len(chunks) > 1 else chunks[0][j][:n])
        else:
            outs.append(chunks[0][j])
    return outs


_pool: Optional[ThreadPoolExecutor] = None
_pool_lock = threading.Lock()


def _forget_pool_in_child() -> None:
    """A forked child has none of the parent's threads: the pool would wait on them forever."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


def _executor() -> ThreadPoolExecutor:
    """Threads for the chunks of replicated models (tasks never wait on other tasks: no deadlock)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_CHUNK_THREADS, thread_name_prefix="neuron-dynbatch")
        return _pool
