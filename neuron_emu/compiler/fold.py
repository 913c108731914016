"""Pass: constant folding and dead-code elimination.

A node none of whose tensor arguments depends on a model input is folded: its ATen op runs here, on CPU
under no_grad, on the constant tensors, and its outputs become constants holding the results. Nothing the
front end computed is used, so every front end (eager capture, lazy device, partitioner) folds alike and
no activation is kept.

Seeded random ops (tag `nondeterministic_seeded`: rand, randn, bernoulli, native_dropout, ...) on constants
fold only when the node carries `rng_state`, the generator state the front end drew with: the draw is
replayed on a forked generator, so the model holds exactly the values the front end saw (the eager capture
pins every draw, so a trace keeps the random values of its capture run fixed). A random node without it
would freeze an arbitrary draw into the model: that is a CompilationError, not a silent fold.

Functionalization's view-copy ops (`t_copy`, `view_copy`, ...) run as their view, so a folded weight shares
the weight's storage (one constant in the artifact) instead of being copied.

Nodes no output depends on are dropped."""
from __future__ import annotations

import functools
from typing import List, Optional

import torch
from torch.utils import _pytree as pytree

from neuron_emu.compiler.errors import CompilationError, compiler_name
from neuron_emu.compiler.ir import Graph, GraphError, Node, Value

_CPU = torch.device("cpu")


def fold_and_prune(graph: Graph) -> List[Node]:
    dependent = {v.id for v in graph.inputs}
    for n in graph.nodes:
        if any(a.id in dependent for a in n.value_args()):
            dependent.update(o.id for o in n.outputs)
        elif not all(o.kind == "const" for o in n.outputs):  # (already folded if compiled before)
            for o, t in zip(n.outputs, _evaluate(n)):
                o.kind, o.const = "const", t
    live = {v.id for v in graph.outputs}
    kept: List[Node] = []
    for n in reversed(graph.nodes):
        if n.outputs and n.outputs[0].kind == "const":
            continue
        if any(o.id in live for o in n.outputs):
            kept.append(n)
            live.update(a.id for a in n.value_args())
    kept.reverse()
    return kept


def _evaluate(n: Node) -> List[torch.Tensor]:
    """Run the node's op on its constant arguments; checks the results against the declared outputs."""
    def leaf(a):
        if isinstance(a, Value):
            return a.const
        return _CPU if isinstance(a, torch.device) else a
    args, kwargs = pytree.tree_map(leaf, (n.args, n.kwargs))
    with torch.no_grad():
        if torch.Tag.nondeterministic_seeded in n.target.tags:
            if n.rng_state is None:
                raise CompilationError(
                    f"{compiler_name()}: error: {n.name} (called from {n.where}) draws random numbers from constant inputs; "
                    "the front end did not pin the draw (Node.rng_state), so it cannot be folded into a constant")
            if isinstance(kwargs.get("generator"), torch.Generator):  # replay on a copy, not the user's generator
                kwargs["generator"] = torch.Generator().set_state(n.rng_state)
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(n.rng_state)
                out = n.target(*args, **kwargs)
        else:
            out = _run_as_view(n.target, args, kwargs)
            if out is None:
                out = n.target(*args, **kwargs)
    outs = [o for o in pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
    if len(outs) != len(n.outputs):
        raise GraphError(f"{n.name} at {n.where}: computes {len(outs)} tensors, the graph declares {len(n.outputs)}")
    for o, t in zip(n.outputs, outs):
        if tuple(t.shape) != tuple(o.shape) or t.dtype != o.dtype:
            raise GraphError(f"{n.name} at {n.where}: output %{o.id} is declared {o.dtype}{list(o.shape)}, "
                             f"the op computes {t.dtype}{list(t.shape)}")
    return outs


def _run_as_view(target, args, kwargs):
    """A view-copy op evaluated as its view (None when it has none, or the view cannot express it)."""
    view = _view_op(target)
    if view is None:
        return None
    try:
        return view(*args, **kwargs)
    except RuntimeError:  # e.g. view() on strides it cannot describe: the copy op handles it
        return None


@functools.lru_cache(maxsize=None)
def _view_op(target) -> Optional[torch._ops.OpOverload]:
    if torch.Tag.view_copy not in target.tags:
        return None
    name = target.overloadpacket.__name__
    packet = getattr(torch.ops.aten, name[:-len("_copy")], None) if name.endswith("_copy") else None
    return getattr(packet, target._overloadname, None) if packet is not None else None
