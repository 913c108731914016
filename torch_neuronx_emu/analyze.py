"""torch_neuronx.analyze (neuron-api.md 2.6): which operators of a model the (emulated) Neuron compiler supports,
without producing a model.

The model runs once on the example inputs under capture (compiler/capture.py), the front end trace uses, and
every recorded operator is looked up in the lowering table the compiler uses, so an operator is reported
supported exactly when `trace` would compile it. Operators are the ATen operators the dispatcher ran (e.g.
`aten::addmm` for a linear layer), the granularity the emulated compiler works at; the SDK reports TorchScript
nodes (`aten::linear`). An operator whose inputs are all constants is counted too (the compiler would fold it)."""
import json
import os
import shutil
from typing import Any, Dict, Set

import torch

import neuron_emu
from neuron_emu.compiler import graph_text
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.lowering import lookup
from neuron_emu.compiler.options import EMULATED_NEURONX_CC_VERSION
from neuron_emu.compiler.rejected import rejection
from torch_neuronx_emu.trace import _normalize_inputs

__all__ = ["analyze"]

# ASSUMPTION: the SDK's value is "<torch version>.<torch-neuronx release>"; the emulator puts its own release there
TORCH_NEURONX_VERSION = f"{torch.__version__.split('+')[0]}.{neuron_emu.__version__}"
REPORT_FILE = "analyze.json"


def is_supported(node) -> bool:
    """Whether the emulated neuronx-cc compiles `node`: it has a lowering, the real compiler does not reject it
    (compiler/rejected.py) and no tensor it touches is complex. (PartitionerConfig places nodes by this too.)"""
    if lookup(node.target) is None or rejection(node.name):
        return False
    return not any(v.dtype.is_complex for v in node.value_args() + node.outputs)


def analyze(func, example_inputs, compiler_workdir=None, *, additional_ignored_ops: Set[str] = set(),
            max_workers: int = 4, is_hf_transformers: bool = False, cleanup: bool = False) -> Dict[str, Any]:
    """Report operator support for `func(*example_inputs)`: {"torch_neuronx_version", "neuronx_cc_version",
    "support_percentage", "supported_operators": {op: count}, "unsupported_operators": [{"kind", "failureAt",
    "call", "opGraph"}]}. `additional_ignored_ops` ("aten::<op>") are left out of the counts. With
    `compiler_workdir` the report is also written there (analyze.json); `cleanup=True` removes the directory
    afterwards. `max_workers` and `is_hf_transformers` are accepted for compatibility (the analysis is one
    capture; Hugging Face outputs are handled by capture)."""
    if not isinstance(additional_ignored_ops, (set, frozenset, list, tuple)) or not all(
            isinstance(o, str) for o in additional_ignored_ops):
        raise TypeError("additional_ignored_ops must be a set of operator names such as 'aten::sort'")
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a positive integer, got {max_workers!r}")
    graph, _ = capture(func, _normalize_inputs(example_inputs))
    report = graph_report(graph, set(additional_ignored_ops))
    write_report(report, compiler_workdir, cleanup)
    return report


def graph_report(graph, ignored: Set[str]) -> Dict[str, Any]:
    """The analyze report for a captured graph (ops named in `ignored` left out of the counts)."""
    supported: Dict[str, int] = {}
    unsupported = []
    for n in graph.nodes:
        if n.name in ignored:
            continue
        if is_supported(n):
            supported[n.name] = supported.get(n.name, 0) + 1
        else:
            unsupported.append({"kind": n.name, "failureAt": "neuronx-cc", "call": n.where,
                                "opGraph": graph_text(graph, [n])})
    total = sum(supported.values()) + len(unsupported)
    return {
        "torch_neuronx_version": TORCH_NEURONX_VERSION,
        "neuronx_cc_version": EMULATED_NEURONX_CC_VERSION,
        "support_percentage": f"{100.0 * sum(supported.values()) / total if total else 100.0:.2f}%",
        "supported_operators": dict(sorted(supported.items())),
        "unsupported_operators": unsupported,
    }


def write_report(report: Dict[str, Any], compiler_workdir, cleanup: bool = False) -> None:
    if compiler_workdir:
        os.makedirs(compiler_workdir, exist_ok=True)
        with open(os.path.join(compiler_workdir, REPORT_FILE), "w") as f:
            json.dump(report, f, indent=2)
        if cleanup:
            shutil.rmtree(compiler_workdir, ignore_errors=True)
