"""The compiler's IR: the graph every front end hands to `compile_graph`.

Contract (what a front end must provide; nothing here needs the model to have run):
  - `inputs`: one Value per model input, kind "input", `index` = its position, shape and dtype set.
  - `nodes`: in execution order. `target` is a functional (non-mutating) ATen OpOverload (`aten.mm.default`);
    `args`/`kwargs` are the op's arguments as a pytree whose tensor leaves are Values (other leaves are
    plain Python values: ints, floats, lists, dtypes); `outputs` are the Values it produces, one per
    tensor leaf of the op's result, each with `node` pointing back at it and its shape/dtype set;
    `where` is the user's source location ("file.py:12 in forward"), quoted in error messages.
  - constants (weights, buffers, captured tensors): Values of kind "const" holding the tensor in `const`.
  - `outputs`: the flat tensor outputs (any Value), and `out_spec`, the pytree spec that rebuilds the
    user's output structure from them.
  - seeded random ops (`rand`, `bernoulli`, `native_dropout`, ...): `rng_state` on the node if the front
    end pins the draw (see fold.py); leave it None otherwise.
Values computed by the front end (activations) are never part of the IR: folding recomputes what it
needs from constants. `Graph.validate` checks the structural part of this contract.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch
from torch.utils import _pytree as pytree


class GraphError(ValueError):
    """A front end built a graph that breaks the IR contract (message names the node)."""


@dataclass
class Value:
    """A tensor in the graph: a model input, a constant, or a node output."""
    id: int                            # unique within the graph
    shape: tuple
    dtype: torch.dtype
    kind: str                          # "input" | "const" | "node"
    index: int = -1                    # inputs: position in the model's arguments
    const: Optional[torch.Tensor] = None   # constants: the tensor
    node: Optional["Node"] = None      # node outputs: the producer


@dataclass
class Node:
    """One ATen op applied to Values."""
    target: Any                        # torch._ops.OpOverload
    args: Any                          # pytree with Value leaves for tensors
    kwargs: dict
    outputs: List[Value]
    where: str                         # user source location, for error messages
    index: int = 0                     # position in the front end's recording (informational)
    # seeded random ops only: the CPU generator state to draw with, so that folding reproduces the
    # draw the front end saw; None means the draw is not pinned and the node must not be folded
    rng_state: Optional[torch.Tensor] = None
    scope: str = ""                    # module scope it ran in (compiler/scope.py), e.g. "Net/Linear[fc]"

    @property
    def name(self) -> str:
        return op_name(self.target)

    def value_args(self) -> List[Value]:
        """The Values among args and kwargs, in pytree order."""
        return [a for a in pytree.tree_leaves((self.args, self.kwargs)) if isinstance(a, Value)]


def op_name(target) -> str:
    """'aten::addmm' style name, as the Neuron tools print operators."""
    schema = getattr(target, "_schema", None)
    return schema.name if schema is not None else str(target)


@dataclass
class Graph:
    inputs: List[Value]
    nodes: List[Node]
    outputs: List[Value]               # flat outputs (tensors only)
    out_spec: Any                      # pytree spec to rebuild the user's output structure
    warnings: List[str] = field(default_factory=list)   # front-end warnings (e.g. specialised Python values)
    # inline_weights_to_neff=False: the last len(weight_names) inputs are the model's weights, fed at every call;
    # each entry lists that weight's state-dict names (several for a tied weight)
    weight_names: List[List[str]] = field(default_factory=list)

    def validate(self) -> None:
        """Raise GraphError, naming the node, unless every Value is defined before it is used and typed."""
        defined: dict = {}

        def define(v: Value, what: str) -> None:
            if not isinstance(v, Value):
                raise GraphError(f"{what} is a {type(v).__name__}, not a Value")
            if not isinstance(v.shape, tuple) or not isinstance(v.dtype, torch.dtype):
                raise GraphError(f"{what} (%{v.id}) needs a shape tuple and a torch.dtype, has {v.shape!r}, {v.dtype!r}")
            if v.id in defined and defined[v.id] is not v:
                raise GraphError(f"{what}: id %{v.id} is used by two different Values")
            defined[v.id] = v

        def use(v: Value, what: str) -> None:
            if v.kind == "const":
                if not isinstance(v.const, torch.Tensor):
                    raise GraphError(f"{what}: constant %{v.id} holds no tensor")
                if tuple(v.const.shape) != v.shape or v.const.dtype != v.dtype:
                    raise GraphError(f"{what}: constant %{v.id} is declared {v.dtype}{list(v.shape)} but holds "
                                     f"{v.const.dtype}{list(v.const.shape)}")
                define(v, what)
            elif defined.get(v.id) is not v:
                raise GraphError(f"{what} uses %{v.id} ({v.kind}), which is not a graph input, a constant, or "
                                 f"an output of an earlier node")

        for i, v in enumerate(self.inputs):
            if not isinstance(v, Value) or v.kind != "input" or v.index != i:
                raise GraphError(f"graph input {i} must be a Value of kind 'input' with index {i}, got {v!r:.200}")
            define(v, f"graph input {i}")
        for k, n in enumerate(self.nodes):
            what = f"node {k} ({n.name} at {n.where})"
            if not isinstance(n.target, torch._ops.OpOverload):
                raise GraphError(f"{what}: target must be an ATen OpOverload, got {type(n.target).__name__}")
            if n.target._schema.is_mutable:
                raise GraphError(f"{what}: the IR is functional; use the out-of-place op instead of a mutating one")
            for a in n.value_args():
                use(a, what)
            for o in n.outputs:
                define(o, f"{what} output")
                if o.node is not n or o.kind not in ("node", "const"):  # "const": folded by an earlier compile
                    raise GraphError(f"{what}: output %{o.id} must be of kind 'node' with .node set to this node")
        for i, v in enumerate(self.outputs):
            use(v, f"graph output {i}")
