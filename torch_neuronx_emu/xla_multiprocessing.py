"""Mirror of `torch_xla.distributed.xla_multiprocessing` (imported as `xmp`): `spawn` runs the function in this
process as ordinal 0 (world size 1). Several processes, one per NeuronCore, are not emulated."""
from __future__ import annotations


def spawn(fn, args=(), nprocs=None, join: bool = True, daemon: bool = False, start_method: str = "spawn"):
    if nprocs not in (None, 1):
        raise NotImplementedError(f"xmp.spawn(nprocs={nprocs}): neuron-emu runs one process (world size 1); use "
                                  f"nprocs=None or 1, or several devices in one process (xm.xla_device(n))")
    return fn(0, *args)
