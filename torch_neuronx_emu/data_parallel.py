"""torch_neuronx.DataParallel (neuron-api.md 2.3, same semantics as torch.neuron.DataParallel 1.6): one copy of
a traced model per NeuronCore, the input scattered along `dim` into chunks that run in parallel (chunk i on core
i % len(device_ids); each core's chunks on one thread pinned to it, the first core's on the calling thread, the
others on a pool of num_workers threads; Program.run releases the GIL), the outputs gathered along `dim`.
With dynamic batching and a chunk size that is a multiple of the compiled batch, each core instead gets
consecutive chunks as one call (the same compiled-size executions, one TorchScript call per core).

Dynamic batching is on by default when dim == 0 (a chunk of any size runs as compiled-size pieces); with it off,
input.shape[dim] / len(device_ids) must equal the compiled size. device_ids are ints or 'nc:#' strings,
relative to the process's visible NeuronCores (NEURON_RT_VISIBLE_CORES)."""
from __future__ import annotations

import os
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Optional, Sequence

import torch
from torch.utils import _pytree as pytree

from neuron_emu.runtime import native_placement
from neuron_emu.runtime import placement as rt_placement
from neuron_emu.runtime.batching import compiled_batch
from torch_neuronx_emu.batching import dynamic_batch
from torch_neuronx_emu.experimental.placement import artifacts, runtime_of, set_neuron_cores

__all__ = ["DataParallel"]

_NC = re.compile(r"nc:(\d+)")


def _device_index(d, n: int) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, str)):
        raise ValueError(f"Invalid device id {d!r}: expected an int or a string 'nc:#'")
    if isinstance(d, str):
        m = _NC.fullmatch(d.strip())
        if m is None:
            raise ValueError(f"Invalid device id {d!r}: expected an int or a string 'nc:#'")
        d = int(m.group(1))
    if not 0 <= d < n:
        raise ValueError(f"Invalid device id {d}: {n} NeuronCores are visible to this process (0-{n - 1}, "
                         f"relative to NEURON_RT_VISIBLE_CORES)")
    return d


class DataParallel(torch.nn.Module):
    """Run a traced module data-parallel over NeuronCores `device_ids` (default: every visible core)."""

    def __init__(self, module, device_ids: Optional[Sequence] = None, dim: int = 0, set_dynamic_batching: bool = True):
        super().__init__()
        blobs = artifacts(module)
        rt = runtime_of(blobs[0])
        n = len(rt.cores)
        ids = list(range(n)) if device_ids is None else [_device_index(d, n) for d in device_ids]
        if not ids:
            raise ValueError("device_ids is empty: DataParallel needs at least one NeuronCore")
        if len(set(ids)) != len(ids):
            raise ValueError(f"device_ids {list(device_ids)} name a NeuronCore more than once")
        self.module = module
        self.device_ids: List[int] = ids
        self.dim = dim
        self.num_workers = 2 * len(ids)
        self.split_size: Optional[int] = None   # None: max(1, input.shape[dim] // number of NeuronCores) per call
        self.dynamic_batching = False
        self._blobs = blobs
        self._compiled: Optional[int] = None   # the artifact's compiled batch (looked up at the first call)
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pool_workers = 0
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        # calls already seen to take the native kernel's spread (_native_spreads), by _call_key: they go straight
        # to the script method, skipping this forward's split and the module's Python call layers (~30 us)
        self._script_forward = (module._c._get_method("forward")
                                if isinstance(module, torch.jit.RecursiveScriptModule) else None)
        self._spread_keys: set = set()
        self._spread_placement = None   # the placement (runtime Deployment) those keys were seen with
        contiguous = ids == list(range(ids[0], ids[0] + len(ids)))
        if contiguous:   # as torch_neuronx does it
            set_neuron_cores(module, ids[0], len(ids))
        else:
            for blob in blobs:
                rt_placement.place(blob, ids)
        if set_dynamic_batching:
            if dim == 0:
                self.enable_dynamic_batching()
            else:
                warnings.warn(f"Dynamic batching cannot be enabled: it splits dimension 0 but DataParallel scatters "
                              f"on dim={dim}; input.shape[{dim}] / len(device_ids) must equal the compiled size",
                              UserWarning, stacklevel=2)

    def enable_dynamic_batching(self) -> None:
        dynamic_batch(self.module)
        self.dynamic_batching = True

    def disable_dynamic_batching(self) -> None:
        """Each chunk must then be exactly the compiled size: input.shape[dim] / len(device_ids) == compiled."""
        for blob in self._blobs:
            rt_placement.place(blob, dynamic=False)
        self.dynamic_batching = False

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            # a forked child has none of the parent's threads: its pool would wait on them forever
            if self._pool is None or self._pool_workers != self.num_workers or self._pool_pid != os.getpid():
                if self._pool is not None and self._pool_pid == os.getpid():
                    self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(max_workers=max(1, int(self.num_workers)),
                                                thread_name_prefix="neuron-dp")
                self._pool_workers = self.num_workers
                self._pool_pid = os.getpid()
            return self._pool

    def _compiled_size(self) -> int:
        m = rt_placement.current(self._blobs[0])
        m = m.models[0] if isinstance(m, rt_placement.Deployment) else m
        if m is None:
            return -1
        if self.dim == 0:
            return compiled_batch(m)
        sizes = {s[self.dim] if len(s) > self.dim else -1 for s, _ in m._in_specs}
        return sizes.pop() if len(sizes) == 1 else -1

    def _whole_pieces(self, split: int) -> bool:
        """Whether a core's chunks can run as one call: dynamic batching on dim 0 of a single-artifact model
        whose compiled batch divides the chunk size."""
        if not (self.dynamic_batching and self.dim == 0 and len(self._blobs) == 1):
            return False
        if self._compiled is None:
            self._compiled = self._compiled_size()
        return self._compiled > 0 and split % self._compiled == 0

    def _native_spreads(self, spans: List[tuple], size: int, tensors: List[torch.Tensor]) -> bool:
        """Whether one unpinned call gives exactly these per-core spans through the native kernel: it spreads
        the compiled-batch chunks over the copies as ceil(chunks / cores) per core, and runs only where no input
        requires grad. It starts at the next copy in turn, so only one span per core, all of one size, puts the
        same work on each of device_ids as the pinned threads would. The artifact must still be placed on
        device_ids (another DataParallel of the same module may have placed it elsewhere since), and every output
        with a dimension must be batched (the native kernel takes an unbatched one from the first chunk; _gather
        concatenates each core's)."""
        if not native_placement.enabled or (torch.is_grad_enabled() and any(x.requires_grad for x in tensors)):
            return False
        d = rt_placement.current(self._blobs[0])
        if not isinstance(d, rt_placement.Deployment) or d.cores != self.device_ids:
            return False
        if any(len(s) and s[0] != self._compiled for s, _ in d.models[0]._out_specs):
            return False
        b, k = self._compiled, len(self.device_ids)
        chunks = -(-size // b)
        per = -(-chunks // min(k, chunks)) * b
        return (len(spans) == k and len({b - a for a, b in spans}) == 1
                and spans == [(a, min(size, a + per)) for a in range(0, size, per)])

    def _run_group(self, core: int, chunks: List[tuple], kwargs: dict, grad: bool,
                   inference: bool) -> list:
        # the caller's autograd modes, which are per thread: a worker would otherwise run with grad enabled
        with rt_placement.pinned(core), torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return [self.module(*c, **kwargs) for c in chunks]

    def _call_key(self, inputs: tuple):
        """What decides a call's path: autograd modes, the split settings, each input's shape and dtype (None when
        an input is not a tensor or the module has Python hooks)."""
        m = self.module
        if m._forward_hooks or m._forward_pre_hooks or not all(isinstance(x, torch.Tensor) for x in inputs):
            return None
        return (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), self.split_size, self.dynamic_batching,
                self.dim, tuple(self.device_ids), tuple((x.shape, x.dtype, x.device, x.requires_grad) for x in inputs))

    def forward(self, *inputs, **kwargs):
        if (self._script_forward is not None and not kwargs and self._spread_keys
                and rt_placement.current(self._blobs[0]) is self._spread_placement):
            key = self._call_key(inputs)
            if key is not None and key in self._spread_keys:
                return self._script_forward(*inputs)
        tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
        if not tensors:
            raise ValueError("DataParallel needs at least one tensor input to scatter")
        dim, k = self.dim, len(self.device_ids)
        size = tensors[0].shape[dim]
        for x in tensors:
            if x.dim() <= dim or x.shape[dim] != size:
                raise ValueError(f"DataParallel scatters every tensor input on dim={dim}: got inputs of shapes "
                                 f"{[list(t.shape) for t in tensors]}")
        if self.dynamic_batching:
            split = int(self.split_size) if self.split_size else max(1, size // k)
        else:
            compiled = self._compiled_size()
            if compiled > 0 and size != compiled * k:
                raise ValueError(f"With dynamic batching disabled, input.shape[{dim}] / len(device_ids) must equal "
                                 f"the compiled size: input.shape[{dim}] = {size}, {k} NeuronCore(s), compiled "
                                 f"size {compiled} (expected input.shape[{dim}] = {compiled * k})")
            split = int(self.split_size) if self.split_size else max(1, size // k)
        starts = list(range(0, size, split))
        if self._whole_pieces(split):
            # each core's chunks are consecutive and go in ONE call: dynamic batching runs them as the same
            # compiled-size executions (split is a multiple of the compiled batch, so no piece spans two chunks)
            # with one TorchScript call per core instead of one per chunk
            per = -(-len(starts) // k)
            spans = [(starts[g], min(size, starts[g] + per * split)) for g in range(0, len(starts), per)]
            if self._native_spreads(spans, size, tensors):
                # one call: the native forward kernel runs the same spans on its own helper threads, with no
                # Python thread hand-off (csrc/forward_op.h)
                out = self.module(*inputs, **kwargs)
                key = None if kwargs or self._script_forward is None else self._call_key(inputs)
                if key is not None:
                    placed = rt_placement.current(self._blobs[0])
                    # keys hold for one placement (another DataParallel of the module may replace it), and
                    # many shapes start over rather than grow
                    if placed is not self._spread_placement or len(self._spread_keys) >= 64:
                        self._spread_keys.clear()
                        self._spread_placement = placed
                    self._spread_keys.add(key)
                return out
            chunks = [tuple(x.narrow(dim, a, b - a) if isinstance(x, torch.Tensor) else x for x in inputs)
                      for a, b in spans]
            groups = [[g] for g in range(len(chunks))]
        else:
            chunks = [tuple(x.narrow(dim, s, min(split, size - s)) if isinstance(x, torch.Tensor) else x
                            for x in inputs) for s in starts]
            # chunk i runs on device i % k; each core's chunks go one after the other in one task (a pool
            # hand-off costs ~50 us), the first core's on the calling thread
            groups = [list(range(j, len(chunks), k)) for j in range(min(k, len(chunks)))]
        pool = self._executor() if len(groups) > 1 else None
        modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled())
        futures = [pool.submit(self._run_group, self.device_ids[j], [chunks[i] for i in g], kwargs, *modes)
                   for j, g in enumerate(groups) if j > 0]
        results: List[Any] = [None] * len(chunks)
        try:
            first = self._run_group(self.device_ids[0], [chunks[i] for i in groups[0]], kwargs, *modes)
            for i, r in zip(groups[0], first):
                results[i] = r
        finally:   # every chunk has finished (or failed) before this call returns
            done = [f.result() if f.exception() is None else f.exception() for f in futures]
        for j, d in enumerate(done, 1):
            if isinstance(d, BaseException):
                raise d
            for i, r in zip(groups[j], d):
                results[i] = r
        return results[0] if len(results) == 1 else _gather(results, dim)


def _gather(results: List[Any], dim: int):
    leaves, spec = pytree.tree_flatten(results[0])
    rest = [pytree.tree_flatten(r)[0] for r in results[1:]]
    out = []
    for j, leaf in enumerate(leaves):
        if isinstance(leaf, torch.Tensor) and leaf.dim() > dim:
            out.append(torch.cat([leaf] + [r[j] for r in rest], dim))
        else:
            out.append(leaf)
    return pytree.tree_unflatten(out, spec)
