"""ATen op -> engine-instruction lowerings, one module per op family. `LOWERINGS` maps OpOverloads
(and OpOverloadPackets, as a fallback) to functions `fn(builder, node, *args, **kwargs)` whose
tensor arguments are TVs; they return a TV, or a tuple with None for outputs they don't produce.
`builder.used_values` holds the ids of the values some node or graph output reads, so a lowering can skip an
output that is costly and unread (e.g. attention's logsumexp)."""
from __future__ import annotations

from typing import Callable, Dict

LOWERINGS: Dict[object, Callable] = {}


def register(*targets):
    def deco(fn):
        for t in targets:
            LOWERINGS[t] = fn
        return fn
    return deco


def lookup(target):
    fn = LOWERINGS.get(target)
    if fn is None:
        fn = LOWERINGS.get(getattr(target, "overloadpacket", None))
    return fn


def supported_ops():
    names = set()
    for t in LOWERINGS:
        schema = getattr(t, "_schema", None)
        names.add(schema.name if schema is not None else f"aten::{getattr(t, '__name__', str(t))}")
    return sorted(names)


from neuron_emu.compiler.lowering import (  # noqa: E402,F401  (registration side effects)
    attention, elementwise, indexing, matmul, norm, pool, reduce, views)
from neuron_emu.compiler.lowering import (  # noqa: E402,F401  (coverage families, issue 7)
    activations, conv, losses, math, norm_statistics, ranking, resample, scatter, shape, statistics)
