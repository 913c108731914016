"""Pass: arena planning. Intermediate buffers get offsets in one arena, reusing the memory of
buffers whose last use has passed. Reuse creates hazards between unrelated buffers; they are
returned as extra dependencies so the engine timeline stays truthful.

The hazards are exact, not truncated. A freed buffer's frontier is its readers since the last write
or, if none, its last writer: every earlier access of the buffer is an ancestor of that frontier
through the buffer's own dependencies (a read depends on every writer, a write on the readers since
the previous write or else on the previous writer; see schedule.compute_deps). A free block keeps
its frontiers per arena piece, so a buffer placed in part of a block waits only for the buffers
that occupied that part. The Program's dependency checker (csrc/dep_check.cpp) proves the result
at load (on in the test suite)."""
from __future__ import annotations

from typing import Dict, List, Set, Tuple

from neuron_emu.compiler.builder import INTERMEDIATE

_ALIGN = 16  # floats (64 bytes)

Piece = Tuple[int, int, Tuple[int, ...]]  # [start, end) in the arena, frontier of the buffer that held it


def _frontiers(n_buf: int, buf_kind: List[int], reads: List[List[int]], writes: List[List[int]]):
    first = [-1] * n_buf
    last = [-1] * n_buf
    last_w: Dict[int, int] = {}        # last writer
    run_r: Dict[int, List[int]] = {}   # readers since the last write
    for i, (rs, ws) in enumerate(zip(reads, writes)):
        for b in rs:
            if buf_kind[b] == INTERMEDIATE:
                run_r.setdefault(b, []).append(i)
        for b in ws:
            if buf_kind[b] == INTERMEDIATE:
                last_w[b] = i
                run_r[b] = []
        for b in list(ws) + list(rs):
            if buf_kind[b] == INTERMEDIATE:
                if first[b] < 0:
                    first[b] = i
                last[b] = i
    # readers depend on the last writer, so they alone are the frontier when there are any
    frontier = {b: tuple(sorted(set(run_r.get(b) or ([last_w[b]] if b in last_w else ()))))
                for b in range(n_buf) if first[b] >= 0}
    return first, last, frontier


def plan_memory(buf_numel: List[int], buf_kind: List[int], reads: List[List[int]], writes: List[List[int]]):
    n_buf = len(buf_numel)
    first, last, frontier = _frontiers(n_buf, buf_kind, reads, writes)
    starts: Dict[int, List[int]] = {}
    ends: Dict[int, List[int]] = {}
    for b in range(n_buf):
        if first[b] >= 0:
            starts.setdefault(first[b], []).append(b)
            ends.setdefault(last[b], []).append(b)
    offsets = [0] * n_buf
    free: List[list] = []          # [offset, size, pieces]
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
                off, bsize, pieces = free.pop(best)
                offsets[b] = off
                end = off + size
                haz = extra.setdefault(i, set())
                rest: List[Piece] = []
                for p in pieces:
                    if p[0] < end:
                        haz.update(p[2])
                    if p[1] > end:
                        rest.append((max(p[0], end), p[1], p[2]))
                haz.discard(i)
                if bsize > size:
                    free.append([end, bsize - size, rest])
        for b in ends.get(i, ()):
            size = max((buf_numel[b] + _ALIGN - 1) // _ALIGN * _ALIGN, _ALIGN)
            free.append([offsets[b], size, [(offsets[b], offsets[b] + size, frontier[b])]])
        if len(free) > 1 and ends.get(i):
            free.sort(key=lambda blk: blk[0])
            merged = [free[0]]
            for blk in free[1:]:
                if merged[-1][0] + merged[-1][1] == blk[0]:
                    merged[-1] = [merged[-1][0], merged[-1][1] + blk[1], merged[-1][2] + blk[2]]
                else:
                    merged.append(blk)
            free = merged
    return offsets, top, extra
