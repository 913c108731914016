"""Shared tracing path of torch_neuron_emu and torch_neuronx_emu: capture -> compile_graph -> wrap_artifact,
a TorchScript module whose forward calls `neuron::forward_v2` with the artifact as a buffer.

NeuronModule stays in this module: its qualified name is recorded in every saved trace."""
from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any, Union

import torch
from torch.utils import _pytree as pytree

import neuron_emu.runtime  # noqa: F401  (registers neuron::forward_v2)
from neuron_emu.compiler import CompilationError, Compiled, compile_graph
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.options import CompilerOptions
from neuron_emu.progress import compile_progress

logger = logging.getLogger("Neuron")


class NeuronModule(torch.nn.Module):
    """What torch.jit.trace records: flatten inputs, run the compiled program, rebuild the outputs."""

    def __init__(self, neff: torch.Tensor, out_spec: Any):
        super().__init__()
        self.register_buffer("neff", neff, persistent=True)
        self.out_spec = out_spec

    def forward(self, *inputs):
        result = torch.ops.neuron.forward_v2(list(inputs), self.neff)
        return pytree.tree_unflatten(list(result), self.out_spec)


def wrap_artifact(compiled: Union[Compiled, torch.Tensor], out_spec: Any, example_inputs) -> torch.jit.ScriptModule:
    """The TorchScript module the user gets for one artifact (a Compiled or its blob): forward flattens the
    inputs, calls `neuron::forward_v2` and rebuilds `out_spec`. Tracing it runs the artifact once on
    `example_inputs` (a tensor or a tuple of tensors)."""
    blob = compiled.blob if isinstance(compiled, Compiled) else compiled
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    module = NeuronModule(blob, out_spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(module, inputs, strict=False, check_trace=False)


def trace_and_compile(func, inputs: tuple, options: CompilerOptions, generation: int,
                      compiler_workdir=None) -> torch.jit.ScriptModule:
    if isinstance(func, torch.nn.Module) and func.training:
        warnings.warn("The model is in training mode; Neuron traces are for inference: call model.eval() first",
                      UserWarning, stacklevel=3)
    t0 = time.perf_counter()
    with compile_progress(type(func).__name__):  # a progress line when this takes over a second
        graph = capture(func, inputs)[0]  # (the eager outputs are not needed)
        try:
            compiled = compile_graph(graph, options, generation=generation)
        except CompilationError:
            if compiler_workdir:
                _write_workdir(compiler_workdir, options, None, None, "FAIL")
            raise
    logger.info("Compiler status PASS")
    if compiler_workdir:
        _write_workdir(compiler_workdir, options, compiled.graph_text, compiled, "PASS")
    out_spec = graph.out_spec
    del graph  # folded constants are in the artifact now: free them before the traced run
    traced = wrap_artifact(compiled, out_spec, inputs)
    logger.debug("trace+compile took %.2fs (%d instructions)", time.perf_counter() - t0, compiled.n_instructions)
    return traced


def _write_workdir(workdir, options, graph_text, compiled, status):
    os.makedirs(os.path.join(workdir, "model"), exist_ok=True)
    with open(os.path.join(workdir, "command.txt"), "w") as f:
        f.write(options.command_line(workdir) + "\n")
    if graph_text is not None:
        with open(os.path.join(workdir, "model", "graph.txt"), "w") as f:
            f.write(graph_text)
    if compiled is not None:
        with open(os.path.join(workdir, "program.txt"), "w") as f:
            f.write(compiled.program_text)
        compiled.blob.numpy().tofile(os.path.join(workdir, "graph.neff"))
    log = options.logfile or os.path.join(workdir, "log-neuron-cc.txt")
    with open(log, "w") as f:
        f.write(f"neuronx-cc (neuron-emu) {options.command_line(workdir)}\n")
        if compiled is not None:
            f.write(f"Compiled {compiled.n_instructions} instructions in {compiled.compile_seconds:.3f}s\n")
            for name, n in sorted(compiled.supported.items()):
                f.write(f"  {name}: {n}\n")
        f.write(f"Compiler status {status}\n")
