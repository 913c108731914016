"""Ops registered at run time: an instruction whose check, cost and exec are C functions in a separately
built shared library (csrc/nemu_op_abi.h). Once registered, the op is encoded by name like a built-in
(`Instr("MyOp", operands, fields)`), runs in compiled programs and the kernel-level API, and an artifact
that uses it loads only in a process that registered it (the artifact names its ops)."""
from __future__ import annotations

import ctypes
import os
from typing import Dict, Sequence

from neuron_emu import _C
from neuron_emu.isa import ENGINE_NAMES, refresh_schema

ABI_HEADER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc", "nemu_op_abi.h")

_libraries: Dict[str, ctypes.CDLL] = {}  # kept loaded for the life of the process: programs call into them


def register_library_op(library: str, name: str, *, operands: Sequence[str], ints: Sequence[str] = (),
                        reals: Sequence[str] = (), engine: str = "GpSimdE", writes: bool = True,
                        check: str = None, cost: str = None, exec: str = None) -> int:
    """Register op `name` implemented by the functions `check`, `cost` and `exec` (default: `<name>_check`,
    `<name>_cost`, `<name>_exec`) exported by the shared library at `library`. `operands` names the operands
    (the last is written when `writes`); `ints` / `reals` name the integer and real fields in the order the
    library reads them. Returns the op's code in this process. Re-registering the same definition is allowed."""
    if engine not in ENGINE_NAMES:
        raise ValueError(f"register_library_op: engine {engine!r} is not one of {', '.join(ENGINE_NAMES)}")
    path = os.path.abspath(library)
    if not os.path.exists(path):
        raise FileNotFoundError(f"register_library_op: no library at {path}")
    lib = _libraries.get(path)
    if lib is None:
        lib = ctypes.CDLL(path)
        _libraries[path] = lib
    addrs = []
    for role, sym in (("check", check), ("cost", cost), ("exec", exec)):
        sym = sym or f"{name}_{role}"
        try:
            addrs.append(ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value)
        except AttributeError:
            raise ValueError(f"register_library_op: {path} exports no function {sym!r} (the op's {role})") from None
    code = _C.register_library_op(name, engine, list(operands), list(ints), list(reals), int(bool(writes)), *addrs)
    refresh_schema()
    return code
