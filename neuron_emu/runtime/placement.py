"""The runtime: the set of emulated NeuronCores of an instance type, placement of models on them, and the
cache of loaded programs keyed by (artifact, core).

Placement: `neuron::forward_v2` loads an artifact on the least-used core (fewest models loaded) at its first
call and remembers it for that artifact tensor; `load(blob, core=i)` places it explicitly, so one artifact can
live on several cores and run on them concurrently. A core keeps at most NEURON_NUM_RECENT_MODELS_TO_KEEP
models (default 64, least recently used evicted); every model of an artifact is released when the artifact
tensor (a traced module's `neff` buffer) is garbage collected.

Visible cores: a Runtime owns the instance's cores narrowed by NEURON_RT_VISIBLE_CORES (`1`, `1-3`, `0,2`) or
NEURON_RT_NUM_CORES (the first N; 0 = all), read when it is created, and numbers them from 0 as the real runtime
does. Explicit placement (`place`: torch_neuronx's set_neuron_cores / DataParallel) replaces an artifact's
single model by a `Deployment`: copies on several cores used round robin, or on the core a thread pinned
(`pinned`), optionally with dynamic batching (`runtime/batching.py`)."""
from __future__ import annotations

import contextlib
import itertools
import os
import threading
import weakref
from typing import Dict, Iterator, List, Optional, Sequence, Union

import torch

from neuron_emu.compiler import artifact
from neuron_emu.hardware import INSTANCES, Instance
from neuron_emu.runtime import groups
from neuron_emu.runtime.core import NeuronCore
from neuron_emu.runtime.model import LoadedModel
from neuron_emu.runtime import native_placement as native
from neuron_emu.runtime import origins

DEFAULT_INSTANCE_TYPE = "inf2.xlarge"
# With NEURON_EMU_INSTANCE_TYPE unset, a process may run both SDKs' artifacts (as examples/demo.py does):
# each generation then gets the smallest instance of its own kind.
DEFAULT_INSTANCE_FOR_GENERATION = {2: "inf2.xlarge", 1: "inf1.xlarge"}
DEFAULT_MODELS_TO_KEEP = 64


def _init_error(what: str) -> RuntimeError:
    # torch_neuronx's text when the runtime fails to start (aws-neuron-samples#44), with the reason appended
    return RuntimeError(f"Neuron runtime cannot be initialized; cannot determine the number of available "
                        f"NeuronCores: {what}")


def visible_cores(inst: Instance, visible: Optional[str] = None, num: Optional[str] = None) -> List[int]:
    """The instance cores a process owns: NEURON_RT_VISIBLE_CORES (a core, a range `a-b`, or a comma-separated
    list of both, Runtime 2.16+) or else NEURON_RT_NUM_CORES (the first N, 0 = all), else all of them.
    ASSUMPTION: with both set, NEURON_RT_VISIBLE_CORES wins (it names exact cores)."""
    total = inst.neuron_cores
    rng = f"{inst.name} has NeuronCores 0-{total - 1}"
    if visible is not None and visible.strip():
        cores: List[int] = []
        for part in visible.split(","):
            lo, sep, hi = part.strip().partition("-")
            try:
                a, b = int(lo), int(hi) if sep else int(lo)
            except ValueError:
                raise _init_error(f"NEURON_RT_VISIBLE_CORES={visible!r} is not a NeuronCore index, a range like "
                                  f"'1-3' or a comma-separated list of them ({rng})") from None
            if a < 0 or b < a:
                raise _init_error(f"NEURON_RT_VISIBLE_CORES={visible!r}: {part.strip()!r} is not a valid range "
                                  f"({rng})")
            if b >= total:
                raise _init_error(f"NEURON_RT_VISIBLE_CORES={visible!r} asks for NeuronCore {b} but {rng}")
            for c in range(a, b + 1):
                if c in cores:
                    raise _init_error(f"NEURON_RT_VISIBLE_CORES={visible!r} names NeuronCore {c} twice ({rng})")
                cores.append(c)
        return sorted(cores)
    if num is not None and num.strip():
        try:
            n = int(num)
        except ValueError:
            n = -1
        if not 0 <= n <= total:
            raise _init_error(f"NEURON_RT_NUM_CORES={num!r} must be 0 (all) or 1-{total}: {rng}")
        if n:
            return list(range(n))
    return list(range(total))


class Runtime:
    """The NeuronCores of one instance type (2 per Inferentia2/Trainium chip, 4 per Inferentia chip) that this
    process owns (NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES), numbered from 0."""

    def __init__(self, instance_type: str = DEFAULT_INSTANCE_TYPE, models_to_keep: Optional[int] = None,
                 visible: Optional[str] = None, num_cores: Optional[str] = None):
        inst: Optional[Instance] = INSTANCES.get(instance_type)
        if inst is None:
            raise ValueError(f"Unknown instance type {instance_type!r} (NEURON_EMU_INSTANCE_TYPE); valid instance "
                             f"types: {', '.join(sorted(INSTANCES))}")
        if models_to_keep is None:
            models_to_keep = int(os.environ.get("NEURON_NUM_RECENT_MODELS_TO_KEEP", DEFAULT_MODELS_TO_KEEP))
        if models_to_keep < 1:
            raise ValueError(f"NEURON_NUM_RECENT_MODELS_TO_KEEP must be >= 1, got {models_to_keep}")
        if visible is None and num_cores is None:
            visible, num_cores = os.environ.get("NEURON_RT_VISIBLE_CORES"), os.environ.get("NEURON_RT_NUM_CORES")
        self.instance = inst
        self.visible = visible_cores(inst, visible, num_cores)   # instance core of each visible core
        self.cores: List[NeuronCore] = [NeuronCore(i, inst.chip.core, models_to_keep, phys)
                                        for i, phys in enumerate(self.visible)]
        self._lock = threading.RLock()
        _all_runtimes.add(self)

    def __repr__(self) -> str:
        return f"Runtime({self.instance.name}: {len(self.cores)} x {self.instance.chip.core.name})"

    @property
    def generation(self) -> int:
        return self.instance.chip.core.generation

    def core(self, index: int) -> NeuronCore:
        if not 0 <= index < len(self.cores):
            n = len(self.cores)
            which = "NeuronCores" if n == self.instance.neuron_cores else "visible NeuronCores"
            raise IndexError(f"NeuronCore {index} does not exist: {self.instance.name} has {n} {which} "
                             f"(0..{n - 1})")
        return self.cores[index]

    def least_used(self) -> NeuronCore:
        """The core with the fewest models loaded (lowest index on ties)."""
        return min(self.cores, key=lambda c: (c.loaded_models, c.index))

    def load(self, blob: torch.Tensor, core: Optional[int] = None, origin: Optional[str] = None) -> LoadedModel:
        """The artifact's LoadedModel on core `core` (default: the least-used core), loaded once per (artifact,
        core) and kept until the artifact tensor is garbage collected or evicted as least recently used."""
        key = id(blob)
        with self._lock:
            c = self.least_used() if core is None else self.core(core)
            m = c.cached(key)
            if m is not None and m._artifact() is blob:
                return m
            m = LoadedModel(blob, origin or origins.origin(blob), c)
            m.key = key
            m._artifact = weakref.ref(blob)
            _watch(blob)
            for k, old in c.add(key, m):
                if _placed.get(k) is old:   # (a Deployment keeps its copies, evicted or not)
                    _placed.pop(k, None)
                    native.forget(k)
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
    header, _ = artifact.deserialize(blob, origins.origin(blob))
    return int(header.get("core_generation", 2))


def load(blob: torch.Tensor, core: Optional[int] = None) -> LoadedModel:
    """Load an artifact tensor on NeuronCore `core` of the runtime for its generation (default: least used)."""
    return runtime_for(_generation(blob)).load(blob, core)


# -- implicit placement (neuron::forward_v2) and release -------------------------------------------------------

_placed: Dict[int, LoadedModel] = {}     # id(artifact tensor) -> model placed at its first call
_watched: Dict[int, weakref.finalize] = {}


def _pipeline_stage(blob: torch.Tensor) -> Optional[int]:
    """A NeuronCore-Pipeline stage (torch_neuron_emu/pipeline.py) runs on the visible core of its index."""
    stage = artifact.deserialize(blob)[0].get("pipeline_stage")
    if stage is not None and (not isinstance(stage, int) or isinstance(stage, bool) or stage < 0):
        raise artifact.ArtifactError(f"model: header field pipeline_stage {stage!r} is not a core index")
    return stage


def _model_key(blob: torch.Tensor):
    """One key for all stages of a pipeline model (`pipeline_model` in the header), else the artifact's uid."""
    m = artifact.deserialize(blob)[0].get("pipeline_model")
    return m if isinstance(m, str) else artifact.read_uid(blob)


def model_for(blob: torch.Tensor) -> LoadedModel:
    """The model forward_v2 runs for an artifact tensor: placed on the least-used core at the first call (a
    pipeline stage: on the core of its stage index)."""
    m = _placed.get(id(blob))
    if m is not None and m._artifact() is blob:
        return m
    rt = runtime_for(_generation(blob))
    with rt._lock:
        m = _placed.get(id(blob))
        if m is None or m._artifact() is not blob:
            stage = _pipeline_stage(blob)
            grouped = groups.core_for(rt, _model_key(blob), stage or 0) if rt.generation == 1 else None  # Inf1 only
            m = rt.load(blob, grouped if grouped is not None else stage)
            _placed[id(blob)] = m
            native.place(blob, [m])
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
    native.forget(key)
    for rt in list(_all_runtimes):
        rt.release(key)


# -- explicit placement: replicas, pinned threads, dynamic batching ---------------------------------------------

_pin = threading.local()


@contextlib.contextmanager
def pinned(core: int) -> Iterator[None]:
    """Within the block, this thread's executions of a Deployment run on its copy on NeuronCore `core` (how
    DataParallel sends each chunk to its core)."""
    prev = getattr(_pin, "core", None)
    _pin.core = core
    native.pin(core)
    try:
        yield
    finally:
        _pin.core = prev
        native.pin(prev)


class Deployment:
    """How forward_v2 runs an artifact placed explicitly: one copy per core, executions round robin (or on the
    core the calling thread pinned), optionally dynamic batching. Stands in `_placed` where a LoadedModel would."""

    def __init__(self, blob: torch.Tensor, rt: Runtime, models: Sequence[LoadedModel], dynamic: bool = False):
        self._artifact = weakref.ref(blob)
        self.runtime = rt
        self.models = list(models)
        self.dynamic = dynamic
        self._next = itertools.count()   # next() is atomic under the GIL

    def __repr__(self) -> str:
        cores = ",".join(str(m.core.index) for m in self.models)
        return f"Deployment(NeuronCores [{cores}]{', dynamic batching' if self.dynamic else ''})"

    @property
    def cores(self) -> List[int]:
        return [m.core.index for m in self.models]

    def pick(self) -> LoadedModel:
        pin = getattr(_pin, "core", None)
        if pin is not None:
            for m in self.models:
                if m.core.index == pin:
                    return m
            blob = self._artifact()
            if blob is not None:   # pinned to a core outside this placement: load a copy there
                return self.runtime.load(blob, core=pin)
        return self.models[next(self._next) % len(self.models)]

    def __call__(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        if self.dynamic:
            from neuron_emu.runtime.batching import run_dynamic
            if len(self.models) > 1 and getattr(_pin, "core", None) is None:
                return run_dynamic(self.models, inputs, next(self._next))   # chunks spread over the copies
            return run_dynamic([self.pick()], inputs)
        return self.pick()(inputs)


def current(blob: torch.Tensor) -> Union[LoadedModel, Deployment, None]:
    """What forward_v2 runs for an artifact tensor now (None before its first call)."""
    m = _placed.get(id(blob))
    return m if m is not None and m._artifact() is blob else None


def place(blob: torch.Tensor, cores: Optional[Sequence[int]] = None, dynamic: Optional[bool] = None) -> Deployment:
    """Place an artifact explicitly: a copy on each of `cores` (visible indices; None keeps the cores it runs on
    now, or the least-used core), dynamic batching on/off (None keeps the current setting)."""
    rt = runtime_for(_generation(blob))
    with rt._lock:
        now = current(blob)
        if cores is None:
            cores = now.cores if isinstance(now, Deployment) else [(now.core if now else rt.least_used()).index]
        if dynamic is None:
            dynamic = isinstance(now, Deployment) and now.dynamic
        d = Deployment(blob, rt, [rt.load(blob, core=c) for c in cores], dynamic)
        _placed[id(blob)] = d
        native.place(blob, d.models, dynamic)
        return d
