"""The running key of the pending step, extended as each op is recorded (record.py), so that a mark_step whose
graph was seen before only looks the key up and binds the device data: no graph walk, no re-lowering.

The key is flat: per recorded node its signature string (op, scalar arguments, shapes and dtypes, interned by the
shape-inference cache), then one integer per value operand: `d << 32 | idx` for output `idx` of the node recorded
`d` nodes after the trace began, `~k` for the k-th device buffer the trace reads (first-use order). The operand
count is fixed by the signature, so the flat sequence is exact: two traces are equal only if their ops, arguments,
shapes, dtypes and wiring are. It covers every node recorded since the last full sync, including dead ones, so it
is a faster but stricter key than the walked graph's (executor.py); a miss falls back to the walk, never to a
wrong program."""
from __future__ import annotations

import itertools
from typing import Dict, List, Optional

MAX_NODES = 1 << 20   # a trace that grows past this (a loop without mark_step) is abandoned: syncs walk instead


class Trace:
    __slots__ = ("base", "parts", "inputs", "index")

    def __init__(self, base: int):
        self.base = base                           # position of the first node of this trace
        self.parts: Optional[List] = []            # the flat key; None once irregular
        self.inputs: List = []                     # DeviceData read, first-use order
        self.index: Dict[int, int] = {}            # id(DeviceData) -> index in inputs (inputs keeps them alive)

    def abandon(self) -> None:
        """A node read a value recorded before the trace began (or the trace grew too long): syncs walk."""
        self.parts = None
        self.inputs = []
        self.index = {}


positions = itertools.count()   # node positions, increasing over the process
current = Trace(0)


def reset() -> None:
    """Start a new trace: nothing recorded before is pending any more."""
    global current
    current = Trace(next(positions))
