"""A compiled artifact loaded onto an emulated NeuronCore: one native call per execution."""
from __future__ import annotations

import itertools
import os
import weakref
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch

from neuron_emu import _C
from neuron_emu.compiler import artifact, const_storage
from neuron_emu.hardware import CORES
from neuron_emu.runtime.core import EngineSummary, NeuronCore, engine_summaries

__all__ = ["CallSummary", "EngineSummary", "LoadedModel", "last_call"]


# header field of an artifact whose fp16 inputs were fp32 in the model (torch_neuron Optimization.FLOAT32_TO_FLOAT16)
FP16_IO_HEADER = "float32_io_as_float16"


@dataclass
class CallSummary:
    """What one execution cost on the emulated NeuronCore that ran it."""
    latency_s: float
    engines: Dict[str, EngineSummary]
    core: str                 # the core's generation name, e.g. "NeuronCore-v2"
    core_index: int = 0       # which NeuronCore of the runtime ran it
    model: "LoadedModel" = field(repr=False, default=None)

    @property
    def bottleneck(self) -> str:
        return max(self.engines, key=lambda e: self.engines[e].busy_s)

    def timeline(self) -> dict:
        """Per-instruction start/end (ns), engine cycles, op code and source-op name. The modelled times are a
        property of the program (identical for every call); host_ns is the last call's on this core."""
        return self.model.timeline()


_empty_like = torch.empty_like
_contiguous = torch.contiguous_format
# token -> model, for last_call(): each execution (through this class or the native forward op) leaves its
# program's token and stats in a native thread-local record
_tokens = itertools.count(1)
_by_token: "weakref.WeakValueDictionary[int, LoadedModel]" = weakref.WeakValueDictionary()


def last_call() -> Optional[CallSummary]:
    """Summary of the calling thread's most recent execution of a compiled model (None before any, or when that
    model has been released)."""
    rec = _C.last_run()
    m = None if rec is None else _by_token.get(rec[0])
    return None if m is None else m.summary(rec[1])


class LoadedModel:
    """An artifact's program on one NeuronCore. Holds an alias of the artifact's storage (the constants are
    used in place), never the artifact tensor object itself, so the runtime can release the model when the
    tensor is garbage collected."""

    def __init__(self, blob: torch.Tensor, origin: str = "model", core: Optional[NeuronCore] = None):
        blob = blob.detach()  # a new tensor object over the same storage
        header, sec = artifact.deserialize(blob, origin)
        self.blob = blob
        self.header = header
        self.generation = int(header.get("core_generation", 2))
        if self.generation not in CORES:
            raise artifact.ArtifactError(f"{origin}: unknown NeuronCore generation {self.generation}")
        if core is None:
            from neuron_emu.runtime.placement import runtime_for
            core = runtime_for(self.generation).core(0)
        if core.generation != self.generation:
            raise RuntimeError(
                f"{origin} was compiled for {CORES[self.generation].name} but NeuronCore {core.index} is a "
                f"{core.spec.name}: recompile for this core ({'torch_neuron' if core.generation == 1 else 'torch_neuronx'}"
                f".trace) or run on an instance type with {CORES[self.generation].name} cores "
                f"(NEURON_EMU_INSTANCE_TYPE)")
        self.core = core
        self.key = 0  # artifact identity in the core's cache (set by the runtime)
        buffers = sec["buffers"]
        if buffers.ndim != 2 or buffers.shape[1] != 3:
            raise artifact.ArtifactError(f"{origin}: buffer table has shape {buffers.shape}, expected [n, 3]")
        consts = []
        for name, arr in sec.items():
            if name.startswith("const."):
                try:
                    bid = int(name[6:])
                except ValueError:
                    raise artifact.ArtifactError(f"{origin}: bad section name {name!r}") from None
                kind = int(buffers[bid, 1]) if 0 <= bid < buffers.shape[0] else 1
                want = const_storage.storage_dtype(kind) if kind in (1, 2, 3) else np.float32
                if arr.dtype != want:
                    raise artifact.ArtifactError(f"{origin}: {name} must be {np.dtype(want).name} "
                                                 f"(buffer kind {kind}), got {arr.dtype}")
                consts.append((bid, arr.reshape(-1)))
        self.inputs = header["inputs"]
        self.outputs = header["outputs"]
        # per-input (shape, dtype) and per-output (shape, dtype), checked/used on every call
        self._in_specs = [(torch.Size(d["shape"]), getattr(torch, d["dtype"])) for d in self.inputs]
        self._out_specs = [(tuple(d["shape"]), getattr(torch, d["dtype"])) for d in self.outputs]
        # zero-size stand-ins of the outputs: empty_like of one parses no shape (the cheapest fresh output)
        self._out_likes = [torch.empty((), dtype=d).expand(s) for s, d in self._out_specs]
        self._n_in = len(self.inputs)
        # torch_neuron's FLOAT32_TO_FLOAT16: fp16 inputs also accept fp32, rounded to fp16 on the way in
        self._fp32_as_fp16 = bool(header.get(FP16_IO_HEADER, False))
        self._stage_lock = core.stage_lock if header.get("pipeline_stage") is not None else None
        # inline_weights_to_neff=False: the last n_weights inputs are the weights the module feeds every call
        self.weight_names: List[List[str]] = header.get("weights", [])
        self.n_user = self._n_in - len(self.weight_names)
        self.source_ops: List[str] = header.get("source_ops", [])
        try:
            instrs = artifact.resolve_ops(header, np.ascontiguousarray(sec["instrs"]), origin)
            self.program = _C.Program(core.native_spec, instrs,
                                      np.ascontiguousarray(sec["deps"]), np.ascontiguousarray(buffers[:, 0]),
                                      np.ascontiguousarray(buffers[:, 1].astype(np.int32)),
                                      np.ascontiguousarray(buffers[:, 2]), consts, int(header["arena_floats"]),
                                      *artifact.io_table(header),
                                      check_deps=os.environ.get("NEMU_CHECK_DEPS") == "1")
        except ValueError as e:
            raise artifact.ArtifactError(f"{origin}: invalid program: {e}") from None
        self._artifact: Optional[weakref.ref] = None  # the artifact tensor this was placed for (runtime)
        self.token = next(_tokens)
        _by_token[self.token] = self
        self.program.attach(core.native_counters, self.token)

    def __repr__(self) -> str:
        return f"LoadedModel({len(self.inputs)} input(s) -> {len(self.outputs)} output(s) on NeuronCore {self.core.index})"

    def _bad_inputs(self, inputs: List[torch.Tensor]):
        if self._fp32_as_fp16:
            inputs = [x.to(torch.float16) if x.dtype is torch.float32 and d is torch.float16 else x
                      for x, (_, d) in zip(inputs, self._in_specs)] + list(inputs[len(self._in_specs):])
        if len(inputs) != self._n_in:
            raise RuntimeError(f"The model expects {self._n_in} input tensor(s), got {len(inputs)}")
        fix = ("trace with torch_neuron.trace(..., dynamic_batch_size=True)" if self.generation == 1
               else "use torch_neuronx.dynamic_batch")
        for i, (x, (shape, dtype)) in enumerate(zip(inputs, self._in_specs)):
            if x.shape != shape or x.dtype != dtype:
                raise RuntimeError(
                    f"Input tensor {i} has shape {list(x.shape)} and dtype {x.dtype}, but the model was compiled for "
                    f"shape {list(shape)} and dtype {dtype}. Neuron models have fixed input shapes: retrace with the "
                    f"new shape, or {fix} for a different batch size.")
            if not x.is_cpu:
                raise RuntimeError(f"Input tensor {i} is on {x.device}; traced Neuron models take CPU tensors")
        raise AssertionError("unreachable")

    def check_inputs(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        if len(inputs) != self._n_in:
            self._bad_inputs(inputs)
        out = []
        for x, (shape, dtype) in zip(inputs, self._in_specs):
            if x.dtype is torch.float32 and dtype is torch.float16 and self._fp32_as_fp16:
                x = x.to(torch.float16)  # (torch's round to nearest even, as the device's conversion)
            if x.shape != shape or x.dtype is not dtype or not x.is_cpu:
                self._bad_inputs(inputs)
            out.append(x if x.is_contiguous() else x.contiguous())
        return out

    def __call__(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        # check_inputs inlined: this is the GIL-held part of every execution, which bounds how well two
        # emulated cores called from two threads scale
        if len(inputs) != self._n_in:
            self._bad_inputs(inputs)
        ptrs = []
        keep = None   # converted or contiguous copies, alive until the run ends
        for x, (shape, dtype) in zip(inputs, self._in_specs):
            if x.dtype is not dtype and self._fp32_as_fp16 and x.dtype is torch.float32 and dtype is torch.float16:
                x = x.to(torch.float16)  # (torch's round to nearest even, as the device's conversion)
                keep = [x] if keep is None else keep + [x]
            if x.shape != shape or x.dtype is not dtype or not x.is_cpu:
                self._bad_inputs(inputs)
            if not x.is_contiguous():
                x = x.contiguous()
                keep = [x] if keep is None else keep + [x]
            ptrs.append(x.data_ptr())
        outs = [_empty_like(o, memory_format=_contiguous) for o in self._out_likes]
        if self._stage_lock is None:   # (counted on the core and recorded for last_call natively)
            self.program.run(ptrs, [o.data_ptr() for o in outs])
        else:  # a pipeline stage: one at a time on its core, the next call's earlier stage runs meanwhile
            with self._stage_lock:
                self.program.run(ptrs, [o.data_ptr() for o in outs])
        return outs

    @property
    def native_ok(self) -> bool:
        """Whether the native forward op may run this model itself (forward_op.h): not a pipeline stage (its
        stage lock) and no fp32-as-fp16 inputs (converted here)."""
        return self._stage_lock is None and not self._fp32_as_fp16

    def io_specs(self):
        """(dtype name, sizes) of each input and output, as the native forward op checks and allocates them."""
        def spec(shape, dtype):
            return str(dtype).replace("torch.", ""), list(shape), dtype.itemsize
        return [spec(*x) for x in self._in_specs], [spec(*x) for x in self._out_specs]

    def summary(self, st: np.ndarray) -> CallSummary:
        """The CallSummary of one execution's stats vector (as Program.run returns it)."""
        lat = float(st[0]) * 1e-9
        return CallSummary(lat, engine_summaries(st, lat), self.core.spec.name, self.core.index, self)

    def timeline(self) -> dict:
        """The program's modelled per-instruction timeline; host_ns is the last call's on this core."""
        t = self.program.timeline()
        t["source_op"] = [self.source_ops[s] if 0 <= s < len(self.source_ops) else "" for s in t["src"]]
        return t
