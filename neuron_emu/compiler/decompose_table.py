"""The table type of the capture-time decompositions (decompose.py): ATen overload -> a function computing it
from ops the compiler lowers, filled by a decorator in each family module."""
from __future__ import annotations

from typing import Callable, Dict


class DecompTable(Dict[object, Callable]):
    def register(self, *ops):
        """Decorator: `fn` computes each of `ops`."""
        def deco(fn):
            for op in ops:
                self[op] = fn
            return fn
        return deco
