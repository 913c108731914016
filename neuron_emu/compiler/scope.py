"""Module scopes for captured nodes: which submodule's forward an ATen op ran in.

TorchScript names a traced node by its module scope (`Model/Sequential[model]/Detect[24]`); the Inf1
`subgraph_builder_function` examples test `'Detect' not in node.name`. `module_scopes(model)` installs
forward hooks on every submodule for the duration of a capture, and capture stamps `current()` on each Node."""
from __future__ import annotations

import contextlib
from typing import List

import torch

_stack: List[str] = []


def current() -> str:
    return "/".join(_stack)


@contextlib.contextmanager
def module_scopes(model):
    if not isinstance(model, torch.nn.Module):
        yield
        return
    handles = []
    for qual, mod in model.named_modules():
        entry = type(mod).__name__ if not qual else f"{type(mod).__name__}[{qual.rsplit('.', 1)[-1]}]"

        def pre(_m, _args, entry=entry):
            _stack.append(entry)

        def post(_m, _args, _out):
            if _stack:
                _stack.pop()

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post, always_call=True))
    depth = len(_stack)
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        del _stack[depth:]
