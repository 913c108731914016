"""trace(dynamic_batch_size=True) (docs/reference/neuron-api.md 1.1, 1.2: "hardware always runs the compiled batch
size; dynamic batching slices inputs into compiled-size chunks"): a call whose inputs have another size in dim 0
runs as ceil(N / B) calls at the compiled batch B (the last chunk padded with zeros) whose outputs are concatenated
along dim 0 and trimmed to N; outputs without the batch in dim 0 come from the first chunk (as runtime/batching.py).

The whole traced module is chunked, CPU ops between Neuron subgraphs included: our partitioned module records its
CPU ops with the traced sizes (capture specialises a reshape's sizes), so a different batch could not flow through
them. (The real torch-neuron slices at each Neuron op and runs TorchScript's CPU ops on the whole batch: the same
results for a model whose rows are independent, which dynamic batching presumes.)

Kept through torch.jit.save: every artifact's header carries `{"batch": B, "inputs": [shapes]}` (`HEADER`), and
`install` runs again on each module torch.jit.load returns (runtime/origins.py load_hooks), as torch-neuron's own
jit_load_wrapper inspects loaded graphs."""
from __future__ import annotations

import weakref
from typing import List, Optional

import torch
from torch.utils import _pytree as pytree

from neuron_emu.compiler import artifact
from neuron_emu.runtime import origins
from neuron_emu.runtime.batching import check_batch

HEADER = "dynamic_batch_size"
_OURS = {"NeuronModule", "PartitionedModule"}   # the module classes a torch_neuron trace returns
_installed: "weakref.WeakKeyDictionary[torch.nn.Module, bool]" = weakref.WeakKeyDictionary()


def header_fields(inputs: tuple) -> dict:
    """The header field for a model traced on `inputs` (ValueError unless every input has the same dim 0)."""
    tensors = [x for x in pytree.tree_leaves(inputs) if isinstance(x, torch.Tensor)]
    sizes = {x.shape[0] if x.dim() else None for x in tensors}
    if not tensors or None in sizes or len(sizes) != 1:
        raise ValueError("dynamic_batch_size=True needs every example input to have the same size in dimension 0 "
                         f"(the batch dimension), got shapes {[list(x.shape) for x in tensors]}")
    return {HEADER: {"batch": int(sizes.pop()), "inputs": [list(x.shape) for x in tensors]}}


def _spec(module) -> Optional[dict]:
    for name, b in module.named_buffers():
        if name.rsplit(".", 1)[-1] == "neff" and b.dtype == torch.uint8:
            return artifact.deserialize(b)[0].get(HEADER)
    return None


def install(module) -> None:
    """Give a torch_neuron trace (fresh or loaded) whose artifacts ask for it the chunking forward; else nothing."""
    if module in _installed or getattr(module, "original_name", type(module).__name__) not in _OURS:
        return
    spec = _spec(module)
    if spec is None:
        return
    batch, shapes = int(spec["batch"]), [torch.Size(s) for s in spec["inputs"]]
    real = module.forward   # the TorchScript method (holds no reference to the module: no cycle)

    def forward(*args):
        tensors = [x for x in pytree.tree_leaves(args) if isinstance(x, torch.Tensor)]
        if len(tensors) != len(shapes) or all(x.shape == s for x, s in zip(tensors, shapes)):
            return real(*args)   # the compiled batch (or a call the module's own checks will report)
        n = check_batch(shapes, tensors)
        if n == 0:
            raise ValueError("Dynamic batching: the inputs have batch size 0")

        def chunk(start):
            def cut(x):
                if not isinstance(x, torch.Tensor):
                    return x
                c = x[start:start + batch]
                return torch.cat([c, c.new_zeros((batch - c.shape[0],) + tuple(c.shape[1:]))]) if len(c) < batch else c
            return real(*pytree.tree_map(cut, args))
        results = [chunk(s) for s in range(0, n, batch)]
        leaves: List[list] = [pytree.tree_flatten(r)[0] for r in results]
        spec_out = pytree.tree_flatten(results[0])[1]
        out = [torch.cat([c[j] for c in leaves])[:n] if isinstance(y, torch.Tensor) and y.dim() and y.shape[0] == batch
               else y for j, y in enumerate(leaves[0])]
        return pytree.tree_unflatten(out, spec_out)

    module.forward = forward
    _installed[module] = True


origins.load_hooks.append(install)
