"""The pending graph of the lazy device: values, nodes and the recording of one functional ATen op.

A value is either `DeviceData` (a materialised buffer: a CPU tensor the emulated device holds) or a `Ref` to an
output of an `LNode` (an op recorded but not yet run). Nodes are immutable once recorded; in-place ops are turned
into functional ones by the front end (tensor.py), so a node's inputs never change under it. Output shapes come
from running the op on meta tensors once per signature (op, shapes, dtypes, scalar arguments): the cache keeps
capture at a few microseconds per op (an uncached meta `add` costs ~100 us in torch 2.13, feasibility Q3)."""
from __future__ import annotations

import os
import sys
import threading
from typing import Any, Dict, List, Tuple

import torch

from neuron_emu.lazy import trace

_TORCH_DIR = os.path.dirname(torch.__file__)
_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ROOT = os.path.dirname(_PKG)
_SKIP = (_TORCH_DIR, os.path.join(_PKG, "lazy"), os.path.join(_ROOT, "torch_neuronx_emu"))


class DeviceData:
    """A materialised device buffer. Graphs read it as an input, hashed by shape and dtype only."""
    __slots__ = ("t", "shape", "dtype")

    def __init__(self, t: torch.Tensor):
        self.t = t
        self.shape = tuple(t.shape)
        self.dtype = t.dtype

    @classmethod
    def later(cls, shape: tuple, dtype: torch.dtype) -> "DeviceData":
        """A buffer an asynchronous step fills (device_queue.py): `t` is None until then."""
        d = cls.__new__(cls)
        d.t, d.shape, d.dtype = None, shape, dtype
        return d


class LNode:
    """One recorded functional op: `args`/`kwargs` hold values (DeviceData/Ref) and plain Python leaves;
    `vals` lists the value leaves in order (what the graph walk follows); `sig` is the op and its arguments
    without values, the unit of graph hashing; `pos` its position in recording order (trace.py). The user's
    source line is kept as (code, line) and formatted only when a report or the compiler asks."""
    __slots__ = ("func", "args", "kwargs", "vals", "outs", "metas", "sig", "pos", "code", "line")

    def __init__(self, func, args, kwargs, vals, metas, sig, code, line):
        self.func, self.args, self.kwargs, self.vals, self.outs, self.metas, self.sig, self.code, self.line = \
            func, args, kwargs, vals, len(metas), metas, sig, code, line

    @property
    def where(self) -> str:
        c = self.code
        return "<unknown>" if c is None else f"{c.co_filename}:{self.line} in {c.co_name}"


class Ref:
    """Output `idx` of a pending node."""
    __slots__ = ("node", "idx", "shape", "dtype")

    def __init__(self, node: LNode, idx: int, shape: tuple, dtype: torch.dtype):
        self.node, self.idx, self.shape, self.dtype = node, idx, shape, dtype


class MetaError(RuntimeError):
    """The op has no meta kernel or a data-dependent output shape: it must run on CPU."""


_skip_code: dict = {}   # code object -> inside torch or this package (decided once per code object)


def user_site(depth: int):
    """(code, line) of the first frame outside torch and this package, from `depth` frames above the caller:
    where the user's code recorded the op or cut the graph. sys._getframe(depth) skips the frames in between
    without materialising them (the autograd engine's thread has no Python frame above the dispatch)."""
    try:
        f = sys._getframe(depth + 1)
    except ValueError:
        return None, 0
    while f is not None:
        c = f.f_code
        skip = _skip_code.get(c)
        if skip is None:
            skip = _skip_code[c] = c.co_filename.startswith(_SKIP) or "contextlib" in c.co_filename
        if not skip:
            return c, f.f_lineno
        f = f.f_back
    return None, 0


# The user's line of the outermost op being dispatched on this thread (tensor.py sets it): ops recorded inside it
# (decompositions, write-backs through views, casts) share it without walking the stack again.
dispatch_site = threading.local()


def user_frame() -> str:
    """The user's source line calling into the caller of this function, as `file:line in function`."""
    c, line = user_site(2)
    return "<unknown>" if c is None else f"{c.co_filename}:{line} in {c.co_name}"


def _sig_of(a, vals: List, sig: List) -> Any:
    """Walk one argument: collect value leaves into `vals`, append a hashable signature to `sig`."""
    if isinstance(a, (DeviceData, Ref)):
        vals.append(a)
        sig.append((a.shape, a.dtype))
        return a
    if isinstance(a, (list, tuple)):
        sig.append(len(a))
        for x in a:
            _sig_of(x, vals, sig)
        return a
    if isinstance(a, torch.SymInt):
        raise MetaError("symbolic sizes are not supported on the lazy device")
    sig.append(a if not isinstance(a, float) else ("f", a))  # 1.0 and 1 are different arguments
    return a


def _to_meta(a):
    if isinstance(a, (DeviceData, Ref)):
        return torch.empty(a.shape, dtype=a.dtype, device="meta")
    if isinstance(a, (list, tuple)):
        return type(a)(_to_meta(x) for x in a)
    if isinstance(a, torch.device):
        return torch.device("meta")
    return a


# (func, argument signature) -> (output (shape, dtype) list, output is a tuple/list?, signature string)
_meta_cache: Dict[tuple, Tuple[List[Tuple[tuple, torch.dtype]], bool, str]] = {}
# id(op) -> its implementation's version, part of its nodes' signatures: ops whose implementation can change in
# a process (a custom-op library loaded again from another build) so graphs recorded after the change compile anew
_op_versions: Dict[int, str] = {}


def set_op_version(func, version: str) -> None:
    """Registration hook (custom_op/torch_ops.py): `func`'s implementation is now `version`."""
    if _op_versions.get(id(func)) == version:
        return
    _op_versions[id(func)] = version
    for k in [k for k in _meta_cache if k[0] in (id(func), func)]:
        del _meta_cache[k]


def _infer(func, args, kwargs, key) -> Tuple[List[Tuple[tuple, torch.dtype]], bool, str]:
    mkw = {k: _to_meta(v) for k, v in kwargs.items()}
    if "device" in kwargs:
        mkw["device"] = torch.device("meta")
    try:
        out = func(*_to_meta(args), **mkw)
    except (NotImplementedError, torch._subclasses.fake_tensor.DynamicOutputShapeException) as e:
        raise MetaError(str(e)) from None
    except RuntimeError as e:  # e.g. a data-dependent op; CPU gives the real answer (or the real error)
        raise MetaError(str(e)) from None
    multi = isinstance(out, (tuple, list))
    outs = out if multi else (out,)
    if not all(isinstance(o, torch.Tensor) for o in outs):
        raise MetaError(f"{func} returns a non-tensor")
    metas = [(tuple(o.shape), o.dtype) for o in outs]
    sig = f"{func}{_op_versions.get(id(func), '')}{key[1:]!r}->" + \
          ",".join(f"{str(d)[6:]}{list(s)}" for s, d in metas)
    r = (metas, multi, sig)
    _meta_cache[key] = r
    return r


capture = None   # Optional[List[LNode]]: the nodes recorded while replay.py captures a decomposition


def add_to_trace(node: LNode, s: str, vals) -> None:
    """Give the node its position and extend the running key of the step (trace.py) by it."""
    if capture is not None:   # a decomposition being captured for replay (replay.py)
        capture.append(node)
    tr = trace.current
    node.pos = next(trace.positions)
    parts = tr.parts
    if parts is None:
        return
    parts.append(s)
    base = tr.base
    for v in vals:
        if type(v) is Ref:
            d = v.node.pos - base
            if d < 0:   # recorded before the trace began (an older graph still referenced): walk at the sync
                tr.abandon()
                return
            parts.append(d << 32 | v.idx)
        else:
            k = tr.index.get(id(v))
            if k is None:
                k = tr.index[id(v)] = len(tr.inputs)
                tr.inputs.append(v)
            parts.append(~k)
    if len(parts) > trace.MAX_NODES * 4:   # (about 4 entries per node)
        tr.abandon()


def record(func, args: tuple, kwargs: dict):
    """Record a functional op on values. Returns one Ref, or a list of Refs for a multi-output op.
    Raises MetaError when the op must run on CPU instead."""
    vals: List = []
    sig: List = [id(func)]   # (an OpOverload hashes in Python; ops live as long as the process)
    for a in args:
        _sig_of(a, vals, sig)
    for k, v in kwargs.items():
        sig.append(k)
        _sig_of(v, vals, sig)
    key = tuple(sig)
    try:
        hit = _meta_cache.get(key)
    except TypeError:  # an unhashable argument (e.g. a list inside a dict): no caching, always correct
        hit = None
        key = (func, repr(sig[1:]))
    metas, multi, s = hit if hit is not None else _infer(func, args, kwargs, key)
    site = getattr(dispatch_site, "v", None)
    code, line = site if site is not None else user_site(1)
    node = LNode(func, args, kwargs, vals, metas, s, code, line)
    add_to_trace(node, s, vals)
    refs = [Ref(node, i, sh, dt) for i, (sh, dt) in enumerate(metas)]
    return refs if multi else refs[0]
