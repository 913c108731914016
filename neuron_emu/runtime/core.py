"""One emulated NeuronCore: its spec, the programs loaded on it (an LRU cache) and its counters.

A core is an instance, not a global: the Runtime (`runtime/placement.py`) owns one per NeuronCore of the
instance type. Each loaded model has its own native Program (own arena and scratch), so two cores share
no mutable state and execute truly in parallel; executions on one core are serialised by the Program's
mutex, as the real runtime serialises them per core."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Tuple

import numpy as np

from neuron_emu import _C
from neuron_emu.hardware import NeuronCoreSpec, core_spec
from neuron_emu.isa import ENGINE_NAMES

if TYPE_CHECKING:
    from neuron_emu.runtime.model import LoadedModel

# Layout of the stats vector Program.run returns: [latency_ns, then per engine STATS_FIELDS].
STATS_FIELDS: Tuple[str, ...] = tuple(_C.Program.STATS_FIELDS)
STATS_LEN = 1 + len(ENGINE_NAMES) * len(STATS_FIELDS)


def stat(st: np.ndarray, engine: int, field: str) -> float:
    return float(st[1 + engine * len(STATS_FIELDS) + STATS_FIELDS.index(field)])


@dataclass
class EngineSummary:
    busy_s: float
    utilization: float
    instructions: int
    bytes: int
    flops: int


def engine_summaries(st: np.ndarray, latency_s: float) -> Dict[str, EngineSummary]:
    out = {}
    for e, name in enumerate(ENGINE_NAMES):
        busy = stat(st, e, "busy_ns") * 1e-9
        out[name] = EngineSummary(busy, busy / latency_s if latency_s else 0.0, int(stat(st, e, "instructions")),
                                  int(stat(st, e, "bytes")), int(stat(st, e, "flops")))
    return out


@dataclass
class CoreCounters:
    """Accumulated since the core was created (or reset_counters): modelled device time plus host wall time."""
    core: int
    executions: int
    total_latency_s: float   # sum of modelled latencies
    last_latency_s: float
    host_s: float            # emulator wall time spent executing on this core
    engines: Dict[str, EngineSummary]   # busy time summed over executions; utilization = busy / total latency

    @property
    def mean_latency_s(self) -> float:
        return self.total_latency_s / self.executions if self.executions else 0.0


class NeuronCore:
    """An emulated NeuronCore of one generation. Thread-safe; counters and the model cache share a lock."""

    def __init__(self, index: int, spec: NeuronCoreSpec, max_models: int = 64, physical_index: int = -1):
        self.index = index   # as the process sees it: visible cores are numbered from 0 (NEURON_RT_VISIBLE_CORES)
        self.physical_index = index if physical_index < 0 else physical_index   # the core's number on the instance
        self.spec = spec
        self.generation = spec.generation
        self.native_spec = core_spec(spec.generation)   # the _C.CoreSpec every Program on this core runs with
        self.max_models = max_models
        # RLock: an artifact's release (weakref.finalize) may run from a garbage collection inside a locked section
        self._lock = threading.RLock()
        self._models: Dict[int, "LoadedModel"] = {}   # artifact key -> model
        # accumulated natively: the native forward op counts its executions there without the GIL
        self.native_counters = _C.CoreCounters()
        # held while a NeuronCore-Pipeline stage executes here: a core runs one stage at a time, so concurrent calls
        # of a pipeline model flow through its cores as a pipeline (torch_neuron_emu/pipeline.py)
        self.stage_lock = threading.Lock()

    def __repr__(self) -> str:
        phys = "" if self.physical_index == self.index else f" (instance core {self.physical_index})"
        return f"NeuronCore({self.index}{phys}, {self.spec.name}, {self.loaded_models} model(s) loaded)"

    @property
    def loaded_models(self) -> int:
        return len(self._models)

    def models(self) -> List["LoadedModel"]:
        with self._lock:
            return list(self._models.values())

    def counters(self) -> CoreCounters:
        acc, n, last, host = self.native_counters.snapshot()
        total = acc[0] * 1e-9
        return CoreCounters(self.index, n, total, last * 1e-9, host * 1e-9, engine_summaries(acc, total))

    @property
    def recent_latency_ns(self) -> List[float]:
        """Modelled latency of the most recent executions (up to 1024), oldest first (monitoring)."""
        return self.native_counters.recent()

    def reset_counters(self) -> None:
        self.native_counters.reset()

    # -- used by the runtime --------------------------------------------------------------------------------

    def cached(self, key: int):
        with self._lock:
            m = self._models.get(key)
            if m is not None:
                m.program.touch()
            return m

    def add(self, key: int, model: "LoadedModel") -> List[Tuple[int, "LoadedModel"]]:
        """Cache a model; returns the least recently used entries (by their programs' last run or load)
        evicted to stay within max_models."""
        with self._lock:
            self._models[key] = model
            model.program.touch()
            evicted = []
            while len(self._models) > self.max_models:
                k = min(self._models, key=lambda k: self._models[k].program.last_used)
                evicted.append((k, self._models.pop(k)))
            return evicted

    def remove(self, key: int) -> None:
        with self._lock:
            self._models.pop(key, None)
