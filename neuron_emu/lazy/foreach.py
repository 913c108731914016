"""torch's `_foreach_*` ops on the lazy device: one dispatch per op list, each element recorded as its per-tensor op.

Optimizers (Adam, AdamW, SGD, ...) take their multi-tensor path on the device (tensor.py registers LazyTensor as a
foreach-capable type): a step is a dozen foreach calls instead of a dozen ops per parameter, so Python enters
`__torch_dispatch__` once per call and the per-element work stays in this module's loop.

The element op is found once per overload from the schemas: `_foreach_X[_].OV` runs `aten.X[_]`'s overload whose
arguments take the list elements (Tensor[] -> Tensor, Scalar[] -> Scalar) and the shared arguments (an in-place
op without an in-place element op, `_foreach_maximum_`, runs the functional one and copies the result back). A Python
number goes into a Tensor slot where the element op has one (`mul_.Tensor` rather than `mul_.Scalar`): it then
becomes 0-dim device data, as in the single-tensor path, so Adam's per-step bias corrections and a scheduled
learning rate do not change the graph. Ops with no matching element op run on CPU (`aten::` counter)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

aten = torch.ops.aten

_LIST = {"List[Tensor]": "Tensor", "List[number]": "number", "List[Optional[Tensor]]": "Tensor"}


def _fits(have: str, want: str) -> int:
    """0: `want` cannot take a `have` element; 1: it can; 2: a number into a Tensor slot (preferred)."""
    if have == want:
        return 1
    if have == "number" and want == "Tensor":
        return 2
    if have == "Tensor" and want == "number":   # a CPU tensor of scalars (`_foreach_addcdiv.Tensor`)
        return 1
    return 0


class Plan:
    """How one foreach overload calls its element op: per foreach argument, whether it is a list (indexed per
    element) and where it goes in the element call (a position, or a keyword name)."""
    __slots__ = ("op", "lists", "slots", "scalar_tensor", "shared", "writeback")

    def __init__(self, op, lists: List[bool], slots: List[Any], scalar_tensor: List[bool], shared: List[bool]):
        self.op, self.lists, self.slots, self.scalar_tensor = op, lists, slots, scalar_tensor
        self.shared = shared     # a number shared by all elements, going into a Tensor slot: one device datum
        self.writeback = False   # an in-place foreach op run as its functional element op, copied into self


def _match(func, cand) -> Optional[Tuple[int, Plan]]:
    """How well `cand` serves as `func`'s element op (None: not at all), with the plan."""
    fargs = func._schema.arguments
    cargs = cand._schema.arguments
    cpos = [a for a in cargs if not a.kwarg_only]
    ckw = {a.name: a for a in cargs if a.kwarg_only}
    lists, slots, scalar_tensor, shared, score = [], [], [], [], 0
    used_pos = 0
    for a in fargs:
        t = str(a.type)
        elem = _LIST.get(t)
        lists.append(elem is not None)
        have = elem or ("Tensor" if t == "Tensor" else "number" if t == "number" else t)
        if a.kwarg_only:   # (alpha): by name
            c = ckw.get(a.name)
            if c is None or not _fits(have, str(c.type)):
                return None
            slots.append(a.name)
            scalar_tensor.append(False)
            shared.append(False)
            continue
        if used_pos < len(cpos):
            c = cpos[used_pos]
            used_pos += 1
            slot: Any = used_pos - 1
        else:   # a trailing scalar list into a keyword-only scalar (addcdiv's `value`)
            c = next((k for k in ckw.values() if k.name not in slots and _fits(have, str(k.type))), None)
            if c is None:
                return None
            slot = c.name
        f = _fits(have, str(c.type))
        if not f:
            return None
        score += f
        slots.append(slot)
        scalar_tensor.append(have == "Tensor" and str(c.type) == "number")
        shared.append(f == 2 and elem is None)
    if any(not a.kwarg_only and not a.has_default_value() for a in cpos[used_pos:]):
        return None
    return score, Plan(cand, lists, slots, scalar_tensor, shared)


_plans: Dict[int, Optional[Plan]] = {}
_ABSENT = object()


def plan(func) -> Optional[Plan]:
    """The element op of a `_foreach_*` overload (cached), or None when no aten op takes its elements."""
    p = _plans.get(id(func))
    if p is not None or id(func) in _plans:
        return p
    name = func._schema.name.split("::")[1][len("_foreach_"):]
    best = _best(func, getattr(aten, name, None), func._schema.is_mutable)
    if best is None and name.endswith("_"):   # no in-place element op (maximum_): the functional one, written back
        best = _best(func, getattr(aten, name[:-1], None), False)
        if best is not None:
            best[1].writeback = True
    p = _plans[id(func)] = best[1] if best is not None else None
    return p


def _best(func, packet, mutable: bool) -> Optional[Tuple[int, Plan]]:
    best = None
    for ov in (packet.overloads() if packet is not None else []):
        cand = getattr(packet, ov)
        if cand._schema.is_mutable != mutable or any(a.is_out for a in cand._schema.arguments):
            continue
        m = _match(func, cand)
        if m is not None and (best is None or m[0] > best[0]):
            best = m
    return best


def run(func, args, kwargs, dispatch, scalar_tensor) -> Any:
    """Run a foreach op element by element through `dispatch` (tensor.dispatch). Returns None for an in-place
    op, else the list of results; NotImplemented when no element op fits. `scalar_tensor(x, like)` makes the
    device datum of a shared number for elements like tensor `like` (its float width and device)."""
    p = plan(func)
    if p is None:
        return NotImplemented
    fargs = func._schema.arguments
    given = list(args) + [kwargs.get(a.name, _ABSENT if a.kwarg_only else a.default_value if a.has_default_value()
                                     else None) for a in fargs[len(args):]]
    n = next(len(v) for v, is_list in zip(given, p.lists) if is_list)
    op = p.op
    npos = sum(1 for s in p.slots if type(s) is int)
    out = []
    first = next(j for j, is_list in enumerate(p.lists) if is_list)
    datum: Dict[tuple, Any] = {}   # (float width, device) -> the shared number's device datum
    for i in range(n):
        eargs: List[Any] = [None] * npos
        ekw: Dict[str, Any] = {}
        for v, is_list, slot, st, sh in zip(given, p.lists, p.slots, p.scalar_tensor, p.shared):
            e = v[i] if is_list else v
            if sh and type(e) is float and e not in (0.0, 1.0, -1.0):
                like = given[first][i]
                k = (like.dtype is torch.float64, like.device)
                d = datum.get(k)
                if d is None:
                    d = datum[k] = scalar_tensor(e, like)
                if d is not None:   # (None: `like` is no device tensor; the number stays a number)
                    e = d
            elif st:
                e = e[i].item() if e.dim() else e.item()
            if type(slot) is int:
                eargs[slot] = e
            elif e is not None and e is not _ABSENT:   # (a keyword left out: the element op's default)
                ekw[slot] = e
        r = dispatch(op, tuple(eargs), ekw)
        if p.writeback:
            dispatch(aten.copy_.default, (given[0][i], r), {})
        out.append(r)
    return None if func._schema.is_mutable else out
