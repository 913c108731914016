"""Import shims for `neuron-emu run`: the real SDK's module names resolve to the emulator's modules, so an
unmodified script's `import torch_neuron`, `import torch_neuronx` (and their submodules) get ours; `torch_xla.*`
aliases come from the lazy-device package when it is installed (neuron_emu.lazy.shim)."""
from __future__ import annotations

import importlib
import pkgutil
import sys

ALIASES = {"torch_neuronx": "torch_neuronx_emu", "torch_neuron": "torch_neuron_emu"}


def _alias_package(alias: str, target: str) -> None:
    pkg = importlib.import_module(target)
    sys.modules[alias] = pkg
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), prefix=target + "."):
        try:
            mod = importlib.import_module(info.name)
        except ImportError:
            continue
        sys.modules[alias + info.name[len(target):]] = mod


def install() -> bool:
    """Install the aliases; returns whether torch_xla aliases were installed too."""
    for alias, target in ALIASES.items():
        _alias_package(alias, target)
    try:
        shim = importlib.import_module("neuron_emu.lazy.shim")
    except ImportError:
        return False
    shim.install_torch_xla_aliases()
    return True
