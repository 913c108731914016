"""Drop-in emulation of `torch_neuronx` (Inferentia2 / Trainium, NeuronCore-v2) on CPU."""
from torch_neuronx_emu.trace import trace, hint  # noqa: F401
from torch_neuronx_emu import experimental  # noqa: F401
from torch_neuronx_emu.experimental.placement import (move_trace_to_device, multicore_context,  # noqa: F401
                                                      neuron_cores_context, set_multicore, set_neuron_cores)
from torch_neuronx_emu.batching import dynamic_batch  # noqa: F401
from torch_neuronx_emu.data_parallel import DataParallel  # noqa: F401
from torch_neuronx_emu.loading import async_load, lazy_load  # noqa: F401
from torch_neuronx_emu.weights import replace_weights  # noqa: F401
from torch_neuronx_emu.bucketing import BucketModelConfig, bucket_model_trace  # noqa: F401
from torch_neuronx_emu.analyze import analyze  # noqa: F401
from torch_neuronx_emu.partitioner_config import PartitionerConfig  # noqa: F401
from torch_neuronx_emu.partitioning import partition  # noqa: F401
from neuron_emu.runtime import last_call  # noqa: F401
from torch_neuronx_emu.profile import profile  # noqa: F401

__all__ = ["trace", "hint", "dynamic_batch", "DataParallel", "lazy_load", "async_load", "experimental", "set_neuron_cores", "set_multicore",
           "neuron_cores_context", "multicore_context", "move_trace_to_device", "last_call",
           "replace_weights", "BucketModelConfig", "bucket_model_trace",
           "analyze", "PartitionerConfig", "partition", "profile"]

# The lazy device (xla_model.xla_device()) is registered at import, as the real import of torch_xla registers its
# device: PyTorch's autograd engine sizes its per-device queues once, at the first backward of the process, so a
# device registered after a backward has run cannot take part in autograd.
from neuron_emu.lazy.device import device_type as _lazy_device_type  # noqa: E402
_lazy_device_type()
