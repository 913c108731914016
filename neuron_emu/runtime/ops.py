"""The TorchScript operator `neuron::forward_v2(Tensor[] inputs, Tensor model) -> Tensor[]`, and the same operator
under torch-neuron's (Inf1) name, `neuron::forward_1`, which Inf1 traces call.

Registered with torch.library on import, so `torch.jit.load` of a traced model works only after
`import torch_neuronx_emu` (or neuron_emu.runtime), like the real SDK's `Unknown builtin op` rule.

Hot path: every call reaches the Autograd dispatch key first, so the kernel registered there runs a placed
model directly (one crossing into Python, no redispatch). torch.library.register_autograd would cost a
second Python kernel (its autograd wrapper, then the CPU kernel): about half of a small model's GIL-held time,
which is what limits two emulated cores called from two threads."""
from __future__ import annotations

from typing import List

import torch

from neuron_emu.runtime.placement import _placed, model_for

_lib = torch.library.Library("neuron", "DEF")
OP_NAMES = ("forward_v2", "forward_1")   # torch_neuronx's, torch_neuron's
for _name in OP_NAMES:
    _lib.define(f"{_name}(Tensor[] inputs, Tensor model) -> Tensor[]")

_grad_enabled = torch.is_grad_enabled
_any_requires_grad = torch._C._any_requires_grad
_below_autograd = torch._C._AutoDispatchBelowAutograd


def _forward_v2(inputs: List[torch.Tensor], model: torch.Tensor) -> List[torch.Tensor]:
    m = _placed.get(id(model))  # fast path: the model placed at this artifact tensor's first call
    if m is None or m._artifact() is not model:
        m = model_for(model)
    return m(inputs)


def _forward_v2_meta(inputs: List[torch.Tensor], model: torch.Tensor) -> List[torch.Tensor]:
    bad = next((i for i, x in enumerate(inputs) if x.device.type != "cpu"), None)
    where = f"Input tensor {bad} is on {inputs[bad].device}" if bad is not None else f"The model is on {model.device}"
    raise RuntimeError(f"{where}; traced Neuron models take CPU tensors")


_NO_GRAD_TEXT = ("A traced Neuron model is inference-only: its outputs have no gradient. Compute gradients on "
                 "the original torch.nn.Module, or call the traced model under torch.no_grad()")


class _InferenceOnly(torch.autograd.Function):
    """Inputs that require grad give outputs that require grad, and backward() says why it cannot run instead of
    silently leaving the inputs' .grad as None."""

    @staticmethod
    def forward(ctx, op, model, *inputs):
        with _below_autograd():
            return tuple(op(list(inputs), model))

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(_NO_GRAD_TEXT)


def _autograd_kernel(op):
    def forward(inputs: List[torch.Tensor], model: torch.Tensor) -> List[torch.Tensor]:
        if _grad_enabled() and _any_requires_grad(inputs):
            return list(_InferenceOnly.apply(op, model, *inputs))
        m = _placed.get(id(model))
        if m is not None and m._artifact() is model:
            return m(inputs)   # checks the inputs (a non-CPU one raises as the Meta kernel does)
        with _below_autograd():   # the first call (placement) or a meta tensor: the CPU or Meta kernel
            return op(inputs, model)
    return forward


for _name in OP_NAMES:
    _lib.impl(_name, _forward_v2, "CPU")
    _lib.impl(_name, _forward_v2_meta, "Meta")
    _lib.impl(_name, _autograd_kernel(getattr(torch.ops.neuron, _name).default), "Autograd")
