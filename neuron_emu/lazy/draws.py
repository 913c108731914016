"""Random draws on the lazy device. A draw whose numbers depend only on a shape, a dtype and the generator
(`uniform_`, `normal_`, `bernoulli_(p)`, dropout's mask) is made on CPU from the generator torch.manual_seed sets,
exactly as eager draws it, and sent to the device as data: no graph cut (the tensor drawn into is not
materialised), no graph constant (a new mask each step is new data, the step graph stays cached), and not an
`aten::` fallback (torch_xla draws on the device; nothing waits on the host). Draws that read values
(`bernoulli(probabilities)`, `multinomial`) stay CPU fallbacks."""
from __future__ import annotations

import torch

aten = torch.ops.aten

# in-place draws that overwrite every element whatever it held
_INTO = {aten.uniform_.default, aten.normal_.default, aten.bernoulli_.float, aten.random_.default,
         getattr(aten.random_, "from"), aten.random_.to, aten.exponential_.default, aten.geometric_.default,
         aten.log_normal_.default, aten.cauchy_.default}
# draws into a new tensor shaped like the first argument, whose values they do not read
_LIKE = {aten.bernoulli.p}
# factories: counted nowhere (like the constant factories), their result is device data
FACTORY_NAMES = {"aten::rand", "aten::randn", "aten::randint", "aten::randperm", "aten::normal", "aten::rand_like",
                 "aten::randn_like", "aten::randint_like", "aten::uniform", "aten::random"}


def _cpu_like(t) -> torch.Tensor:
    """An empty CPU tensor laid out as `t` is in eager: a view of one is that view of a base of its storage's shape,
    so a draw into a transposed view fills memory in the base's order, as eager's does."""
    if not t._view:
        return torch.empty(tuple(t.shape), dtype=t.dtype)
    from neuron_emu.lazy import tensor as T
    value = t._st.value
    return T.apply_view(t, torch.empty(tuple(value.shape), dtype=value.dtype))


def draw_into(func, args, kwargs):
    from neuron_emu.lazy import tensor as T
    t = args[0]
    c = _cpu_like(t)
    func(c, *args[1:], **kwargs)
    T.assign(t, T.value_of(T.from_cpu(c.contiguous(), t._st.dev)))
    return t


def draw_like(func, args, kwargs):
    from neuron_emu.lazy import tensor as T
    t = args[0]
    return T.from_cpu(func(_cpu_like(t), *args[1:], **kwargs).contiguous(), t._st.dev)


def native_dropout(func, args, kwargs):
    """Eager's `input * mask * (1 / (1 - p))` with eager's mask, drawn on CPU (see above)."""
    from neuron_emu.lazy import tensor as T
    x = args[0]
    p = args[1] if len(args) > 1 else kwargs["p"]
    train = args[2] if len(args) > 2 else kwargs.get("train")   # (None means training to ATen's kernel)
    if train is False or not 0 < p < 1 or not x.dtype.is_floating_point:
        return T.fallback(func, args, kwargs)
    _, mask = func(_cpu_like(x), p, train)
    m = T.from_cpu(mask.contiguous(), x._st.dev)
    out = T.dispatch(aten.mul.Tensor, (x, m), {})
    return T.dispatch(aten.mul.Tensor, (out, 1.0 / (1.0 - p)), {}), m


def handlers():
    h = {op: draw_into for op in _INTO}
    h.update({op: draw_like for op in _LIKE})
    h[aten.native_dropout.default] = native_dropout
    return h
