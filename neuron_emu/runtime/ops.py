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
