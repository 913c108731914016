"""torch.neuron.DataParallel(model, device_ids=None, dim=0) (docs/reference/neuron-api.md 1.6): the shared
implementation of torch_neuronx_emu.data_parallel (same documented semantics: a copy per NeuronCore, default
all visible cores, scatter on `dim`, dynamic batching on for dim 0) over the cores of an emulated Inf1 chip.
Not supported for NeuronCore-Pipeline models, as documented."""
from __future__ import annotations

from typing import Optional, Sequence

from neuron_emu.compiler import artifact
from torch_neuronx_emu.data_parallel import DataParallel as _DataParallel
from torch_neuronx_emu.experimental.placement import artifacts


class DataParallel(_DataParallel):
    def __init__(self, module, device_ids: Optional[Sequence] = None, dim: int = 0):
        for blob in artifacts(module):
            if artifact.deserialize(blob)[0].get("pipeline_cores", 1) > 1:
                raise ValueError("DataParallel is not supported for NeuronCore-Pipeline models (compiled with "
                                 "--neuroncore-pipeline-cores > 1)")
        super().__init__(module, device_ids=device_ids, dim=dim)
