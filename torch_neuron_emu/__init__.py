"""Emulation of `torch_neuron` (Inferentia1, NeuronCore-v1) on CPU: the partitioner with CPU fallback
(partition.py over neuron_emu/partitioner/), the published operator list (supported_ops.py), neuron-cc's
`--fast-math` rules (trace.py). Importing it makes `torch.neuron` available, as `import torch_neuron` does."""
import torch

from neuron_emu.lazy.device import device_type as _device_type
from torch_neuron_emu.trace import trace  # noqa: F401
from torch_neuron_emu.partition import analyze_model  # noqa: F401
from torch_neuron_emu.data_parallel import DataParallel  # noqa: F401
from torch_neuron_emu.pipeline import pipeline_report  # noqa: F401
from torch_neuron_emu.supported_ops import get_supported_operations  # noqa: F401
from neuron_emu.runtime import last_call  # noqa: F401
from torch_neuron_emu.profile import profile  # noqa: F401
from torch_neuron_emu.optimizations import Optimization  # noqa: F401

hint = trace  # the seed article's spelling


def is_available() -> bool:
    """The emulated runtime is always available."""
    return True


# `import torch_neuron` registers the `torch.neuron` namespace [api 1]. That name is also the emulated device's runtime
# module (neuron_emu/lazy/device.py), so the Inf1 API is added to that one module rather than replacing it.
_device_type()
for _name in ("trace", "hint", "analyze_model", "DataParallel", "get_supported_operations", "is_available",
              "Optimization", "profile", "pipeline_report"):
    setattr(torch.neuron, _name, globals()[_name])
