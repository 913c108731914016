"""`torch.neuron`: the device's runtime module, which torch consults (seeding, availability) and libraries call as
they call `torch.cuda` (accelerate and transformers: `empty_cache`, `synchronize`, the RNG state, the device name).
torch_neuron_emu adds the Inf1 API to this same module (`torch.neuron.trace`), as one namespace serves both in this
process. Device random ops draw from the CPU generator, so the RNG state is the CPU generator's."""
from __future__ import annotations

import types

import torch

_current = [0]


def _count() -> int:
    from neuron_emu.lazy.device import device_count   # (device.py imports this module)
    return device_count()


def _index(device) -> int:
    if device is None:
        return _current[0]
    from neuron_emu.lazy.device import checked_index
    return checked_index(device if isinstance(device, int) else (torch.device(device).index or 0))


def set_device(device) -> None:
    _current[0] = _index(device)


def synchronize(device=None) -> None:
    """Wait for the device's queued steps (xm.wait_device_ops)."""
    from neuron_emu.lazy import device_queue
    device_queue.wait()


def get_device_name(device=None) -> str:
    from neuron_emu.runtime.placement import runtime_for
    core = runtime_for(2).cores[_index(device)]
    return f"NeuronCore-v{core.generation} (emulated)"


def _manual_seed(seed) -> None:
    """Device draws use the CPU generator: seeding the device seeds it (`torch.neuron.manual_seed(s)` alone makes them
    reproducible, as torch.cuda.manual_seed does; torch.manual_seed calls manual_seed_all with the seed it set)."""
    torch.default_generator.manual_seed(int(seed))


def _memory_stats(*args, **kwargs):
    raise NotImplementedError("torch.neuron memory statistics: the emulated device does not account its tensors' "
                              "buffers (neuron-emu monitor reports the memory of loaded programs)")


def module() -> types.ModuleType:
    m = types.ModuleType("torch.neuron")
    m.is_available = lambda: True
    m.is_initialized = lambda: True
    m.is_bf16_supported = lambda: True
    m.get_amp_supported_dtype = lambda: [torch.bfloat16, torch.float16, torch.float32]   # (torch.autocast asks)
    m.device_count = _count
    m.current_device = lambda: _current[0]
    m.set_device = set_device
    m.synchronize = synchronize
    m.get_device_name = get_device_name
    m.empty_cache = lambda: None   # (nothing is cached: a device buffer is freed with its last tensor)
    m.memory_allocated = m.max_memory_allocated = m.reset_peak_memory_stats = _memory_stats
    m._is_in_bad_fork = lambda: False
    m.manual_seed = m.manual_seed_all = _manual_seed
    m.seed = m.seed_all = lambda: None
    m.get_rng_state = lambda device=None: torch.get_rng_state()
    m.set_rng_state = lambda state, device=None: torch.set_rng_state(state)
    m.get_rng_state_all = lambda: [torch.get_rng_state()]
    m.set_rng_state_all = lambda states: torch.set_rng_state(states[0])
    return m
