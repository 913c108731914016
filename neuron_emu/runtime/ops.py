"""The TorchScript operator `neuron::forward_v2(Tensor[] inputs, Tensor model) -> Tensor[]`, and the same operator
under torch-neuron's (Inf1) name, `neuron::forward_1`, which Inf1 traces call.

Registered with torch.library on import, so `torch.jit.load` of a traced model works only after
`import torch_neuronx_emu` (or neuron_emu.runtime), like the real SDK's `Unknown builtin op` rule."""
from __future__ import annotations

from typing import List

import torch

from neuron_emu.runtime.placement import _placed, model_for

_lib = torch.library.Library("neuron", "DEF")
OP_NAMES = ("forward_v2", "forward_1")   # torch_neuronx's, torch_neuron's
for _name in OP_NAMES:
    _lib.define(f"{_name}(Tensor[] inputs, Tensor model) -> Tensor[]")


def _forward_v2(inputs: List[torch.Tensor], model: torch.Tensor) -> List[torch.Tensor]:
    m = _placed.get(id(model))  # fast path: the model placed at this artifact tensor's first call
    if m is None or m._artifact() is not model:
        m = model_for(model)
    return m(inputs)




def _forward_v2_meta(inputs: List[torch.Tensor], model: torch.Tensor) -> List[torch.Tensor]:
    bad = next((i for i, x in enumerate(inputs) if x.device.type != "cpu"), None)
    where = f"Input tensor {bad} is on {inputs[bad].device}" if bad is not None else f"The model is on {model.device}"
    raise RuntimeError(f"{where}; traced Neuron models take CPU tensors")


def _no_backward(ctx, *grads):
    raise RuntimeError("A traced Neuron model is inference-only: its outputs have no gradient. Compute gradients on "
                       "the original torch.nn.Module, or call the traced model under torch.no_grad()")


# Inputs that require grad give outputs that require grad, and backward() says why it cannot run instead of
# silently leaving the inputs' .grad as None.
for _name in OP_NAMES:
    _lib.impl(_name, _forward_v2, "CPU")
    _lib.impl(_name, _forward_v2_meta, "Meta")
    torch.library.register_autograd(f"neuron::{_name}", _no_backward, lib=_lib)
