"""The TorchScript operator `neuron::forward_v2(Tensor[] inputs, Tensor model) -> Tensor[]`.

Registered with torch.library on import, so `torch.jit.load` of a traced model works only after
`import torch_neuronx_emu` (or neuron_emu.runtime), like the real SDK's `Unknown builtin op` rule."""
from __future__ import annotations

from typing import List

import torch

from neuron_emu.runtime.placement import _placed, model_for

_lib = torch.library.Library("neuron", "DEF")
_lib.define("forward_v2(Tensor[] inputs, Tensor model) -> Tensor[]")


def _forward_v2(inputs: List[torch.Tensor], model: torch.Tensor) -> List[torch.Tensor]:
    m = _placed.get(id(model))  # fast path: the model placed at this artifact tensor's first call
    if m is None or m._artifact() is not model:
        m = model_for(model)
    return m(inputs)


_lib.impl("forward_v2", _forward_v2, "CPU")


def _forward_v2_meta(inputs: List[torch.Tensor], model: torch.Tensor) -> List[torch.Tensor]:
    bad = next((i for i, x in enumerate(inputs) if x.device.type != "cpu"), None)
    where = f"Input tensor {bad} is on {inputs[bad].device}" if bad is not None else f"The model is on {model.device}"
    raise RuntimeError(f"{where}; traced Neuron models take CPU tensors")


_lib.impl("forward_v2", _forward_v2_meta, "Meta")


def _no_backward(ctx, *grads):
    raise RuntimeError("A traced Neuron model is inference-only: its outputs have no gradient. Compute gradients on "
                       "the original torch.nn.Module, or call the traced model under torch.no_grad()")


# Inputs that require grad give outputs that require grad, and backward() says why it cannot run instead of
# silently leaving the inputs' .grad as None.
torch.library.register_autograd("neuron::forward_v2", _no_backward, lib=_lib)
