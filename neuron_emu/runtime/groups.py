"""NEURONCORE_GROUP_SIZES (Inf1, deprecated; docs/reference/neuron-api.md 1.8): contiguous groups of the visible
NeuronCores (`'2,2'`: cores 0-1 and 2-3); models are placed into the groups in load order, a pipeline model's
stage i on the i-th core of its group. ASSUMPTION: when every group has a model, placement wraps around to the
first group again (the docs don't say); a model with more stages than its group has cores spans the next ones."""
from __future__ import annotations

import os
import threading
import weakref
from typing import List, Optional

_lock = threading.Lock()
_state: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # runtime -> [next group, {model key: group}]


def group_sizes(n_cores: int) -> Optional[List[int]]:
    raw = os.environ.get("NEURONCORE_GROUP_SIZES")
    if raw is None or not raw.strip():
        return None
    try:
        sizes = [int(p) for p in raw.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(s < 1 for s in sizes):
        raise RuntimeError(f"NEURONCORE_GROUP_SIZES={raw!r} is not a comma-separated list of positive core counts")
    if sum(sizes) > n_cores:
        raise RuntimeError(f"NEURONCORE_GROUP_SIZES={raw!r} asks for {sum(sizes)} NeuronCores, but {n_cores} are "
                           f"visible to this process")
    return sizes


def core_for(rt, model_key, stage: int) -> Optional[int]:
    """The core of stage `stage` of the model `model_key` under NEURONCORE_GROUP_SIZES, None when it is unset."""
    sizes = group_sizes(len(rt.cores))
    if sizes is None:
        return None
    with _lock:
        st = _state.setdefault(rt, [0, {}])
        g = st[1].get(model_key)
        if g is None:
            g = st[0] % len(sizes)
            st[0] = g + 1
            st[1][model_key] = g
    return (sum(sizes[:g]) + stage) % len(rt.cores)
