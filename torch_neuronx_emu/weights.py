"""torch_neuronx.replace_weights(neuron_model, weights) (neuron-api.md 2.5): swap the weights of a trace made with
`inline_weights_to_neff=False`, in place, without recompiling.

Such a trace keeps its weights outside the artifact, in the traced module's `weights` parameters, and feeds them
to the program after the inputs at every call; the artifact's header names each (`weights`: the state-dict
names, several for a tied weight). The new weights come from an `nn.Module` (its state dict) or a state dict
(e.g. `safetensors.torch.load_file`). Every weight of the trace must be present with its traced shape, checked
before anything is changed; extra entries (integer buffers, tied duplicates) are ignored. On a trace whose
weights were inlined there is nothing to replace: a UserWarning says so and the trace is left unchanged."""
from __future__ import annotations

import warnings
from typing import Dict, List, Mapping, Tuple, Union

import torch

from neuron_emu.compiler import artifact
from torch_neuronx_emu.experimental.placement import artifacts

__all__ = ["replace_weights"]

# ASSUMPTION: the SDK documents a warning for inlined traces but not its text
INLINED_WARNING = ("replace_weights has no effect: the model was traced with inline_weights_to_neff=True, so its "
                   "weights are compiled into the Neuron graph. Trace with inline_weights_to_neff=False to replace "
                   "weights.")


def _traced_modules(model) -> List[torch.nn.Module]:
    """The traced Neuron modules (those holding a `neff`) inside `model`."""
    artifacts(model)   # TypeError / ValueError for anything but a (module containing a) Neuron trace
    return [m for m in model.modules() if "neff" in dict(m.named_buffers(recurse=False))]


def _state_dict(weights) -> Mapping[str, torch.Tensor]:
    if isinstance(weights, torch.nn.Module):
        return weights.state_dict()
    if isinstance(weights, Mapping):
        bad = next((k for k, v in weights.items() if not isinstance(v, torch.Tensor)), None)
        if bad is not None:
            raise TypeError(f"replace_weights: weight {bad!r} is a {type(weights[bad]).__name__}, expected a tensor")
        return weights
    raise TypeError(f"replace_weights: weights must be a torch.nn.Module or a state dict (Dict[str, Tensor]), got "
                    f"{type(weights).__name__}")


def _plan(module: torch.nn.Module, new: Mapping[str, torch.Tensor]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """(the trace's parameter, its new value) for every weight of one traced module; ValueError naming the first
    missing or misshaped weight."""
    header, _ = artifact.deserialize(module.neff, "replace_weights")
    params = dict(module.named_parameters())
    pairs = []
    for j, names in enumerate(header.get("weights", [])):
        p = params.get(f"weights.{j}")
        if p is None:
            raise ValueError(f"replace_weights: the traced module has no parameter weights.{j} for weight "
                             f"{names[0]!r}; it does not match its compiled graph")
        name = next((n for n in names if n in new), None)
        if name is None:
            raise ValueError(f"replace_weights: weight {names[0]!r} (shape {list(p.shape)}) is missing from the new "
                             f"weights")
        w = new[name]
        if tuple(w.shape) != tuple(p.shape):
            raise ValueError(f"replace_weights: weight {name!r} has shape {list(w.shape)}, but the model was traced "
                             f"with shape {list(p.shape)}")
        if not w.is_floating_point():
            raise ValueError(f"replace_weights: weight {name!r} has dtype {w.dtype}, expected a floating-point "
                             f"tensor (traced as {p.dtype})")
        pairs.append((p, w))
    return pairs


def replace_weights(neuron_model, weights: Union[torch.nn.Module, Dict[str, torch.Tensor]]) -> None:
    """Replace the weights of `neuron_model` (traced with inline_weights_to_neff=False) by `weights`, in place."""
    new = _state_dict(weights)
    plans = [_plan(m, new) for m in _traced_modules(neuron_model)]
    if not any(plans):
        warnings.warn(INLINED_WARNING, UserWarning, stacklevel=2)
        return
    with torch.no_grad():   # every weight was checked above: now copy (converting dtype) in place
        for pairs in plans:
            for p, w in pairs:
                p.copy_(w)
