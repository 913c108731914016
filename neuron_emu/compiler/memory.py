"""Pass: arena planning. Intermediate buffers get offsets in one arena, reusing the memory of
buffers whose last use has passed. Reuse creates write-after-read hazards between unrelated
buffers; they are returned as extra dependencies so the engine timeline stays truthful."""
from __future__ import annotations

from typing import Dict, List, Set

from neuron_emu.compiler.builder import INTERMEDIATE

_ALIGN = 16  # floats (64 bytes)


def plan_memory(buf_numel: List[int], buf_kind: List[int], reads: List[List[int]], writes: List[List[int]]):
    n_buf = len(buf_numel)
    first = [-1] * n_buf
    last = [-1] * n_buf
    touch: Dict[int, List[int]] = {}
    for i, (rs, ws) in enumerate(zip(reads, writes)):
        for b in list(ws) + list(rs):
            if buf_kind[b] != INTERMEDIATE:
                continue
            if first[b] < 0:
                first[b] = i
            last[b] = i
            touch.setdefault(b, []).append(i)
    starts: Dict[int, List[int]] = {}
    ends: Dict[int, List[int]] = {}
    for b in range(n_buf):
        if first[b] >= 0:
            starts.setdefault(first[b], []).append(b)
            ends.setdefault(last[b], []).append(b)
    offsets = [0] * n_buf
    free: List[list] = []          # [offset, size, hazard instrs]
    top = 0
    extra: Dict[int, Set[int]] = {}
    for i in range(len(reads)):
        for b in starts.get(i, ()):
            size = max((buf_numel[b] + _ALIGN - 1) // _ALIGN * _ALIGN, _ALIGN)
            best = None
            for k, blk in enumerate(free):
                if blk[1] >= size and (best is None or blk[1] < free[best][1]):
                    best = k
            if best is None:
                offsets[b] = top
                top += size
            else:
                off, bsize, haz = free.pop(best)
                offsets[b] = off
                if haz:
                    extra.setdefault(i, set()).update(h for h in haz if h < i)
                if bsize > size:
                    free.append([off + size, bsize - size, haz])
        for b in ends.get(i, ()):
            size = max((buf_numel[b] + _ALIGN - 1) // _ALIGN * _ALIGN, _ALIGN)
            free.append([offsets[b], size, touch[b][-8:]])
        if len(free) > 1 and ends.get(i):
            free.sort(key=lambda blk: blk[0])
            merged = [free[0]]
            for blk in free[1:]:
                if merged[-1][0] + merged[-1][1] == blk[0]:
                    merged[-1] = [merged[-1][0], merged[-1][1] + blk[1], (merged[-1][2] + blk[2])[-16:]]
                else:
                    merged.append(blk)
            free = merged
    return offsets, top, extra
