"""The runtime: the set of emulated NeuronCores of an instance type, placement of models on them, and the
cache of loaded programs keyed by (artifact, core).

Placement: `neuron::forward_v2` loads an artifact on the least-used core (fewest models loaded) at its first
call and remembers it for that artifact tensor; `load(blob, core=i)` places it explicitly, so one artifact can
live on several cores and run on them concurrently. A core keeps at most NEURON_NUM_RECENT_MODELS_TO_KEEP
models (default 64, least recently used evicted); every model of an artifact is released when the artifact
tensor (a traced module's `neff` buffer) is garbage collected."""
from __future__ import annotations

import os
import threading
import weakref
from typing import Dict, List, Optional

import torch

from neuron_emu.compiler import artifact
from neuron_emu.hardware import INSTANCES, Instance
from neuron_emu.runtime.core import NeuronCore
from neuron_emu.runtime.model import LoadedModel

DEFAULT_INSTANCE_TYPE = "inf2.xlarge"
# With NEURON_EMU_INSTANCE_TYPE unset, a process may run both SDKs' artifacts (as examples/demo.py does):
# each generation then gets the smallest instance of its own kind.
DEFAULT_INSTANCE_FOR_GENERATION = {2: "inf2.xlarge", 1: "inf1.xlarge"}
DEFAULT_MODELS_TO_KEEP = 64


class Runtime:
    """The NeuronCores of one instance type (2 per Inferentia2/Trainium chip, 4 per Inferentia chip)."""

    def __init__(self, instance_type: str = DEFAULT_INSTANCE_TYPE, models_to_keep: Optional[int] = None):
        inst: Optional[Instance] = INSTANCES.get(instance_type)
        if inst is None:
            raise ValueError(f"Unknown instance type {instance_type!r} (NEURON_EMU_INSTANCE_TYPE); valid instance "
                             f"types: {', '.join(sorted(INSTANCES))}")
        if models_to_keep is None:
            models_to_keep = int(os.environ.get("NEURON_NUM_RECENT_MODELS_TO_KEEP", DEFAULT_MODELS_TO_KEEP))
        if models_to_keep < 1:
            raise ValueError(f"NEURON_NUM_RECENT_MODELS_TO_KEEP must be >= 1, got {models_to_keep}")
        self.instance = inst
        self.cores: List[NeuronCore] = [NeuronCore(i, inst.chip.core, models_to_keep)
                                        for i in range(inst.neuron_cores)]
        self._lock = threading.RLock()
        _all_runtimes.add(self)

    def __repr__(self) -> str:
        return f"Runtime({self.instance.name}: {len(self.cores)} x {self.instance.chip.core.name})"

    @property
    def generation(self) -> int:
        return self.instance.chip.core.generation

    def core(self, index: int) -> NeuronCore:
        if not 0 <= index < len(self.cores):
            raise IndexError(f"NeuronCore {index} does not exist: {self.instance.name} has {len(self.cores)} "
                             f"NeuronCores (0..{len(self.cores) - 1})")
        return self.cores[index]

    def least_used(self) -> NeuronCore:
        """The core with the fewest models loaded (lowest index on ties)."""
        return min(self.cores, key=lambda c: (c.loaded_models, c.index))

    def load(self, blob: torch.Tensor, core: Optional[int] = None, origin: str = "model") -> LoadedModel:
        """The artifact's LoadedModel on core `core` (default: the least-used core), loaded once per (artifact,
        core) and kept until the artifact tensor is garbage collected or evicted as least recently used."""
        key = id(blob)
        with self._lock:
            c = self.least_used() if core is None else self.core(core)
            m = c.cached(key)
            if m is not None and m._artifact() is blob:
                return m
            m = LoadedModel(blob, origin, c)
            m.key = key
            m._artifact = weakref.ref(blob)
            _watch(blob)
            for k, old in c.add(key, m):
                if _placed.get(k) is old:
                    _placed.pop(k, None)
            return m

    def release(self, key: int) -> None:
        """Drop every model of one artifact (by key) from this runtime's cores."""
        for c in self.cores:
            c.remove(key)


_all_runtimes: "weakref.WeakSet[Runtime]" = weakref.WeakSet()   # every Runtime, for releasing artifacts
_runtimes: Dict[str, Runtime] = {}
_runtimes_lock = threading.RLock()


def runtime(instance_type: Optional[str] = None) -> Runtime:
    """The process's Runtime for an instance type (default: NEURON_EMU_INSTANCE_TYPE, else inf2.xlarge)."""
    name = instance_type or os.environ.get("NEURON_EMU_INSTANCE_TYPE") or DEFAULT_INSTANCE_TYPE
    rt = _runtimes.get(name)
    if rt is None:
        with _runtimes_lock:
            rt = _runtimes.get(name)
            if rt is None:
                rt = _runtimes[name] = Runtime(name)
    return rt


def runtime_for(generation: int) -> Runtime:
    """The Runtime that runs artifacts of a NeuronCore generation: NEURON_EMU_INSTANCE_TYPE's when set (a
    mismatch is reported at load), else the default instance of that generation."""
    if os.environ.get("NEURON_EMU_INSTANCE_TYPE"):
        return runtime()
    return runtime(DEFAULT_INSTANCE_FOR_GENERATION.get(generation, DEFAULT_INSTANCE_TYPE))


def _generation(blob: torch.Tensor) -> int:
    header, _ = artifact.deserialize(blob)
    return int(header.get("core_generation", 2))


def load(blob: torch.Tensor, core: Optional[int] = None) -> LoadedModel:
    """Load an artifact tensor on NeuronCore `core` of the runtime for its generation (default: least used)."""
    return runtime_for(_generation(blob)).load(blob, core)


# -- implicit placement (neuron::forward_v2) and release -------------------------------------------------------

_placed: Dict[int, LoadedModel] = {}     # id(artifact tensor) -> model placed at its first call
_watched: Dict[int, weakref.finalize] = {}


def model_for(blob: torch.Tensor) -> LoadedModel:
    """The model forward_v2 runs for an artifact tensor: placed on the least-used core at the first call."""
    m = _placed.get(id(blob))
    if m is not None and m._artifact() is blob:
        return m
    rt = runtime_for(_generation(blob))
    with rt._lock:
        m = _placed.get(id(blob))
        if m is None or m._artifact() is not blob:
            m = rt.load(blob)
            _placed[id(blob)] = m
    return m


def _watch(blob: torch.Tensor) -> None:
    key = id(blob)
    f = _watched.get(key)
    if f is None or not f.alive:
        _watched[key] = weakref.finalize(blob, _release, key)


def _release(key: int) -> None:
    """The artifact tensor is being freed: drop its models from every core and from placement."""
    _watched.pop(key, None)
    _placed.pop(key, None)
    for rt in list(_all_runtimes):
        rt.release(key)
