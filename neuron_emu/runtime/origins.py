"""Where an artifact tensor came from, so that a corrupt model's error names its file.

`neuron::forward_v2` receives only the artifact tensor (a traced module's `neff` buffer); the file it was read
from is known only to `torch.jit.load`. This module wraps `torch.jit.load` (once, at import of the runtime; it is
also what `torch.load` dispatches to for a TorchScript archive) to note, weakly, the origin of every `neff`
buffer in the module it returns: the path (or the file object's name), plus the submodule when the artifact is
not at the top. Besides the `load_hooks` front ends register, the wrapper changes nothing else about the load."""
from __future__ import annotations

import functools
import os

import torch
from torch.utils.weak import WeakIdKeyDictionary

_origins = WeakIdKeyDictionary()   # artifact tensor -> "file.pt" / "file.pt (submodule encoder)"
DEFAULT = "model"


def origin(blob: torch.Tensor) -> str:
    """The artifact's origin for error messages: its file when it came from torch.jit.load, else "model"."""
    return _origins.get(blob, DEFAULT)


def describe_source(f) -> str:
    """How torch.jit.load's `f` is named in errors: the path, or the file object's name, or its type."""
    if isinstance(f, (str, os.PathLike)):
        return os.fsdecode(f)
    name = getattr(f, "name", None)
    if isinstance(name, (str, bytes, os.PathLike)):
        return os.fsdecode(name)
    return f"<{type(f).__name__} passed to torch.jit.load>"


def note(module, source: str) -> None:
    """Record `source` as the origin of each artifact buffer of a loaded module."""
    try:
        buffers = list(module.named_buffers())
    except Exception:   # not a module we can walk (torch.jit.load only returns ScriptModules): nothing to note
        return
    for name, b in buffers:
        if name.rsplit(".", 1)[-1] == "neff" and isinstance(b, torch.Tensor) and b.dtype == torch.uint8:
            sub = name.rpartition(".")[0]
            _origins[b] = f"{source} (submodule {sub})" if sub else source


# f(module) called on every module torch.jit.load returns, after the origins are noted: a front end restores there
# what its saved artifacts ask of the Python side (torch_neuron_emu's dynamic_batch_size)
load_hooks = []


def _install() -> None:
    real = torch.jit.load
    if getattr(real, "_neuron_emu_origins", False):
        return

    @functools.wraps(real)
    def load(f, *args, **kwargs):
        module = real(f, *args, **kwargs)
        note(module, describe_source(f))
        for hook in load_hooks:
            hook(module)
        return module

    load._neuron_emu_origins = True
    torch.jit.load = load


_install()
