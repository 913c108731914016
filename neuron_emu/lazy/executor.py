"""Sync: turn the pending values of some storages into device data. A mark_step first looks up the step's running
key (trace.py): a trace seen before runs its program at once, binding the device data it reads by position. Else
(and for partial syncs: `.item()`, print, `.cpu()`) the graph is walked and hashed (graph.py); a walk seen before
reuses its loaded program (CachedCompile), else the on-disk cache or the shared compiler (`compile_graph`) makes
the artifact (UncachedCompile, with the reason recorded), which the runtime loads on a NeuronCore and runs in one
native call. A graph the compiler rejects runs op by op on CPU, counted per op."""
from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from typing import List, Optional

import torch

from neuron_emu.compiler import CompilationError, compile_graph, graph_text
from neuron_emu.lazy import cache, device_queue, metrics, recompile, tensor, trace
from neuron_emu.lazy.graph import Walk
from neuron_emu.lazy.record import DeviceData, Ref
from neuron_emu.lazy.tensor import _CPU_VIEW

logger = logging.getLogger("Neuron")


class Entry:
    """A compiled graph: its artifact and the model loaded from it on each device's NeuronCore that ran it."""
    __slots__ = ("name", "blob", "models", "cpu_nodes")

    def __init__(self, name, blob, cpu_nodes=False):
        self.name, self.blob, self.models, self.cpu_nodes = name, blob, {}, cpu_nodes


class Binding:
    """What a trace key runs: the walked graph's entry, which trace inputs it reads (in its input order) and its
    size (TensorsGraphSize)."""
    __slots__ = ("entry", "inputs", "n_nodes")

    def __init__(self, entry: Entry, inputs: List[int], n_nodes: int):
        self.entry, self.inputs, self.n_nodes = entry, inputs, n_nodes


_entries: "OrderedDict[tuple, Entry]" = OrderedDict()
_MAX_ENTRIES = 2048   # torch_xla's XLA_COMPILATION_CACHE_SIZE default
_bindings: "OrderedDict[tuple, Binding]" = OrderedDict()
_MAX_BINDINGS = 256   # (a trace key holds a few integers per node: kept fewer)
last_graph: Optional[Walk] = None   # for tests and debugging


def _compile(walk: Walk, s: cache.Settings, cut: str) -> Entry:
    name = f"MODULE_{walk.hash}+{s.flags_hash}"
    rec = recompile.GraphRecord(name, [n.func._schema.name for n in walk.nodes], [n.where for n in walk.nodes],
                                [(d.shape, d.dtype) for d in walk.inputs], walk.input_user, cut)
    blob = cache.load(s, walk.hash)
    if blob is not None:
        metrics.counter_add("PersistentCacheHit")
        return Entry(name, blob)
    why = recompile.explain(rec)
    logger.info(f"{cache.WRAPPER}: Compile cache path: {s.cache_dir}")
    logger.info(f"{cache.WRAPPER}: Call compiler with cmd: ['neuronx-cc', '--target={s.options.target}', 'compile', "
                f"'--framework', 'XLA', '{name}.hlo', '--output', '{name}.neff'] ({why})")
    graph = walk.ir()
    with metrics.timed("CompileTime"):
        try:
            compiled = compile_graph(graph, s.options, generation=2)
        except CompilationError as e:
            ops = sorted({n.name for n in graph.nodes if n.name in str(e)}) or sorted({n.name for n in graph.nodes})
            warnings.warn(f"The emulated compiler cannot compile {name}; it runs op by op on CPU ({e})", stacklevel=4)
            for op in ops:
                metrics.counter_add(op)
            return Entry(name, None, cpu_nodes=True)
    logger.info("Compiler status PASS")
    cache.store(s, walk.hash, compiled.blob, compiled.graph_text)
    return Entry(name, compiled.blob)


def _run(entry: Entry, walk: Walk, dev: int) -> List[torch.Tensor]:
    inputs = [d.t for d in walk.inputs]
    if entry.cpu_nodes:
        with metrics.timed("ExecuteTime"):
            return _interpret(walk, inputs)
    return _execute(entry, inputs, dev)


def _execute(entry: Entry, inputs: List[torch.Tensor], dev: int) -> List[torch.Tensor]:
    """Run the graph on device `dev`'s NeuronCore (visible core `dev`)."""
    with metrics.timed("ExecuteTime"):
        model = entry.models.get(dev)
        if model is None or model._artifact() is not entry.blob:
            from neuron_emu.runtime.placement import runtime_for
            model = entry.models[dev] = runtime_for(2).load(entry.blob, core=dev, origin=entry.name)
        return model(inputs)


def _interpret(walk: Walk, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
    env = {id(d): t for d, t in zip(walk.inputs, inputs)}

    def get(a):
        if isinstance(a, DeviceData):
            return env[id(a)]
        if isinstance(a, Ref):
            return env[id(a.node)][a.idx]
        if isinstance(a, (list, tuple)):
            return type(a)(get(x) for x in a)
        return a
    for n in walk.nodes:
        out = _CPU_VIEW.get(n.func, n.func)(*get(n.args), **{k: get(v) for k, v in n.kwargs.items()})
        env[id(n)] = list(out) if isinstance(out, (list, tuple)) else [out]
    return [env[id(o.node)][o.idx].contiguous() for o in walk.outputs]


def _trace_key(tr: trace.Trace, pending, s: cache.Settings, dev: int) -> Optional[tuple]:
    """The step's running key with its outputs, or None when the trace was abandoned or an output predates it."""
    parts = tr.parts
    if parts is None:
        return None
    base = tr.base
    outs = []
    for st in pending:
        r = st.value
        d = r.node.pos - base
        if d < 0:
            return None
        outs.append(d << 32 | r.idx)
    return tuple(parts), tuple(outs), s.flags_hash, dev


def _write_back(pending, results: List[torch.Tensor]) -> None:
    """Each storage gets its value's result (storages sharing one value share one output)."""
    pos: dict = {}
    for st in pending:
        i = pos.get(id(st.value))
        if i is None:
            i = pos[id(st.value)] = len(pos)
        st.value = DeviceData(results[i])


def _submit(entry: Entry, pending, inputs: List[DeviceData], dev: int) -> None:
    """Run a loaded program on the device's worker thread: the storages get buffers it fills."""
    outs: List[DeviceData] = []
    pos: dict = {}
    for st in pending:
        r = st.value
        i = pos.get(id(r))
        if i is None:
            i = pos[id(r)] = len(outs)
            outs.append(DeviceData.later(r.shape, r.dtype))
        st.value = outs[i]

    def job():
        results = _execute(entry, [d.t for d in inputs], dev)
        for d, t in zip(outs, results):
            d.t = t
    device_queue.submit(job)


def sync_step(cut_where: str, wait: bool = True) -> int:
    """mark_step: materialise every live pending storage (with `wait=False`, a cached step runs asynchronously:
    device_queue.py). Returns the number of ops run (0: nothing pending)."""
    pending = tensor.pending_storages()
    if not pending:
        trace.reset()
        if wait:
            device_queue.wait()   # (the steps submitted before)
        return 0
    dev = pending[0].dev
    if any(st.dev != dev for st in pending):   # several devices: a graph each, found by walking
        n = 0
        for d in sorted({st.dev for st in pending}):
            n += sync([st for st in pending if st.dev == d], "mark_step", cut_where)
        tensor.forget_pending()
        trace.reset()
        return n
    tr = trace.current
    s = cache.settings()
    key = _trace_key(tr, pending, s, dev)
    b = _bindings.get(key) if key is not None else None
    if b is not None and not b.entry.cpu_nodes:   # (no LRU reordering: it would hash the long key again)
        metrics.counter_add("CachedCompile")
        metrics.metric_add("TensorsGraphSize", float(b.n_nodes))
        inputs = tr.inputs
        if wait:
            device_queue.wait()
            _write_back(pending, _execute(b.entry, [inputs[i].t for i in b.inputs], dev))
        else:
            _submit(b.entry, pending, [inputs[i] for i in b.inputs], dev)
        n = b.n_nodes
    else:
        n = sync(pending, "mark_step", cut_where, key)
    tensor.forget_pending()
    trace.reset()
    return n


def sync(storages, cut_kind: str, cut_where: str, trace_key: Optional[tuple] = None) -> int:
    """Materialise the pending values of `storages` by walking their graph. Returns the number of ops run.
    With `trace_key` (a mark_step whose trace missed), the walked graph's entry is bound to it."""
    global last_graph
    pending = sorted((s for s in storages if type(s.value) is Ref), key=lambda s: s.seq)
    if not pending:
        return 0
    dev = pending[0].dev   # (the storages of one sync are on one device: an op cannot mix devices)
    device_queue.wait()   # this sync runs on the main thread: the asynchronous steps before it finish first
    outs: List[Ref] = []
    pos = {}
    for s in pending:
        if id(s.value) not in pos:
            pos[id(s.value)] = len(outs)
            outs.append(s.value)
    walk = Walk(outs)
    last_graph = walk
    cut = f"{cut_kind} at {cut_where}"
    if cut_kind != "mark_step":
        recompile.graph_cuts.append(f"{cut} ({len(walk.nodes)} ops)")
    s = cache.settings()
    key = (walk.key, s.flags_hash)
    entry = _entries.get(key)
    if entry is not None:
        metrics.counter_add("CachedCompile")
        _entries.move_to_end(key)
    else:
        metrics.counter_add("UncachedCompile")
        entry = _entries[key] = _compile(walk, s, cut)
        if len(_entries) > _MAX_ENTRIES:
            _entries.popitem(last=False)
    if trace_key is not None:
        index = trace.current.index
        _bindings[trace_key] = Binding(entry, [index[id(d)] for d in walk.inputs], len(walk.nodes))
        if len(_bindings) > _MAX_BINDINGS:
            _bindings.popitem(last=False)
    metrics.metric_add("TensorsGraphSize", float(len(walk.nodes)))
    results = _run(entry, walk, dev)
    for st in pending:
        st.value = DeviceData(results[pos[id(st.value)]])
    if cut_kind != "mark_step" and not tensor.prune_pending():
        trace.reset()   # nothing recorded so far is pending any more
    return len(walk.nodes)


def clear_cache() -> None:
    """Forget the in-memory compile cache (the next sync of each graph goes to the disk cache or the compiler)."""
    _entries.clear()
    _bindings.clear()
