"""A compiled artifact loaded onto an emulated NeuronCore: one native call per execution."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch

from neuron_emu import _C
from neuron_emu.compiler import artifact
from neuron_emu.hardware import CORES, core_spec
from neuron_emu.isa import ENGINE_NAMES


@dataclass
class EngineSummary:
    busy_s: float
    utilization: float
    instructions: int
    bytes: int
    flops: int


@dataclass
class CallSummary:
    """What the last execution cost on the emulated NeuronCore."""
    latency_s: float
    engines: Dict[str, EngineSummary]
    core: str
    model: "LoadedModel" = field(repr=False, default=None)

    @property
    def bottleneck(self) -> str:
        return max(self.engines, key=lambda e: self.engines[e].busy_s)

    def timeline(self) -> dict:
        """Per-instruction start/end (ns), engine cycles, op code and source-op name of the last call."""
        return self.model.timeline()


_last: Optional[CallSummary] = None
_last_lock = threading.Lock()


def last_call() -> Optional[CallSummary]:
    """Summary of the most recent execution of any compiled model in this process (None before any)."""
    return _last


class LoadedModel:
    def __init__(self, blob: torch.Tensor, origin: str = "model"):
        header, sec = artifact.deserialize(blob, origin)
        self.blob = blob
        self.header = header
        self.generation = int(header.get("core_generation", 2))
        if self.generation not in CORES:
            raise artifact.ArtifactError(f"{origin}: unknown NeuronCore generation {self.generation}")
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
                if arr.dtype != np.float32:
                    raise artifact.ArtifactError(f"{origin}: {name} must be float32")
                consts.append((bid, arr.reshape(-1)))
        self.inputs = header["inputs"]
        self.outputs = header["outputs"]
        self._in_dtypes = [getattr(torch, d["dtype"]) for d in self.inputs]
        self._in_shapes = [tuple(d["shape"]) for d in self.inputs]
        self._out_dtypes = [getattr(torch, d["dtype"]) for d in self.outputs]
        self._out_shapes = [tuple(d["shape"]) for d in self.outputs]
        self.source_ops: List[str] = header.get("source_ops", [])
        try:
            instrs = artifact.resolve_ops(header, np.ascontiguousarray(sec["instrs"]), origin)
            self.program = _C.Program(core_spec(self.generation), instrs,
                                      np.ascontiguousarray(sec["deps"]), np.ascontiguousarray(buffers[:, 0]),
                                      np.ascontiguousarray(buffers[:, 1].astype(np.int32)),
                                      np.ascontiguousarray(buffers[:, 2]), consts, int(header["arena_floats"]),
                                      len(self.inputs), len(self.outputs),
                                      check_deps=os.environ.get("NEMU_CHECK_DEPS") == "1")
        except ValueError as e:
            raise artifact.ArtifactError(f"{origin}: invalid program: {e}") from None

    def check_inputs(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        if len(inputs) != len(self.inputs):
            raise RuntimeError(f"The model expects {len(self.inputs)} input tensor(s), got {len(inputs)}")
        out = []
        for i, (x, shape, dtype) in enumerate(zip(inputs, self._in_shapes, self._in_dtypes)):
            if tuple(x.shape) != shape or x.dtype != dtype:
                raise RuntimeError(
                    f"Input tensor {i} has shape {list(x.shape)} and dtype {x.dtype}, but the model was compiled for "
                    f"shape {list(shape)} and dtype {dtype}. Neuron models have fixed input shapes: retrace with the "
                    f"new shape, or use torch_neuronx.dynamic_batch for a different batch size.")
            if x.device.type != "cpu":
                raise RuntimeError(f"Input tensor {i} is on {x.device}; traced Neuron models take CPU tensors")
            out.append(x.detach().contiguous())
        return out

    def __call__(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        global _last
        inputs = self.check_inputs(inputs)
        outs = [torch.empty(s, dtype=d) for s, d in zip(self._out_shapes, self._out_dtypes)]
        self.program.run([x.data_ptr() for x in inputs], [o.data_ptr() for o in outs])
        with _last_lock:
            _last = self.summary()
        return outs

    def summary(self) -> CallSummary:
        st = self.program.last_stats()
        lat = st["latency_ns"] * 1e-9
        engines = {}
        for name in ENGINE_NAMES:
            e = st["engines"][name]
            busy = e["busy_ns"] * 1e-9
            engines[name] = EngineSummary(busy, busy / lat if lat else 0.0, e["instructions"], e["bytes"], e["flops"])
        return CallSummary(lat, engines, CORES[self.generation].name, self)

    def timeline(self) -> dict:
        t = self.program.timeline()
        t["source_op"] = [self.source_ops[s] if 0 <= s < len(self.source_ops) else "" for s in t["src"]]
        return t


_cache: Dict[tuple, LoadedModel] = {}
_cache_lock = threading.Lock()


def load(blob: torch.Tensor) -> LoadedModel:
    """The LoadedModel for an artifact tensor, loaded once per tensor (keyed by its storage and uid)."""
    key = (blob.data_ptr(), blob.numel(), artifact.read_uid(blob))
    m = _cache.get(key)
    if m is None:
        with _cache_lock:
            m = _cache.get(key)
            if m is None:
                m = LoadedModel(blob)
                _cache[key] = m
    return m
