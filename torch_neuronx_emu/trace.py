"""torch_neuronx.trace: capture -> neuronx-cc (emulated) -> a ScriptModule calling neuron::forward_v2.

Mirrors docs/reference/neuron-api.md section 2.1: signature, defaults, warnings for deprecated
positionals and unknown keywords, compiler_workdir artifacts, fixed input shapes."""
from __future__ import annotations

import copy
import warnings

import torch

from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.tracing import trace_and_compile

_LEGACY_KWARGS = ("states", "options")


def _normalize_inputs(example_inputs) -> tuple:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, list):
        return tuple(example_inputs)
    if isinstance(example_inputs, tuple):
        return example_inputs
    raise TypeError(f"example_inputs must be a torch.Tensor or a tuple of tensors, got {type(example_inputs).__name__}")


def check_aliases_arg(aliases) -> None:
    """input_output_aliases must be {tensor: output index}; the tensor is an example input or a state tensor the
    model reads (the compile checks the indices and shapes)."""
    if not isinstance(aliases, dict):
        raise TypeError(f"input_output_aliases must be a dict {{tensor: output index}}, got {type(aliases).__name__}")
    bad = next((k for k in aliases if not isinstance(k, torch.Tensor)), None)
    if bad is not None:
        raise TypeError(f"input_output_aliases keys must be tensors (an example input or a state tensor of the "
                        f"model), got {type(bad).__name__}")


def trace(func, example_inputs, *_, input_output_aliases={}, compiler_workdir=None, compiler_args=None,
          partitioner_config=None, inline_weights_to_neff=True, cpu_backend=False, **kwargs):
    """Trace and compile `func` for an (emulated) Inferentia2/Trainium NeuronCore-v2.

    Returns a torch.jit.ScriptModule that runs on the emulator; save it with torch.jit.save and load it
    with torch.jit.load after `import torch_neuronx_emu`."""
    if _:
        if len(_) > 5:
            raise RuntimeError(f"Received {len(_) + 2} positional arguments but expected 2.")
        warnings.warn(f"Received {len(_) + 2} positional arguments but expected 2. Positional arguments after "
                      f"`example_inputs` are deprecated; pass them as keyword arguments.", DeprecationWarning, stacklevel=2)
        names = ["compiler_workdir", "compiler_args", "partitioner_config", "inline_weights_to_neff", "cpu_backend"]
        inferred = dict(zip(names, _))
        compiler_workdir = inferred.get("compiler_workdir", compiler_workdir)
        compiler_args = inferred.get("compiler_args", compiler_args)
        partitioner_config = inferred.get("partitioner_config", partitioner_config)
        inline_weights_to_neff = inferred.get("inline_weights_to_neff", inline_weights_to_neff)
        cpu_backend = inferred.get("cpu_backend", cpu_backend)
    for k in _LEGACY_KWARGS:
        if k in kwargs:
            kwargs.pop(k)
            warnings.warn(f"The `{k}` keyword argument is deprecated and ignored.", DeprecationWarning, stacklevel=2)
    if kwargs:
        warnings.warn(f"Unexpected keyword arguments: {list(kwargs)}", UserWarning, stacklevel=2)
    if partitioner_config is not None:  # trace delegates to the partitioner (SRC, neuron-api.md 2.1)
        return _partitioned(func, example_inputs, partitioner_config, compiler_workdir, compiler_args,
                            input_output_aliases, inline_weights_to_neff)
    check_aliases_arg(input_output_aliases)
    if not isinstance(inline_weights_to_neff, bool):
        raise TypeError(f"inline_weights_to_neff must be a bool, got {type(inline_weights_to_neff).__name__}")

    options = parse_compiler_args(compiler_args)
    return trace_and_compile(func, _normalize_inputs(example_inputs), options, generation=2,
                             compiler_workdir=compiler_workdir, inline_weights=inline_weights_to_neff,
                             aliases=input_output_aliases)


def _partitioned(func, example_inputs, config, compiler_workdir, compiler_args, aliases, inline_weights):
    from torch_neuronx_emu.partitioner_config import PartitionerConfig
    from torch_neuronx_emu.partitioning import partition
    if not isinstance(config, PartitionerConfig):
        raise TypeError(f"partitioner_config must be a torch_neuronx.PartitionerConfig, got {type(config).__name__}")
    # The SDK's trace hands a partitioner_config straight to torch_neuronx.partition(func, example_inputs,
    # **config.__dict__) (SRC torch_neuronx/xla_impl/trace.py): input_output_aliases is accepted but never forwarded,
    # and that trace has no inline_weights_to_neff (it lands in **kwargs: "Unexpected keyword arguments"). So both
    # are allowed together with a partitioner_config and have no effect; said here rather than silently.
    dropped = [k for k, on in (("input_output_aliases", bool(aliases)), ("inline_weights_to_neff=False",
                                                                        inline_weights is not True)) if on]
    if dropped:
        warnings.warn(f"{' and '.join(dropped)} {'has' if len(dropped) == 1 else 'have'} no effect with "
                      "partitioner_config: torch_neuronx.trace passes only the PartitionerConfig (and its trace_kwargs) "
                      "to torch_neuronx.partition, so every subgraph is traced with its weights inlined and no "
                      "aliases", UserWarning, stacklevel=3)
    if config.trace_kwargs is None:  # trace's own compiler_args/compiler_workdir go to every subgraph (SRC)
        fwd = {k: v for k, v in (("compiler_args", compiler_args), ("compiler_workdir", compiler_workdir))
               if v is not None}
        config = copy.copy(config)
        config.trace_kwargs = fwd
    return partition(func, example_inputs, config)


hint = trace
