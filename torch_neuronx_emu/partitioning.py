"""torch_neuronx's graph partitioner (trace(..., partitioner_config=PartitionerConfig(...)), neuron-api.md 2.7 and
the torch-neuronx graph partitioner app note) over the generic partitioner in neuron_emu/partitioner/.

    capture -> analyze report (analyze.model_operators: the model's TorchScript operators, e.g. aten::linear, and
    whether the emulated neuronx-cc compiles them) -> support threshold -> plan (runs of supported ops not in
    ops_to_partition = Neuron subgraphs, the rest CPU) -> subgraph count/size limits -> compile every Neuron
    subgraph -> TorchScript module (neuron::forward_v2 ops between CPU aten:: nodes)

A "subgraph" (partition) is a maximal run, in execution order, of operators on one device; CPU runs count too, as
in the app note (sort sandwiched between linears = 3 subgraphs). Placement is decided per captured dispatcher
operator (`aten::t`, `aten::addmm` for a linear layer); the log lines count TorchScript operators as analyze does:
each captured node is attributed to the TorchScript node whose lone run recorded it (`attribute`), so a partition
lists `aten::linear:3` and `min_subgraph_size` counts those operators. `ops_to_partition` matches that TorchScript
kind, the captured name, or the public name of a private overload (`aten::log_softmax` for `aten::_log_softmax`)."""
from __future__ import annotations

import collections
import difflib
import logging
import os

from neuron_emu.compiler import CompilationError, compile_graph
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.fold import fold_and_prune
from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.partitioner import Segment, module_from_plan, partition as plan_partition, segment_graph
from neuron_emu.tracing import _write_workdir
from torch_neuronx_emu.analyze import is_supported, model_operators, operators_report, write_report
from torch_neuronx_emu.partitioner_config import PartitionerConfig

logger = logging.getLogger("Neuron")


def public_names(name: str) -> set:
    """`aten::_log_softmax` -> {itself, `aten::log_softmax`}; `aten::view_copy` -> {itself, `aten::view`}."""
    names = {name}
    if name.startswith("aten::_"):
        names.add("aten::" + name[len("aten::_"):])
    names.update({n[:-len("_copy")] for n in list(names) if n.endswith("_copy")})
    return names


def device_runs(steps: list) -> list:
    """[(device, [nodes])]: a Segment is one Neuron subgraph; consecutive CPU nodes form one CPU subgraph."""
    runs = []
    for st in steps:
        if isinstance(st, Segment):
            runs.append(("NEURON", list(st.nodes)))
        elif runs and runs[-1][0] == "CPU":
            runs[-1][1].append(st)
        else:
            runs.append(("CPU", [st]))
    return runs


def attribute(nodes: list, ops: list) -> dict:
    """{id(captured node): index of the analyze operator it belongs to}. The whole model's capture runs the same
    dispatcher ops, in the same order, as the TorchScript nodes run one by one, so the two name sequences are
    aligned; a captured node the alignment leaves out belongs to the operator before it (or after, at the start)."""
    mine = [n.name for n in nodes]
    theirs, owner = [], []
    for k, op in enumerate(ops):
        theirs += op.dispatched
        owner += [k] * len(op.dispatched)
    found = {}
    for a, b, size in difflib.SequenceMatcher(None, mine, theirs, autojunk=False).get_matching_blocks():
        found.update((a + j, owner[b + j]) for j in range(size))
    if not found:
        return {}
    last, out = found[min(found)], {}
    for i, n in enumerate(nodes):
        last = found.get(i, last)
        out[id(n)] = last
    return out


def _log_and_check(plan, cfg: PartitionerConfig, owner: dict, ops: list) -> None:
    """The app note's partition lines (operators counted as analyze counts them), then the subgraph count and
    size limits."""
    runs = device_runs(plan.steps)
    logger.info("Num Partitions: %d", len(runs))
    sizes = []
    for i, (device, nodes) in enumerate(runs):
        logger.info("Creating Partition #%d for device: Device.%s", i + 1, device)
        logger.info("The following operators will be included in this partition:")
        members = {owner.get(id(n), n.name) for n in nodes}   # an operator index, or a name if unattributed
        kinds = collections.Counter(ops[m].kind if isinstance(m, int) else m for m in members)
        for name, c in sorted(kinds.items()):
            logger.info("%s:%d", name, c)
        sizes.append((len(members), sorted(kinds)))
    if cfg.max_subgraph_count != -1 and len(runs) > cfg.max_subgraph_count:
        raise ValueError(f"The partitioner has found {len(runs)} subgraphs which exceeds the specified max subgraph "
                         f"count of {cfg.max_subgraph_count}.")
    if cfg.min_subgraph_size != -1:
        small = [(i, runs[i][0], size, kinds) for i, (size, kinds) in enumerate(sizes)
                 if size < cfg.min_subgraph_size]
        if small:
            i, d, size, kinds = small[0]
            # ASSUMPTION: wording modelled on the documented max-count error
            raise ValueError(f"The partitioner has found a subgraph (partition #{i + 1}, Device.{d}, operators "
                             f"{kinds}) of size {size} which is smaller than the specified min "
                             f"subgraph size of {cfg.min_subgraph_size}.")


def _compiles(node, options, nodes, graph_outputs) -> bool:
    """Whether `node` alone (its used outputs) compiles: which operator of a failing subgraph to blame."""
    read = {a.id for n in nodes for a in n.value_args()} | {v.id for v in graph_outputs}
    ins = list({a.id: a for a in node.value_args() if a.kind != "const"}.values())
    seg = Segment([node], inputs=ins, outputs=[o for o in node.outputs if o.id in read])
    try:
        compile_graph(segment_graph(seg), options, generation=2)
    except CompilationError:
        return False
    return True


def partition(func, example_inputs, partitioner_config: PartitionerConfig):
    """Trace `func` as Neuron subgraphs with CPU operators between them (what trace does with a
    partitioner_config). ASSUMPTION: the SDK's `torch_neuronx.partition` signature is not documented; this one
    takes the config positionally."""
    from torch_neuronx_emu.trace import _normalize_inputs  # (trace imports this module)
    if not isinstance(partitioner_config, PartitionerConfig):
        raise TypeError(f"partitioner_config must be a torch_neuronx.PartitionerConfig, got "
                        f"{type(partitioner_config).__name__}")
    cfg = partitioner_config
    inputs = _normalize_inputs(example_inputs)
    graph = capture(func, inputs)[0]

    params = cfg.analyze_parameters
    ops = model_operators(func, inputs, graph)
    report = operators_report(ops, set(params.get("additional_ignored_ops", ())))
    write_report(report, params.get("compiler_workdir"))
    logger.info("The following operations are currently supported:")
    for name in report["supported_operators"]:
        logger.info("%s", name)
    logger.info("The following operations are currently not supported:")
    for u in report["unsupported_operators"]:
        logger.info("%s, %s", u["kind"], u["call"])
    n_sup = sum(report["supported_operators"].values())
    n_all = n_sup + len(report["unsupported_operators"])
    frac = n_sup / n_all if n_all else 1.0
    logger.info("%.2f%% of arithmetic operations (%d of %d) are supported", 100.0 * frac, n_sup, n_all)
    if frac < cfg.model_support_percentage_threshold:
        # ASSUMPTION: wording not documented (only that a ValueError is raised)
        raise ValueError(f"The model has {100.0 * frac:.2f}% supported operators ({n_sup} of {n_all}), which is below "
                         f"the specified model support percentage threshold of "
                         f"{100.0 * cfg.model_support_percentage_threshold:.2f}%.")

    forced = cfg.ops_to_partition
    owner = attribute(graph.nodes, ops)
    forced_ids = {id(n) for n in graph.nodes if (public_names(n.name) & forced)
                  or (id(n) in owner and ops[owner[id(n)]].kind in forced)}
    nodes = fold_and_prune(graph)
    kw = cfg.trace_kwargs or {}
    options = parse_compiler_args(kw.get("compiler_args"))
    workdir = kw.get("compiler_workdir")
    refused = set()  # ids of nodes whose configuration the compiler refused: they run on CPU
    while True:
        plan = plan_partition(nodes, graph.outputs, lambda n: id(n) not in refused and is_supported(n)
                              and id(n) not in forced_ids)
        _log_and_check(plan, cfg, owner, ops)
        neffs, failing = [], []
        for k, seg in enumerate(plan.segments):
            try:
                compiled = compile_graph(segment_graph(seg), options, generation=2)
            except CompilationError:
                failing = [n for n in seg.nodes if not _compiles(n, options, nodes, graph.outputs)]
                if not failing:
                    raise  # no single operator is to blame: a real compile failure
                break
            if workdir:  # one compiler workdir per Neuron subgraph
                _write_workdir(os.path.join(workdir, f"subgraph_{k}"), options, compiled.graph_text, compiled, "PASS")
            neffs.append(compiled.blob)
        if not failing:
            break
        for n in failing:  # as the SDK's support query of the compiler frontend would have said
            logger.warning("neuronx-cc cannot compile %s in this configuration (%s); it will run on CPU",
                           n.name, n.where)
        refused.update(id(n) for n in failing)
    if not plan.segments:
        logger.warning("No operator is placed on Neuron; returning a CPU trace")
    return module_from_plan(func, graph, plan, neffs, inputs)
