"""Shared tracing path of torch_neuron_emu and torch_neuronx_emu: capture -> compile_graph -> wrap_artifact,
a TorchScript module whose forward calls `neuron::forward_v2` with the artifact as a buffer.

NeuronModule stays in this module: its qualified name is recorded in every saved trace."""
from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils import _pytree as pytree

import neuron_emu.runtime  # noqa: F401  (registers neuron::forward_v2)
from neuron_emu.compiler import CompilationError, Compiled, compile_graph
from neuron_emu.compiler.capture import alias_key, capture
from neuron_emu.compiler.options import CompilerOptions
from neuron_emu.progress import compile_progress

logger = logging.getLogger("Neuron")


class NeuronModule(torch.nn.Module):
    """What torch.jit.trace records: flatten inputs, run the compiled program, rebuild the outputs."""

    def __init__(self, neff: torch.Tensor, out_spec: Any, op: str = "forward_v2"):
        super().__init__()
        self.register_buffer("neff", neff, persistent=True)
        self.out_spec = out_spec
        self.op = op   # the operator the graph calls: forward_v2 (torch_neuronx), forward_1 (torch_neuron)

    def forward(self, *inputs):
        result = getattr(torch.ops.neuron, self.op)(list(inputs), self.neff)
        return pytree.tree_unflatten(list(result), self.out_spec)


class NeuronModuleWithWeights(NeuronModule):
    """A program with inputs beyond the model's own: the module feeds `states` (input_output_aliases state
    tensors the model owns) and then `weights` (inline_weights_to_neff=False: saved with the module, swapped by
    torch_neuronx.replace_weights, named by the artifact's header `weights`) after the inputs at every call.
    Each (input, output) pair of `aliases` writes the output back into that input (a user input or a state)
    after the call: aten::copy_ nodes in the traced graph."""

    def __init__(self, neff: torch.Tensor, out_spec: Any, weights: List[torch.Tensor],
                 states: Sequence[torch.Tensor] = (), aliases: Sequence[Tuple[int, int]] = ()):
        super().__init__(neff, out_spec)
        self.states = torch.nn.ParameterList([torch.nn.Parameter(s, requires_grad=False) for s in states])
        self.weights = torch.nn.ParameterList([torch.nn.Parameter(w, requires_grad=False) for w in weights])
        self.aliases = list(aliases)   # a Python constant: the traced graph holds one copy_ per pair

    def forward(self, *inputs):
        feed = list(inputs) + list(self.states) + list(self.weights)
        result = torch.ops.neuron.forward_v2(feed, self.neff)
        for i, k in self.aliases:
            feed[i].copy_(result[k])
        return pytree.tree_unflatten(list(result), self.out_spec)


def wrap_artifact(compiled: Union[Compiled, torch.Tensor], out_spec: Any, example_inputs,
                  weights: Optional[List[torch.Tensor]] = None, states: Sequence[torch.Tensor] = (),
                  aliases: Sequence[Tuple[int, int]] = (), op: str = "forward_v2") -> torch.jit.ScriptModule:
    """The TorchScript module the user gets for one artifact (a Compiled or its blob): forward flattens the
    inputs, calls `neuron::forward_v2` (with `states` and `weights` after the inputs when the program takes
    them) and rebuilds `out_spec`. Tracing it runs the artifact once on `example_inputs` (a tensor or a tuple of
    tensors); aliased inputs and states are restored afterwards, so that run leaves no trace."""
    blob = compiled.blob if isinstance(compiled, Compiled) else compiled
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if weights is None and not states and not aliases:
        module = NeuronModule(blob, out_spec, op)
    else:
        module = NeuronModuleWithWeights(blob, out_spec, weights or [], states, aliases)
        inputs = tuple(x.clone() if any(i == j for j, _ in aliases) else x for i, x in enumerate(inputs))
    saved = [s.detach().clone() for s in states]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, inputs, strict=False, check_trace=False)
    if saved:
        with torch.no_grad():
            for p, s in zip(traced.states.parameters(), saved):
                p.copy_(s)
    return traced


def external_weights(func, exclude: Sequence[torch.Tensor] = ()) -> Dict[str, torch.Tensor]:
    """The weights inline_weights_to_neff=False keeps outside the artifact: the floating-point entries of the
    module's state dict (parameters and persistent buffers, tied ones under each name). Integer buffers (e.g.
    position ids) are not weights and stay compiled in; neither do `exclude`d tensors (aliased states)."""
    if not isinstance(func, torch.nn.Module):
        return {}
    skip = {alias_key(t) for t in exclude}
    return {k: v for k, v in func.state_dict(keep_vars=True).items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and alias_key(v) not in skip}


@dataclass
class Traced:
    """What trace_and_compile makes before wrapping: the artifact, its output structure, the example inputs, and
    the trailing program inputs the module feeds (states, then weights) with the output -> input aliases."""
    compiled: Compiled
    out_spec: Any
    inputs: tuple
    states: List[torch.Tensor]
    weights: Optional[List[torch.Tensor]]
    aliases: List[Tuple[int, int]]

    def wrap(self) -> torch.jit.ScriptModule:
        return wrap_artifact(self.compiled, self.out_spec, self.inputs, self.weights, self.states, self.aliases)


def compile_trace(func, inputs: tuple, options: CompilerOptions, generation: int, compiler_workdir=None,
                  inline_weights: bool = True, aliases: Optional[Dict[torch.Tensor, int]] = None) -> Traced:
    """Capture and compile `func` on `inputs`. `aliases` ({tensor: output index}, torch_neuronx's
    input_output_aliases) names an example input, or a tensor the model owns (a state), whose value the output
    replaces after every call; states become program inputs after the model's own, fed by the module."""
    if isinstance(func, torch.nn.Module) and func.training:
        warnings.warn("The model is in training mode; Neuron traces are for inference: call model.eval() first",
                      UserWarning, stacklevel=4)
    t0 = time.perf_counter()
    with compile_progress(type(func).__name__):  # a progress line when this takes over a second
        by_input = {id(x): i for i, x in enumerate(inputs)}
        state_tensors = [t for t in (aliases or {}) if id(t) not in by_input]
        external = {f"<state {j}>": t for j, t in enumerate(state_tensors)}
        if not inline_weights:
            external.update(external_weights(func, exclude=state_tensors))
        graph = capture(func, inputs, external)[0]  # (the eager outputs are not needed)
        n_states = len(state_tensors)
        fed = [names[0] for names in graph.weight_names]
        for j in range(n_states):
            if f"<state {j}>" not in fed:
                raise ValueError(f"input_output_aliases: state tensor {j} (shape {list(state_tensors[j].shape)}) is not "
                                 "read by the model; an aliased state must be an input of the traced computation")
        pairs = []
        for t, k in (aliases or {}).items():
            i = by_input[id(t)] if id(t) in by_input else len(inputs) + fed.index(f"<state {state_tensors.index(t)}>")
            pairs.append((i, k))
        check_aliases(graph, pairs)
        names = graph.weight_names[n_states:]
        graph.weight_names = names   # the header names the weights only (states are not replaceable weights)
        try:
            compiled = compile_graph(graph, options, generation=generation)
        except CompilationError:
            if compiler_workdir:
                _write_workdir(compiler_workdir, options, None, None, "FAIL")
            raise
    logger.info("Compiler status PASS")
    if compiler_workdir:
        _write_workdir(compiler_workdir, options, compiled.graph_text, compiled, "PASS")
    # the trace owns copies of its states and weights, as the real SDK's does (replacing them leaves the model as is)
    states = [t.detach().clone() for t in state_tensors]
    weights = None if inline_weights else [external[n[0]].detach().clone() for n in names]
    logger.debug("trace+compile took %.2fs (%d instructions)", time.perf_counter() - t0, compiled.n_instructions)
    return Traced(compiled, graph.out_spec, inputs, states, weights, pairs)


def check_aliases(graph, pairs: List[Tuple[int, int]]) -> None:
    """ValueError for an alias whose output index is out of range or whose output differs in shape or dtype
    from the input it is written into."""
    seen = set()
    for i, k in pairs:
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(graph.outputs):
            raise ValueError(f"input_output_aliases: output index {k!r} is not one of the model's {len(graph.outputs)} "
                             f"outputs (0-{len(graph.outputs) - 1})")
        if k in seen:
            raise ValueError(f"input_output_aliases: output {k} is aliased to more than one input")
        seen.add(k)
        src, out = graph.inputs[i], graph.outputs[k]
        if src.shape != out.shape or src.dtype != out.dtype:
            raise ValueError(f"input_output_aliases: output {k} has shape {list(out.shape)} and dtype {out.dtype} but "
                             f"the input it is aliased to has shape {list(src.shape)} and dtype {src.dtype}; an aliased "
                             f"output must match its input")


def trace_and_compile(func, inputs: tuple, options: CompilerOptions, generation: int,
                      compiler_workdir=None, inline_weights: bool = True,
                      aliases: Optional[Dict[torch.Tensor, int]] = None) -> torch.jit.ScriptModule:
    return compile_trace(func, inputs, options, generation, compiler_workdir, inline_weights, aliases).wrap()


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
        f.write(f"{options.compiler} (neuron-emu) {options.command_line(workdir)}\n")
        if compiled is not None:
            f.write(f"Compiled {compiled.n_instructions} instructions in {compiled.compile_seconds:.3f}s\n")
            for name, n in sorted(compiled.supported.items()):
                f.write(f"  {name}: {n}\n")
        f.write(f"Compiler status {status}\n")
