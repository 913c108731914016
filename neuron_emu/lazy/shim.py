"""`import torch_xla...` for user scripts run by the launcher: installs sys.modules aliases of the torch_xla module
names to the emulator's mirrors (torch_xla.core.xla_model, torch_xla.debug.metrics, torch_xla.runtime,
torch_xla.distributed.parallel_loader, .xla_multiprocessing, .spmd and .xla_backend, torch_xla.utils.utils, and
torch_xla.device()/sync())."""
from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types


def install_torch_xla_aliases() -> None:
    """Make `import torch_xla`, `torch_xla.core.xla_model as xm`, `torch_xla.debug.metrics as met` and
    `torch_xla.distributed.parallel_loader as pl` resolve to the emulator. Does nothing if already installed."""
    if getattr(sys.modules.get("torch_xla"), "__neuron_emu__", False):
        return
    import torch

    from neuron_emu import lazy
    from torch_neuronx_emu import debug_metrics, parallel_loader, xla_model, xla_multiprocessing, xla_runtime, \
        xla_spmd, xla_utils

    def pkg(name):
        m = types.ModuleType(name)
        m.__path__ = []
        # a spec, as an imported package has: libraries probe with importlib.util.find_spec("torch_xla"), which
        # raises ValueError for a module in sys.modules without one (transformers does at import)
        m.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        m.__neuron_emu__ = True
        sys.modules[name] = m
        return m

    root = pkg("torch_xla")
    root.__version__ = torch.__version__.split("+")[0]   # (torch_xla releases track torch's)
    root.device = lambda index=None: xla_model.xla_device(index)
    root.sync = lambda wait=False: xla_model.mark_step(wait)
    root.devices = lambda: [lazy.device(i) for i in range(len(xla_model.get_xla_supported_devices()))]
    root.device_count = lambda: len(xla_model.get_xla_supported_devices())
    core, debug, dist = pkg("torch_xla.core"), pkg("torch_xla.debug"), pkg("torch_xla.distributed")
    root.core, root.debug, root.distributed = core, debug, dist
    core.xla_model = sys.modules["torch_xla.core.xla_model"] = xla_model
    debug.metrics = sys.modules["torch_xla.debug.metrics"] = debug_metrics
    dist.parallel_loader = sys.modules["torch_xla.distributed.parallel_loader"] = parallel_loader
    dist.spmd = sys.modules["torch_xla.distributed.spmd"] = xla_spmd
    dist.xla_backend = sys.modules["torch_xla.distributed.xla_backend"] = importlib.import_module(
        "torch_neuronx_emu.xla_backend")   # (registers the backend: imported only when torch_xla is aliased)
    dist.xla_multiprocessing = sys.modules["torch_xla.distributed.xla_multiprocessing"] = xla_multiprocessing
    root.runtime = sys.modules["torch_xla.runtime"] = xla_runtime
    root.utils = pkg("torch_xla.utils")
    root.utils.utils = sys.modules["torch_xla.utils.utils"] = xla_utils
