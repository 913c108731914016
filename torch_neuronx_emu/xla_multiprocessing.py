"""Mirror of `torch_xla.distributed.xla_multiprocessing` (imported as `xmp`): `spawn` runs the function as
replica 0 in this process. Several processes (one per NeuronCore) are not emulated: nprocs other than None/1 is
refused, as PJRT refuses an nprocs the runtime does not support."""
from __future__ import annotations


def spawn(fn, args=(), nprocs=None, join: bool = True, daemon: bool = False, start_method: str = "spawn"):
    if nprocs not in (None, 1):
        raise ValueError(f"Unsupported nprocs ({nprocs}): the emulator runs one process (world size 1); pass "
                         f"nprocs=None or 1, or select NeuronCores with NEURON_RT_VISIBLE_CORES")
    return fn(0, *args)
