"""The TorchScript operator `neuron::forward_v2(Tensor[] inputs, Tensor model) -> Tensor[]`, and the same operator
under torch-neuron's (Inf1) name, `neuron::forward_1`, which Inf1 traces call.

Registered with torch.library on import, so `torch.jit.load` of a traced model works only after
`import torch_neuronx_emu` (or neuron_emu.runtime), like the real SDK's `Unknown builtin op` rule.

Hot path: where torch has its stable C ABI (2.10+), the Autograd and CPU kernels are native
(csrc/forward_op.h): a call of a placed model from TorchScript runs Program::run without ever taking the GIL,
so two emulated cores called from two threads run in parallel. What the native kernel does not run itself it
hands, unchanged, to `neuron::_forward_v2_python` / `neuron::_forward_1_python`, which hold the Python kernels
below (they are the whole implementation where the native one is absent, or with NEMU_NATIVE_FORWARD=0).

The Python Autograd kernel runs a placed model directly (one crossing into Python, no redispatch);
torch.library.register_autograd would cost a second Python kernel (its autograd wrapper, then the CPU kernel)."""
from __future__ import annotations

import os
from typing import List

import torch

from neuron_emu import _C
from neuron_emu.runtime import native_placement
from neuron_emu.runtime.placement import _placed, model_for

_lib = torch.library.Library("neuron", "DEF")
OP_NAMES = ("forward_v2", "forward_1")   # torch_neuronx's, torch_neuron's
SCHEMA = "(Tensor[] inputs, Tensor model) -> Tensor[]"
for _name in OP_NAMES:
    _lib.define(_name + SCHEMA)
    _lib.define(f"_{_name}_python" + SCHEMA)

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


def _torch_version() -> int:
    """torch's version as the stable ABI encodes it: major << 56 | minor << 48 | patch << 40."""
    nums = [int("".join(c for c in p if c.isdigit()) or 0) for p in torch.__version__.split("+")[0].split(".")[:3]]
    major, minor, patch = (nums + [0, 0, 0])[:3]
    return major << 56 | minor << 48 | patch << 40


def _install_native() -> bool:
    if os.environ.get("NEMU_NATIVE_FORWARD", "1") == "0":
        return False
    return all([_C.forward_op_install(name, f"_{name}_python", _torch_version()) for name in OP_NAMES])


def _register_python(name: str) -> None:
    _lib.impl(name, _forward_v2, "CPU")
    _lib.impl(name, _forward_v2_meta, "Meta")
    _lib.impl(name, _autograd_kernel(getattr(torch.ops.neuron, name).default), "Autograd")


NATIVE = _install_native()
native_placement.enabled = NATIVE
for _name in OP_NAMES:
    if NATIVE:   # forward_v2's Autograd and CPU kernels are native; its Python implementation is the fallback op
        _register_python(f"_{_name}_python")
        _lib.impl(_name, _forward_v2_meta, "Meta")
    else:
        _register_python(_name)
