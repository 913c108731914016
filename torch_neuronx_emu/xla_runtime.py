"""Mirror of `torch_xla.runtime` (imported as `xr`) for one process driving the visible NeuronCores through PJRT,
as torch-neuronx does: a world of one process, ordinal 0. SPMD (one program sharded over devices) is not emulated."""
from __future__ import annotations

from torch_neuronx_emu import xla_model, xla_spmd


def device_type() -> str:
    return "NEURON"


def using_pjrt() -> bool:
    return True


def world_size() -> int:
    return 1


def global_ordinal() -> int:
    return 0


def local_ordinal() -> int:
    return 0


def process_index() -> int:
    return 0


def process_count() -> int:
    return 1


def local_process_count() -> int:
    return 1


def addressable_device_count() -> int:
    return len(xla_model.get_xla_supported_devices())


def global_device_count() -> int:
    return addressable_device_count()


def global_runtime_device_count() -> int:
    return addressable_device_count()


def is_spmd() -> bool:
    return False


def use_spmd(auto: bool = False) -> None:
    xla_spmd.unsupported("torch_xla.runtime.use_spmd")
