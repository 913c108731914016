"""Mirror of `torch_xla.distributed.parallel_loader`: loaders that move each batch to the device and mark a step
per batch (so the user's loop needs no mark_step of its own)."""
from __future__ import annotations

import torch
from torch.utils._pytree import tree_map

from neuron_emu import lazy


def _to(batch, device):
    return tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) else t, batch)


class PerDeviceLoader:
    def __init__(self, loader, device):
        self._loader = loader
        self._device = device

    def __iter__(self):
        first = True
        for batch in self._loader:
            if not first:
                lazy.mark_step(wait=False)   # (torch_xla marks the step asynchronously)
            first = False
            yield _to(batch, self._device)
        if not first:
            lazy.mark_step(wait=False)

    def __len__(self):
        return len(self._loader)


class ParallelLoader:
    def __init__(self, loader, devices, batchdim: int = 0, batches_per_execution: int = 1, **kwargs):
        self._loader = loader
        self._devices = [torch.device(d) for d in devices]

    def per_device_loader(self, device):
        return PerDeviceLoader(self._loader, device)


class MpDeviceLoader:
    """Wraps a DataLoader: batches arrive on `device`; a mark_step runs after each batch's step."""

    def __init__(self, loader, device, **kwargs):
        self._loader = loader
        self._device = device
        self._kwargs = kwargs

    def __iter__(self):
        return iter(PerDeviceLoader(self._loader, self._device))

    def __len__(self):
        return len(self._loader)
