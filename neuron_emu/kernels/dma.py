"""DMA kernel-level API: strided copies between views and the cost of constant loads. Each returns its cost.

Cost (ns): spec.dma_fixed_ns + bytes / (dma_engines * dma_bytes_per_ns_per_engine); see csrc/dma.cpp.
IoIn / IoOut (host <-> device dtype conversion) run only inside compiled Programs.
"""
from __future__ import annotations

from typing import Optional

import torch

from neuron_emu.isa import DmaQueue, Instr, Op
from neuron_emu.kernels._run import check_tensor, output_for, run
from neuron_emu.kernels.vector_engine import elementwise_instr

_QUEUES = {"hbm_to_sbuf": DmaQueue.HbmToSbuf, "sbuf_to_hbm": DmaQueue.SbufToHbm,
           "sbuf_to_sbuf": DmaQueue.SbufToSbuf, "hbm_to_hbm": DmaQueue.HbmToHbm}


def _queue(q, fn):
    if isinstance(q, DmaQueue):
        return q
    if isinstance(q, str) and q.lower() in _QUEUES:
        return _QUEUES[q.lower()]
    raise ValueError(f"{fn}: argument 'queue' must be one of {sorted(_QUEUES)}, got {q!r}")


def copy(src, dst: Optional[torch.Tensor] = None, elem_bytes: int = 4, queue="hbm_to_sbuf"):
    """Copy the (strided) view `src` into `dst` (a new contiguous tensor when None; else a view of the same
    shape written in place). `elem_bytes` is the element size the transfer is charged for (bf16: 2)."""
    fn = "dma.copy"
    check_tensor(src, "src", fn)
    if elem_bytes not in (1, 2, 4, 8):
        raise ValueError(f"{fn}: argument 'elem_bytes' must be 1, 2, 4 or 8, got {elem_bytes!r}")
    q = _queue(queue, fn)
    dst = output_for(src, dst, fn, "dst", "src")
    cost = elementwise_instr(Op.DmaCopy, fn, [("src", src)], dst, dict(queue=q, elem_bytes=int(elem_bytes)))
    return dst, cost


def load_cost(nbytes: int, queue="hbm_to_sbuf", generation: int = 2):
    """Cost of loading a constant of `nbytes` bytes (DmaLoad; no data moves in the emulator)."""
    fn = "dma.load_cost"
    if not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"{fn}: argument 'nbytes' must be a non-negative int, got {nbytes!r}")
    dummy = torch.zeros(1, dtype=torch.float32)
    return run(Instr(Op.DmaLoad, [], dict(bytes=nbytes, queue=_queue(queue, fn))), [("const", dummy)],
               generation=generation)
