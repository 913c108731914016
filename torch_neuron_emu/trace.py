"""torch_neuron.trace for Inferentia1 (NeuronCore-v1): neuron-cc's flags (`--fast-math`, default `all` = cast fp32
to bf16; `--neuroncore-pipeline-cores`; docs/reference/neuron-api.md section 1.9) and the documented kwargs (1.1);
the partitioning is partition.py's, `optimizations` optimizations.py's, `dynamic_batch_size` dynamic_batch.py's."""
from __future__ import annotations

import argparse
import shlex
import warnings

import torch

from neuron_emu.compiler.options import CompilerArgumentError, CompilerOptions
from neuron_emu.tracing import _write_workdir
from torch_neuron_emu import dynamic_batch
from torch_neuron_emu.model_size import check_model_size
from torch_neuron_emu.optimizations import parse_optimizations
from torch_neuron_emu.partition import trace_partitioned

# --fast-math / --fp32-cast value -> (auto-cast mode, cast type) in our compiler's terms
_FAST_MATH = {"all": ("all", "bf16"), "fp32-cast-all": ("all", "bf16"), "fp32-cast-all-fp16": ("all", "fp16"),
              "none": ("matmult", "bf16"), "fp32-cast-matmult": ("matmult", "bf16"),
              "fp32-cast-matmult-bf16": ("matmult", "bf16"), "fp32-cast-matmult-fp16": ("matmult", "fp16")}
_FP32_CAST = {"all": "fp32-cast-all", "matmult": "fp32-cast-matmult", "matmult-fp16": "fp32-cast-matmult-fp16",
              "matmult-bf16": "fp32-cast-matmult-bf16", "all-fp16": "fp32-cast-all-fp16"}
_RELAYOUT = {"fast-relayout", "no-fast-relayout"}
# trace kwargs with no effect on the emulated compile (timeouts, verbosity)
_ACCEPTED_KWARGS = ("compiler_timeout", "verbose", "skip_compiler")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CompilerArgumentError(f"neuron-cc: error: {message}")


def parse_neuron_cc_args(compiler_args) -> CompilerOptions:
    return parse_with_pipeline(compiler_args)[0]


def parse_with_pipeline(compiler_args):
    """(CompilerOptions, --neuroncore-pipeline-cores) from neuron-cc's arguments."""
    argv = shlex.split(compiler_args) if isinstance(compiler_args, str) else [str(a) for a in (compiler_args or [])]
    p = _Parser(prog="neuron-cc compile", add_help=False, allow_abbrev=False)
    p.add_argument("--fast-math", nargs="+")
    p.add_argument("--fp32-cast", choices=sorted(_FP32_CAST))
    p.add_argument("--neuroncore-pipeline-cores", type=int)
    p.add_argument("--verbose")
    p.add_argument("--enable-saturate-infinity", action="store_true")
    p.add_argument("--enable-fast-loading-neuron-binaries", action="store_true")
    p.add_argument("--enable-fast-context-switch", action="store_true")
    ns, unknown = p.parse_known_args(argv)
    if unknown:
        raise CompilerArgumentError(f"neuron-cc: error: unrecognized arguments: {' '.join(unknown)}")
    mode = "all"
    values = [t for v in ns.fast_math or [] for t in v.split()]
    if "all" in values and "none" in values:
        raise CompilerArgumentError("neuron-cc: error: argument --fast-math: 'all' and 'none' are mutually exclusive")
    for v in values:
        if v in _RELAYOUT:
            continue
        if v not in _FAST_MATH:
            raise CompilerArgumentError(f"neuron-cc: error: argument --fast-math: invalid choice: {v!r}")
        mode = v
    if ns.fp32_cast:  # --fp32-cast has priority over --fast-math
        mode = _FP32_CAST[ns.fp32_cast]
    cores = 1 if ns.neuroncore_pipeline_cores is None else ns.neuroncore_pipeline_cores
    if cores < 1:
        raise CompilerArgumentError(f"neuron-cc: error: argument --neuroncore-pipeline-cores: invalid value {cores}: "
                                    "the pipeline needs at least 1 NeuronCore")
    auto_cast, cast_type = _FAST_MATH[mode]
    return CompilerOptions(target="inf1", auto_cast=auto_cast, auto_cast_type=cast_type, argv=argv), cores


def trace(model, example_inputs, **kwargs):
    """Compile `model` for an emulated Inferentia1: the operators neuron-cc supports are fused into subgraphs
    compiled for NeuronCore-v1 (`neuron::forward_1` ops), the rest stay `aten::` ops run on CPU. Returns a
    ScriptModule. Keyword arguments as docs/reference/neuron-api.md 1.1; the rest go to torch.jit.trace."""
    compiler_args = kwargs.pop("compiler_args", None)
    compiler_workdir = kwargs.pop("compiler_workdir", None)
    part = dict(subgraph_builder_function=kwargs.pop("subgraph_builder_function", None),
                minimum_segment_size=kwargs.pop("minimum_segment_size", 2),
                single_fusion_ratio_threshold=kwargs.pop("single_fusion_ratio_threshold", 0.6),
                fallback=kwargs.pop("fallback", True))
    separate_weights = kwargs.pop("separate_weights", False)
    dynamic_batch_size = kwargs.pop("dynamic_batch_size", False)
    for k in _ACCEPTED_KWARGS:
        kwargs.pop(k, None)
    fp16_io = parse_optimizations(kwargs.pop("optimizations", None))
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    options, pipeline_cores = parse_with_pipeline(compiler_args)
    if pipeline_cores > 1:
        from neuron_emu.runtime.placement import runtime_for
        visible = len(runtime_for(1).cores)
        if pipeline_cores > visible:
            raise CompilerArgumentError(
                f"--neuroncore-pipeline-cores {pipeline_cores}: only {visible} NeuronCores are visible to this "
                f"process (instance {runtime_for(1).instance.name}, NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES)")
    if isinstance(model, torch.nn.Module) and model.training:
        warnings.warn("The model is in training mode; Neuron traces are for inference: call model.eval() first",
                      UserWarning, stacklevel=2)

    def on_compiled(seg, compiled):
        check_model_size(compiled, separate_weights)  # per subgraph (per pipeline stage: each core's own slice)
        if compiler_workdir:
            _write_workdir(compiler_workdir, options, compiled.graph_text, compiled, "PASS")

    header = dynamic_batch.header_fields(inputs) if dynamic_batch_size else None
    traced = trace_partitioned(model, inputs, options, generation=1, trace_kwargs=kwargs, compile_hook=on_compiled,
                               pipeline_cores=pipeline_cores, fp16_io=fp16_io, header=header, **part)
    if dynamic_batch_size:
        if not _has_neuron_graph(traced):
            warnings.warn("torch_neuron_emu: no operator is placed on Neuron, so dynamic_batch_size has no effect: "
                          "the CPU trace keeps its traced shapes", UserWarning, stacklevel=2)
        dynamic_batch.install(traced)
    return traced


def _has_neuron_graph(traced) -> bool:
    return any(n.rsplit(".", 1)[-1] == "neff" for n, _ in traced.named_buffers())

