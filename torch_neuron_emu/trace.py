"""torch_neuron.trace for Inferentia1 (NeuronCore-v1): the whole graph is compiled for one
NeuronCore-v1 with neuron-cc's casting rules (`--fast-math`, default `all` = cast fp32 to bf16;
docs/reference/neuron-api.md section 1.9). Not yet emulated (ROADMAP item 4): the partitioner
with CPU fallback between `neuron::forward` subgraphs, and `--neuroncore-pipeline-cores`."""
from __future__ import annotations

import argparse
import shlex
import warnings

import torch

from neuron_emu.compiler.options import CompilerArgumentError, CompilerOptions
from neuron_emu.tracing import trace_and_compile

# --fast-math / --fp32-cast value -> (auto-cast mode, cast type) in our compiler's terms
_FAST_MATH = {"all": ("all", "bf16"), "fp32-cast-all": ("all", "bf16"), "fp32-cast-all-fp16": ("all", "fp16"),
              "none": ("matmult", "bf16"), "fp32-cast-matmult": ("matmult", "bf16"),
              "fp32-cast-matmult-bf16": ("matmult", "bf16"), "fp32-cast-matmult-fp16": ("matmult", "fp16")}
_FP32_CAST = {"all": "fp32-cast-all", "matmult": "fp32-cast-matmult", "matmult-fp16": "fp32-cast-matmult-fp16",
              "matmult-bf16": "fp32-cast-matmult-bf16", "all-fp16": "fp32-cast-all-fp16"}
_RELAYOUT = {"fast-relayout", "no-fast-relayout"}
# trace kwargs with no effect on a whole-graph compile (timeouts, torch.jit.trace options)
_ACCEPTED_KWARGS = ("compiler_timeout", "fallback", "verbose", "strict", "check_trace")
# partitioner / batching options of the real torch_neuron not emulated yet (ROADMAP item 4)
_NOT_EMULATED_KWARGS = ("subgraph_builder_function", "minimum_segment_size", "single_fusion_ratio_threshold",
                        "dynamic_batch_size", "optimizations", "separate_weights")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CompilerArgumentError(f"neuron-cc: error: {message}")


def parse_neuron_cc_args(compiler_args) -> CompilerOptions:
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
    for v in ns.fast_math or []:
        if v in _RELAYOUT:
            continue
        if v not in _FAST_MATH:
            raise CompilerArgumentError(f"neuron-cc: error: argument --fast-math: invalid choice: {v!r}")
        mode = v
    if ns.fp32_cast:  # --fp32-cast has priority over --fast-math
        mode = _FP32_CAST[ns.fp32_cast]
    if ns.neuroncore_pipeline_cores not in (None, 1):
        raise NotImplementedError("--neuroncore-pipeline-cores > 1 is not emulated yet by neuron-emu")
    auto_cast, cast_type = _FAST_MATH[mode]
    return CompilerOptions(target="inf1", auto_cast=auto_cast, auto_cast_type=cast_type, argv=argv)


def trace(model, example_inputs, **kwargs):
    """Compile `model` for an emulated Inferentia1 NeuronCore-v1; returns a ScriptModule."""
    compiler_args = kwargs.pop("compiler_args", None)
    compiler_workdir = kwargs.pop("compiler_workdir", None)
    for k in _ACCEPTED_KWARGS:
        kwargs.pop(k, None)
    for k in _NOT_EMULATED_KWARGS:
        if kwargs.pop(k, None) is not None:
            warnings.warn(f"torch_neuron_emu: `{k}` is not emulated yet and is ignored", UserWarning, stacklevel=2)
    if kwargs:
        warnings.warn(f"Unexpected keyword arguments: {list(kwargs)}", UserWarning, stacklevel=2)
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    return trace_and_compile(model, inputs, parse_neuron_cc_args(compiler_args), generation=1,
                             compiler_workdir=compiler_workdir)
