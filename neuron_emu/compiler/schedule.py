"""Pass: weight prefetch and dependencies.

Constants live in device memory (HBM); before its first use each is brought to SBUF by a
DmaLoad. Loads are double-buffered: load k may start once the first consumer of load k-2 has
started, so DMA runs ahead of compute by two weights, not the whole model. Dependencies are
read-after-write, write-after-write and write-after-read on buffers, plus memory-reuse hazards."""
from __future__ import annotations

from typing import Dict, List, Set

from neuron_emu.compiler.builder import CONSTANT, ProgramBuilder
from neuron_emu.dtypes import DTYPE_BYTES
from neuron_emu.isa import DmaQueue, DType, Instr, Op



def insert_weight_loads(b: ProgramBuilder) -> None:
    instrs, reads, writes = [], [], []
    loaded: Set[int] = set()
    load_consumers: List[int] = []  # new index of the first consumer of each load
    for ins, rs, ws in zip(b.instrs, b.reads, b.writes):
        for buf in rs:
            if b.buf_kind[buf] == CONSTANT and buf not in loaded and ins.op not in (Op.IoOut,):
                loaded.add(buf)
                nbytes = b.buf_numel[buf] * DTYPE_BYTES[b.const_emu.get(buf, DType.F32)]
                load = Instr(Op.DmaLoad, [buf], dict(bytes=nbytes, queue=DmaQueue.HbmToSbuf), src=ins.src)
                k = len(load_consumers)
                if k >= 2 and load_consumers[k - 2] >= 0:  # -1: same consumer as this load
                    load.deps.append(load_consumers[k - 2])
                instrs.append(load)
                reads.append([buf])
                writes.append([])
                load_consumers.append(-1)
        for j in range(len(load_consumers)):
            if load_consumers[j] == -1:
                load_consumers[j] = len(instrs)
        instrs.append(ins)
        reads.append(rs)
        writes.append(ws)
    b.instrs, b.reads, b.writes = instrs, reads, writes


def compute_deps(b: ProgramBuilder, extra: Dict[int, Set[int]]) -> None:
    writers: Dict[int, List[int]] = {}
    readers: Dict[int, List[int]] = {}
    for i, (ins, rs, ws) in enumerate(zip(b.instrs, b.reads, b.writes)):
        deps: Set[int] = set(ins.deps)
        for buf in rs:
            deps.update(writers.get(buf, ()))
        for buf in ws:
            if readers.get(buf):
                deps.update(readers[buf])
            elif buf in writers:  # write after write (regions are whole buffers: partial writes are ordered too)
                deps.add(writers[buf][-1])
        deps.update(extra.get(i, ()))
        deps.discard(i)
        ins.deps = sorted(d for d in deps if d < i)
        for buf in rs:
            readers.setdefault(buf, []).append(i)
        for buf in ws:
            if buf in readers:  # a new version: later writes only wait for readers of this one
                readers[buf] = []
            writers.setdefault(buf, []).append(i)
