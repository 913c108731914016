"""Decompositions replayed: the nodes a decomposition records are a pure function of its arguments' metadata (op,
shapes, dtypes, aliasing, scalar arguments), so they are captured once and then re-recorded directly, without
running the decomposition's Python, the dispatcher round trip and a tensor wrapper per op. A training step
decomposes layer norm, its backward, the losses' backwards and embedding's backward on every step: replaying them
costs a few microseconds per node instead of 10-20.

A capture is kept only when it is provably pure: no CPU fallback, transfer to CPU or random draw happened inside
(those make values, not metadata, part of the result), every operand of a recorded node is an argument's value, an
earlier node's output or a constant the decomposition made on CPU (e.g. `arange(classes)`), and no argument's
storage was written. A replay records the same nodes in the same order with the same wiring (constants get a
fresh DeviceData around the same CPU tensor, as the capture had its own), so the step's trace key is the same
whether a decomposition ran or was replayed."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from neuron_emu.lazy import record as rec
from neuron_emu.lazy.record import DeviceData, LNode, Ref


class _In:
    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k


class _Out:
    __slots__ = ("j", "idx")

    def __init__(self, j, idx):
        self.j, self.idx = j, idx


class _Const:
    __slots__ = ("c", "t")   # the c-th constant of the template, its CPU tensor

    def __init__(self, c, t):
        self.c, self.t = c, t


class _Result:
    """One output tensor of the decomposition: its storage (a new one, `sid`-th of the outputs', holding `base`;
    or input tensor `arg`'s) and its view chain over it with the chain's value (view ops such as `to.dtype`
    return views, whose value is the chain's)."""
    __slots__ = ("sid", "base", "arg", "view", "chain", "shape", "dtype")

    def __init__(self, sid, base, arg, view, chain, shape, dtype):
        self.sid, self.base, self.arg, self.view, self.chain, self.shape, self.dtype = \
            sid, base, arg, view, chain, shape, dtype


class _Impure(Exception):
    """The capture read something that is not a function of the decomposition's arguments."""


class Template:
    __slots__ = ("nodes", "out", "n_consts", "n_storages")

    def __init__(self, nodes, out, n_consts, n_storages):
        self.nodes, self.out, self.n_consts, self.n_storages = nodes, out, n_consts, n_storages
        # nodes: (func, args, kwargs, metas, sig); out: the result with _Result leaves


_templates: Dict[tuple, Optional[Template]] = {}   # None: not replayable (the decomposition runs every time)
_MAX_TEMPLATES = 4096
impure_events = [0]   # bumped by CPU fallbacks and transfers to CPU (tensor.py)


def _leaf_key(a, seen: Dict[int, int], LazyTensor, value_of):
    if type(a) is LazyTensor:
        v = value_of(a)
        first = seen.setdefault(id(v), len(seen))
        return (tuple(a.shape), a.dtype, a.requires_grad, first, a._st.dev)
    if isinstance(a, torch.Tensor):
        raise TypeError("a CPU tensor argument")   # its values would be baked into the template
    if isinstance(a, (list, tuple)):
        return (type(a), tuple(_leaf_key(x, seen, LazyTensor, value_of) for x in a))
    if isinstance(a, float):
        return ("f", a)
    hash(a)
    return a


def run(func, args, kwargs, decompose):
    """`decompose(func, args, kwargs)` (its result or NotImplemented), from the template when one was captured."""
    from neuron_emu.lazy import tensor as T
    try:
        seen: Dict[int, int] = {}
        key = (id(func), torch.is_grad_enabled(), _leaf_key(args, seen, T.LazyTensor, T.value_of),
               _leaf_key(tuple(kwargs.items()), seen, T.LazyTensor, T.value_of))
    except TypeError:
        return decompose(func, args, kwargs)
    tensors = _flat(args, T.LazyTensor) + _flat(list(kwargs.values()), T.LazyTensor)
    inputs = [T.value_of(t) for t in tensors]
    tpl = _templates.get(key, False)
    if tpl is None:
        return decompose(func, args, kwargs)
    if tpl is not False:
        return _replay(tpl, tensors, inputs, T)
    return _capture(key, func, args, kwargs, tensors, inputs, decompose, T)


def _capture(key, func, args, kwargs, tensors, inputs, decompose, T):
    stores = [(a, a._st, a._st.value) for a in tensors]
    events = impure_events[0]
    rng = torch.random.default_generator.get_state()
    nodes: List[LNode] = []
    outer = rec.capture
    rec.capture = nodes
    try:
        out = decompose(func, args, kwargs)
    finally:
        rec.capture = outer
    if outer is not None:
        outer.extend(nodes)
    tpl = None
    if out is not NotImplemented and impure_events[0] == events and \
            all(a._st is st and st.value is v for a, st, v in stores) and \
            torch.equal(rng, torch.random.default_generator.get_state()):
        try:
            tpl = _template(nodes, tensors, inputs, out, T)
        except _Impure:
            tpl = None
    if len(_templates) >= _MAX_TEMPLATES:
        _templates.clear()
    _templates[key] = tpl
    return out


def _flat(a, LazyTensor) -> List:
    if type(a) is LazyTensor:
        return [a]
    if isinstance(a, (list, tuple)):
        return [x for e in a for x in _flat(e, LazyTensor)]
    return []


def _template(nodes: List[LNode], tensors: List, inputs: List, out, T) -> Template:
    index = {id(n): j for j, n in enumerate(nodes)}
    inmap: Dict[int, int] = {}
    for k, v in enumerate(inputs):
        inmap.setdefault(id(v), k)
    consts: Dict[int, _Const] = {}

    def mark(a):
        if type(a) is Ref or type(a) is DeviceData:
            k = inmap.get(id(a))
            if k is not None:
                return _In(k)
            if type(a) is Ref:
                j = index.get(id(a.node))
                if j is None:
                    raise _Impure()
                return _Out(j, a.idx)
            if a.t is None:
                raise _Impure()
            c = consts.get(id(a))
            if c is None:
                c = consts[id(a)] = _Const(len(consts), a.t)
            return c
        if isinstance(a, (list, tuple)):
            return type(a)(mark(x) for x in a)
        if isinstance(a, dict):
            return {k: mark(v) for k, v in a.items()}
        return a

    tnodes = [(n.func, mark(n.args), mark(n.kwargs), n.metas, n.sig) for n in nodes]

    arg_of = {}
    for k, t in enumerate(tensors):
        arg_of.setdefault(id(t._st), k)
    sids: Dict[int, int] = {}

    def mark_out(o):
        if type(o) is T.LazyTensor:
            st = o._st
            chain = o._vc[1] if o._view and o._vc is not None and o._vc[0] is st.value else None
            if o._view and chain is None:
                raise _Impure()   # (its value would be recorded now, outside the capture)
            arg = arg_of.get(id(st))
            sid = sids.setdefault(id(st), len(sids)) if arg is None else None
            return _Result(sid, mark(st.value) if arg is None else None, arg, o._view,
                           mark(chain) if chain is not None else None, tuple(o.shape), o.dtype)
        if isinstance(o, torch.Tensor):
            raise _Impure()
        if isinstance(o, (list, tuple)):
            return type(o)(mark_out(x) for x in o)
        return o
    result = mark_out(out)
    return Template(tnodes, result, len(consts), len(sids))


class _Env:
    """One replay's values: the arguments', the nodes recorded so far, the constants' and the outputs' storages.
    (Module-level functions walk the templates: a recursive closure would be a reference cycle holding the
    outputs' storages until a garbage collection, and a storage alive at mark_step is an output of the step.)"""
    __slots__ = ("inputs", "made", "consts", "storages", "dev")

    def __init__(self, tpl: Template, inputs: List, dev: int):
        self.inputs = inputs
        self.dev = dev   # the device of the arguments (the key has it): the outputs' new storages are on it
        self.made: List[LNode] = []
        self.consts: List[Optional[DeviceData]] = [None] * tpl.n_consts   # one fresh DeviceData per constant
        self.storages: List[Any] = [None] * tpl.n_storages


def _subst(a, env: _Env, vals: List):
    t = type(a)
    if t is _In:
        v = env.inputs[a.k]
    elif t is _Out:
        n = env.made[a.j]
        sh, dt = n.metas[a.idx]
        v = Ref(n, a.idx, sh, dt)
    elif t is _Const:
        v = env.consts[a.c]
        if v is None:
            v = env.consts[a.c] = DeviceData(a.t)
    elif t is tuple or t is list:
        return t([_subst(x, env, vals) for x in a])
    else:
        return a
    vals.append(v)
    return v


def _build(o, env: _Env, tensors: List, T):
    t = type(o)
    if t is _Result:
        if o.arg is not None:
            st = tensors[o.arg]._st
        else:
            st = env.storages[o.sid]
            if st is None:
                st = env.storages[o.sid] = T._storage(_subst(o.base, env, []), dev=env.dev)
        r = T.LazyTensor(st, o.view, o.shape, o.dtype)
        if o.view:
            r._vc = (st.value, _subst(o.chain, env, []))
        return r
    if t is tuple or t is list:
        return t([_build(x, env, tensors, T) for x in o])
    return o


def _replay(tpl: Template, tensors: List, inputs: List, T):
    env = _Env(tpl, inputs, tensors[0]._st.dev if tensors else 0)
    site = getattr(rec.dispatch_site, "v", None)
    code, line = site if site is not None else (None, 0)
    add = rec.add_to_trace
    made = env.made
    for func, args, kwargs, metas, sig in tpl.nodes:
        vals: List = []
        a = _subst(args, env, vals)
        kw = {k: _subst(v, env, vals) for k, v in kwargs.items()} if kwargs else kwargs
        node = LNode(func, a, kw, vals, metas, sig, code, line)
        add(node, sig, vals)
        made.append(node)
    return _build(tpl.out, env, tensors, T)
