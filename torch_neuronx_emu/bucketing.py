"""Autobucketing (neuron-api.md 2.9): `BucketModelConfig` and `bucket_model_trace`, one saved TorchScript model
holding a compiled program per bucket and a TorchScript bucket kernel that picks the bucket (and pads the
inputs to it) at run time.

How a call flows: the traced module's forward makes the inputs a list and calls the scripted
`NeuronBucketModel.forward`, which runs the user's scripted bucket kernel (-> padded inputs, bucket index
tensor), appends the shared state buffers (as the state preprocessor shapes them for that bucket) and calls the
chosen bucket's `neuron::forward_v2` program. Everything on that path is TorchScript, so the model saves with
torch.jit.save and loads in a fresh process after `import torch_neuronx_emu`, as the SDK's does. Each bucket's
artifact is a `neff` buffer (`buckets.<i>.neff`), so placement (set_neuron_cores, DataParallel) and
lazy/async load treat the buckets like any traced graph.

The result is the flat list of the chosen bucket's output tensors (ASSUMPTION: the SDK's docs index the
result, `model(*inputs)[0]`, and do not say more); outputs keep the bucket's padded shape."""

import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch

from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.tracing import compile_trace
from torch_neuronx_emu.trace import check_aliases_arg

__all__ = ["BucketModelConfig", "bucket_model_trace"]


class BucketModelConfig:
    """How inputs map to buckets (`bucket_kernel`: a callable returning a torch.jit.script-ed function
    List[Tensor] -> (List[Tensor], index Tensor)) and the optional shared state: `shared_state_buffer` (initial
    state tensors, fed to every bucket after its inputs) and `shared_state_buffer_preprocessor` (a callable
    returning a scripted function (shapes per bucket, states, index tensor) -> the bucket's states; without it
    the full buffers are fed). `func_kwargs`: a dict, or one dict per bucket, passed to bucket_model_trace's
    `func`."""

    def __init__(self, bucket_kernel: Callable, *_, shared_state_buffer: Optional[List[torch.Tensor]] = None,
                 shared_state_buffer_preprocessor: Optional[Callable] = None,
                 func_kwargs: Optional[Union[Dict[str, Any], List[Dict[str, Any]]]] = None):
        if _:
            raise TypeError(f"BucketModelConfig takes 1 positional argument (bucket_kernel) but {1 + len(_)} were "
                            "given; pass shared_state_buffer, shared_state_buffer_preprocessor and func_kwargs as "
                            "keyword arguments")
        if not callable(bucket_kernel):
            raise TypeError(f"bucket_kernel must be a callable that returns a torch.jit.script-ed function, got "
                            f"{type(bucket_kernel).__name__}")
        if shared_state_buffer is not None:
            if not isinstance(shared_state_buffer, (list, tuple)) or not all(
                    isinstance(t, torch.Tensor) for t in shared_state_buffer):
                raise TypeError("shared_state_buffer must be a list of tensors")
            shared_state_buffer = list(shared_state_buffer)
        if shared_state_buffer_preprocessor is not None and not callable(shared_state_buffer_preprocessor):
            raise TypeError("shared_state_buffer_preprocessor must be a callable that returns a torch.jit.script-ed "
                            f"function, got {type(shared_state_buffer_preprocessor).__name__}")
        if func_kwargs is not None and not isinstance(func_kwargs, (dict, list)):
            raise TypeError(f"func_kwargs must be a dict or a list of dicts, got {type(func_kwargs).__name__}")
        self.bucket_kernel = bucket_kernel
        self.shared_state_buffer = shared_state_buffer
        self.shared_state_buffer_preprocessor = shared_state_buffer_preprocessor
        self.func_kwargs = func_kwargs

    def kwargs_per_bucket(self, n: int) -> List[Dict[str, Any]]:
        kw = self.func_kwargs
        if kw is None:
            return [{} for _ in range(n)]
        if isinstance(kw, dict):
            return [dict(kw) for _ in range(n)]
        if len(kw) != n or not all(isinstance(k, dict) for k in kw):
            raise ValueError(f"func_kwargs is a list of {len(kw)} entries but there are {n} buckets (example_inputs): "
                             "give one dict per bucket, or a single dict for all")
        return kw


class NeuronBucket(torch.nn.Module):
    """One bucket's compiled program. Inputs: the kernel's outputs, then the states (the shared state buffers as
    the preprocessor shapes them, else the bucket's own); each (input, output) alias writes that output back into
    the input it aliases after the call (a slice of a shared buffer is a view: the buffer itself is updated)."""
    states: List[torch.Tensor]
    aliases: List[List[int]]

    def __init__(self, neff: torch.Tensor, states: List[torch.Tensor], aliases: List[List[int]]):
        super().__init__()
        self.register_buffer("neff", neff, persistent=True)
        self.states = states
        self.aliases = aliases

    def forward(self, inputs: List[torch.Tensor], shared: List[torch.Tensor]) -> List[torch.Tensor]:
        feed = inputs + (shared if len(shared) > 0 else self.states)
        # a copy of the list: the native kernel's boxing (torch's stable ABI) moves a Tensor[] argument's
        # tensors out of the list it is given, and the aliases below index `feed` after the call
        result = torch.ops.neuron.forward_v2(list(feed), self.neff)
        for pair in self.aliases:
            feed[pair[0]].copy_(result[pair[1]])
        return result


def _scripted(factory: Callable, what: str):
    fn = factory()
    if not isinstance(fn, (torch.jit.ScriptFunction, torch.jit.ScriptModule)):
        raise TypeError(f"{what} must return a function adapted with torch.jit.script (so that the bucket model can "
                        f"be saved with torch.jit.save), got {type(fn).__name__}")
    return fn


def _identity_preprocessor(shapes: List[List[List[int]]], states: List[torch.Tensor],
                           index: torch.Tensor) -> List[torch.Tensor]:
    return states


def _bucket_model(kernel, preprocessor, buckets: List[NeuronBucket], states: List[torch.Tensor],
                  shapes: List[List[List[int]]]) -> torch.jit.ScriptModule:
    """The scripted selector. `kernel` and `preprocessor` are closure variables of forward, so torch.jit.script
    compiles them into the module (and torch.jit.save stores their code). Nothing else may be: TorchScript keeps
    the class for the life of the process, and with it its closure (the buckets' artifacts would never be freed)."""

    class NeuronBucketModel(torch.nn.Module):
        states: List[torch.Tensor]
        state_shapes: List[List[List[int]]]

        def __init__(self, buckets_: List[NeuronBucket], states_: List[torch.Tensor],
                     shapes_: List[List[List[int]]]):
            super().__init__()
            self.buckets = torch.nn.ModuleList(buckets_)
            self.states = states_
            self.state_shapes = shapes_

        def forward(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
            tensors, index = kernel(inputs)
            i = int(index.reshape(-1)[0])
            shared: List[torch.Tensor] = []
            if len(self.states) > 0:
                shared = preprocessor(self.state_shapes, self.states, index)
            for j, bucket in enumerate(self.buckets):
                if j == i:
                    return bucket(tensors, shared)
            raise ValueError("the bucket kernel returned bucket index " + str(i) + " but the model has "
                             + str(len(self.buckets)) + " buckets")

    return torch.jit.script(NeuronBucketModel(buckets, states, shapes))


class _Entry(torch.nn.Module):
    """What the user calls: positional inputs -> the scripted selector (traced, so forward keeps the arity)."""

    def __init__(self, selector):
        super().__init__()
        self.model = selector

    def forward(self, *inputs):
        return self.model(list(inputs))


def _as_tuple(x, i: int) -> tuple:
    if isinstance(x, torch.Tensor):
        return (x,)
    if isinstance(x, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in x):
        return tuple(x)
    raise TypeError(f"example_inputs[{i}] must be a tensor or a tuple of tensors, got {type(x).__name__}")


def bucket_model_trace(func: Callable, example_inputs: Sequence, bucket_config: BucketModelConfig,
                       compiler_workdir: Optional[str] = None, compiler_args=None) -> torch.jit.ScriptModule:
    """Trace `func(**func_kwargs[i])` -> (model, input_output_aliases) once per bucket on `example_inputs[i]` and
    package the compiled buckets with the bucket kernel into one TorchScript module."""
    if not isinstance(bucket_config, BucketModelConfig):
        raise TypeError(f"bucket_config must be a torch_neuronx.BucketModelConfig, got {type(bucket_config).__name__}")
    if not isinstance(example_inputs, (list, tuple)) or not example_inputs:
        raise TypeError("example_inputs must be a non-empty list with one example input (a tensor or a tuple of "
                        "tensors) per bucket")
    examples = [_as_tuple(x, i) for i, x in enumerate(example_inputs)]
    options = parse_compiler_args(compiler_args)
    kernel = _scripted(bucket_config.bucket_kernel, "bucket_kernel")
    states = [t.detach().clone() for t in bucket_config.shared_state_buffer or []]
    if bucket_config.shared_state_buffer_preprocessor is not None:
        preprocessor = _scripted(bucket_config.shared_state_buffer_preprocessor, "shared_state_buffer_preprocessor")
    else:
        preprocessor = torch.jit.script(_identity_preprocessor)
    buckets, shapes = [], []
    for i, (inputs, kwargs) in enumerate(zip(examples, bucket_config.kwargs_per_bucket(len(examples)))):
        made = func(**kwargs)
        if not isinstance(made, tuple) or len(made) != 2 or not isinstance(made[1], dict):
            raise TypeError(f"bucket_model_trace's func must return (model, input_output_aliases), got "
                            f"{type(made).__name__}")
        model, aliases = made
        kernel_inputs, index = kernel(list(inputs))
        if int(index.reshape(-1)[0]) != i:
            warnings.warn(f"The bucket kernel maps example_inputs[{i}] to bucket {int(index.reshape(-1)[0])}: "
                          f"bucket {i} is traced with what the kernel makes of it", UserWarning, stacklevel=2)
        workdir = os.path.join(compiler_workdir, f"bucket{i}") if compiler_workdir else None
        check_aliases_arg(aliases)
        traced = compile_trace(model, tuple(kernel_inputs), options, generation=2, compiler_workdir=workdir,
                               aliases=aliases)
        own = traced.states
        pairs = [[a, b] for a, b in traced.aliases]
        if states and len(own) != len(states):
            raise ValueError(f"shared_state_buffer has {len(states)} tensors but bucket {i}'s model aliases "
                             f"{len(own)} state tensors (input_output_aliases): every bucket must take the shared "
                             "state")
        shapes.append([list(t.shape) for t in own])
        buckets.append(NeuronBucket(traced.compiled.blob, own, pairs))
    selector = _bucket_model(kernel, preprocessor, buckets, states, shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(_Entry(selector), examples[0], strict=False, check_trace=False)
