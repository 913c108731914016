"""Elementwise math beyond the basic ALU: transcendental functions (ScalarE function codes), rounding with
decimals, classification (isnan, signbit), two-input math (atan2, hypot, copysign, fmax/fmin) on VectorE, and
compositions eager computes from several primitives (logaddexp, xlogy, lerp, addcmul, nan_to_num, ...), built
the way eager evaluates them so that results agree to fp32 rounding."""
from __future__ import annotations

import math

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import alloc_like_node, fill_into
from neuron_emu.compiler.lowering.elementwise import (_scalar, activation_into, binary_into, select_into,
                                                      tensor_scalar_into)
from neuron_emu.isa import ActFunc, DType

aten = torch.ops.aten


def _tmp(b, shape):
    return b.alloc(shape, torch.float32, DType.F32)


def act(b, x, func, out=None, scale=1.0, bias=0.0, param=0.0):
    return activation_into(b, x, out if out is not None else _tmp(b, x.shape), func, scale, bias, param)


def ts(b, x, op, s, out=None, **kw):
    return tensor_scalar_into(b, x, out if out is not None else _tmp(b, x.shape), op, float(s), **kw)


def tt(b, op, x, y, out):
    return binary_into(b, op, x, y, out)


_UNARY = {aten.tan: ActFunc.Tan, aten.sinh: ActFunc.Sinh, aten.cosh: ActFunc.Cosh, aten.asin: ActFunc.Asin,
          aten.acos: ActFunc.Acos, aten.atan: ActFunc.Atan, aten.asinh: ActFunc.Asinh, aten.acosh: ActFunc.Acosh,
          aten.atanh: ActFunc.Atanh, aten.log2: ActFunc.Log2, aten.log10: ActFunc.Log10, aten.exp2: ActFunc.Exp2,
          aten.erfc: ActFunc.Erfc, aten.lgamma: ActFunc.Lgamma, aten.isnan: ActFunc.IsNan,
          aten.signbit: ActFunc.Signbit, aten.sgn: ActFunc.Sign}
for _t, _f in _UNARY.items():
    if _f is not None:
        register(_t)(lambda b, node, x, _f=_f: act(b, x, _f, alloc_like_node(b, node)))


@register(aten.isinf)
def _isinf(b, node, x):
    return act(b, x, ActFunc.IsInf, alloc_like_node(b, node))


@register(aten.isposinf, aten.isneginf)
def _isposinf(b, node, x):
    inf = math.inf if node.target.overloadpacket is aten.isposinf else -math.inf
    return ts(b, x, "eq", inf, alloc_like_node(b, node))


@register(aten.isfinite)
def _isfinite(b, node, x):
    # finite <=> x - x == 0 (inf - inf and nan - nan are nan)
    d = tt(b, "sub", x, x, _tmp(b, x.shape))
    return ts(b, d, "eq", 0.0, alloc_like_node(b, node))


@register(aten.frac)
def _frac(b, node, x):
    return tt(b, "sub", x, act(b, x, ActFunc.Trunc), alloc_like_node(b, node))


@register(aten.deg2rad, aten.rad2deg)
def _deg2rad(b, node, x):
    k = math.pi / 180.0 if node.target.overloadpacket is aten.deg2rad else 180.0 / math.pi
    return ts(b, x, "mul", k, alloc_like_node(b, node))


@register(aten.round.decimals)
def _round_decimals(b, node, x, *, decimals=0):
    """Eager: nearbyint(x * 10^d) / 10^d for d > 0, nearbyint(x / 10^-d) * 10^-d otherwise (10^|d| as fp32)."""
    out = alloc_like_node(b, node)
    if decimals == 0:
        return act(b, x, ActFunc.Round, out)
    p = float(torch.tensor(10.0 ** abs(decimals), dtype=torch.float32))
    if decimals > 0:
        return ts(b, act(b, ts(b, x, "mul", p), ActFunc.Round), "div", p, out)
    return ts(b, act(b, ts(b, x, "div", p), ActFunc.Round), "mul", p, out)


_BINARY = {aten.atan2: "atan2", aten.arctan2: "atan2", aten.hypot: "hypot", aten.copysign: "copysign",
           aten.fmax: "fmax", aten.fmin: "fmin"}
for _t, _op in _BINARY.items():
    register(_t)(lambda b, node, x, y, _op=_op: tt(b, _op, x, y, alloc_like_node(b, node)))


@register(aten.logaddexp, aten.logaddexp2)
def _logaddexp(b, node, x, y):
    """Eager: max + log1p(exp(-|x - y|)) (base 2: max + log1p(2^-|x-y|)/ln 2), and x itself where both are the
    same infinity."""
    out = alloc_like_node(b, node)
    two = node.target.overloadpacket is aten.logaddexp2
    shape = out.shape
    m = tt(b, "max", x, y, _tmp(b, shape))
    d = act(b, tt(b, "sub", x, y, _tmp(b, shape)), ActFunc.Abs)
    e = act(b, d, ActFunc.Exp2 if two else ActFunc.Exp, scale=-1.0)
    lp = act(b, e, ActFunc.Log1p)
    if two:
        lp = ts(b, lp, "div", math.log(2.0))
    r = tt(b, "add", m, lp, _tmp(b, shape))
    same_inf = tt(b, "and", act(b, x, ActFunc.IsInf), tt(b, "eq", x, y, _tmp(b, shape)), _tmp(b, shape))
    return select_into(b, same_inf, x, r, out)


@register(aten.xlogy, aten.special_xlog1py)
def _xlogy(b, node, x, y):
    """0 where x == 0 (unless y is nan), else x * log(y) (log1p for xlog1py)."""
    out = alloc_like_node(b, node)
    shape = out.shape
    fn = ActFunc.Log1p if node.target.overloadpacket is aten.special_xlog1py else ActFunc.Log
    if _scalar(y) is not None:
        y = b.const(torch.tensor(float(y), dtype=torch.float32))
    if _scalar(x) is not None:
        x = b.const(torch.tensor(float(x), dtype=torch.float32))
    prod = tt(b, "mul", x, act(b, y, fn), _tmp(b, shape))
    zero = tt(b, "and", ts(b, x, "eq", 0.0), ts(b, act(b, y, ActFunc.IsNan), "eq", 0.0), _tmp(b, shape))
    return select_into(b, zero, 0.0, prod, out)


@register(aten.lerp)
def _lerp(b, node, start, end, weight):
    """Eager: |w| < 0.5 ? start + w * (end - start) : end - (end - start) * (1 - w)."""
    out = alloc_like_node(b, node)
    shape = out.shape
    diff = tt(b, "sub", end, start, _tmp(b, shape))
    if _scalar(weight) is not None:
        w = float(weight)
        if abs(w) < 0.5:
            return tt(b, "add", start, ts(b, diff, "mul", w), out)
        return tt(b, "sub", end, ts(b, diff, "mul", 1.0 - w), out)
    lo = tt(b, "add", start, tt(b, "mul", weight, diff, _tmp(b, shape)), _tmp(b, shape))
    one_minus = ts(b, weight, "sub", 1.0, reverse0=True)
    hi = tt(b, "sub", end, tt(b, "mul", diff, one_minus, _tmp(b, shape)), _tmp(b, shape))
    small = ts(b, act(b, weight, ActFunc.Abs), "lt", 0.5)
    return select_into(b, small, lo, hi, out)


@register(aten.addcmul, aten.addcdiv)
def _addcmul(b, node, x, t1, t2, *, value=1):
    out = alloc_like_node(b, node)
    op = "mul" if node.target.overloadpacket is aten.addcmul else "div"
    prod = tt(b, op, t1, t2, _tmp(b, out.shape))
    if float(value) != 1.0:
        prod = ts(b, prod, "mul", float(value))
    return tt(b, "add", x, prod, out)


@register(aten.nan_to_num)
def _nan_to_num(b, node, x, nan=None, posinf=None, neginf=None):
    out = alloc_like_node(b, node)
    big = float(torch.finfo(torch.float32).max)
    nan = 0.0 if nan is None else float(nan)
    posinf = big if posinf is None else float(posinf)
    neginf = -big if neginf is None else float(neginf)
    r = select_into(b, act(b, x, ActFunc.IsNan), nan, x, _tmp(b, x.shape))
    r = select_into(b, ts(b, x, "eq", math.inf), posinf, r, _tmp(b, x.shape))
    return select_into(b, ts(b, x, "eq", -math.inf), neginf, r, out)


@register(aten.heaviside)
def _heaviside(b, node, x, values):
    out = alloc_like_node(b, node)
    pos = ts(b, x, "gt", 0.0)
    r = select_into(b, ts(b, x, "eq", 0.0), values, pos, _tmp(b, out.shape))
    return select_into(b, act(b, x, ActFunc.IsNan), x, r, out)


@register(aten.clamp.Tensor, aten.clamp_min.Tensor, aten.clamp_max.Tensor, aten.clip.Tensor)
def _clamp_tensor(b, node, x, lo=None, hi=None):
    """clamp with tensor bounds: min(max(x, lo), hi), broadcast; eager propagates nan from x and the bounds."""
    out = alloc_like_node(b, node)
    pk = node.target.overloadpacket
    if pk is aten.clamp_max:
        lo, hi = None, lo
    r = x
    if lo is not None:
        r = tt(b, "max", r, lo, _tmp(b, out.shape) if hi is not None else out)
    if hi is not None:
        r = tt(b, "min", r, hi, out)
    return r


@register(aten.sinc)
def _sinc(b, node, x):
    """sin(pi x) / (pi x), 1 at 0 (eager multiplies by pi in fp32 first)."""
    out = alloc_like_node(b, node)
    px = ts(b, x, "mul", math.pi)
    r = tt(b, "div", act(b, px, ActFunc.Sin), px, _tmp(b, x.shape))
    return select_into(b, ts(b, x, "eq", 0.0), 1.0, r, out)


@register(aten.logit)
def _logit(b, node, x, eps=None):
    out = alloc_like_node(b, node)
    if eps is not None:
        x = ts(b, x, "max", float(eps), op1="min", s1=1.0 - float(eps))
    return act(b, tt(b, "div", x, ts(b, x, "sub", 1.0, reverse0=True), _tmp(b, x.shape)), ActFunc.Log, out)


@register(aten.special_entr)
def _entr(b, node, x):
    """-x log x for x > 0, 0 at 0, -inf below 0, nan stays nan."""
    out = alloc_like_node(b, node)
    r = ts(b, tt(b, "mul", x, act(b, x, ActFunc.Log), _tmp(b, x.shape)), "mul", -1.0)
    r = select_into(b, ts(b, x, "eq", 0.0), 0.0, r, _tmp(b, x.shape))
    r = select_into(b, ts(b, x, "lt", 0.0), -math.inf, r, _tmp(b, x.shape))
    return select_into(b, act(b, x, ActFunc.IsNan), x, r, out)


@register(aten.positive, aten.conj_physical, aten.resolve_conj, aten.resolve_neg, aten.conj)
def _identity(b, node, x):
    return x


@register(aten.angle)
def _angle(b, node, x):
    """Real input: pi where x < 0, else 0; nan stays nan."""
    out = alloc_like_node(b, node)
    r = select_into(b, ts(b, x, "lt", 0.0), math.pi, 0.0, _tmp(b, x.shape))
    return select_into(b, act(b, x, ActFunc.IsNan), x, r, out)


@register(aten.ldexp)
def _ldexp(b, node, x, e):
    """x * 2^e (eager: x * pow(2, e))."""
    out = alloc_like_node(b, node)
    return tt(b, "mul", x, act(b, e, ActFunc.Exp2) if not isinstance(e, (int, float)) else 2.0 ** float(e), out)


@register(aten.isin)
def _isin(b, node, elements, test, *, assume_unique=False, invert=False):
    """Any equal element of `test`: a [n, m] compare and a max over m."""
    from neuron_emu.compiler.lowering.common import contiguous
    from neuron_emu.compiler.lowering.reduce import reduce_into
    from neuron_emu.isa import ReduceOp
    out = alloc_like_node(b, node)
    if isinstance(elements, (int, float)):
        elements = b.const(torch.tensor(float(elements)))
    if isinstance(test, (int, float)):
        test = b.const(torch.tensor([float(test)]))
    n, m = elements.numel, test.numel
    if m == 0:
        fill_into(b, out, 1.0 if invert else 0.0)
        return out
    e = contiguous(b, elements).with_view([n, 1], [1, 0]) if elements.shape else elements.with_view([1, 1], [0, 0])
    t = contiguous(b, test).with_view([1, m], [0, 1]) if test.shape else test.with_view([1, 1], [0, 0])
    hit = reduce_into(b, tt(b, "eq", e, t, _tmp(b, [n, m])), [1], ReduceOp.Max, _tmp(b, [n]))
    flat = out.with_view([n], [1]) if out.shape else out.with_view([1], [1])
    if invert:
        ts(b, hit, "eq", 0.0, flat)
    else:
        from neuron_emu.compiler.lowering.common import dma_copy
        dma_copy(b, hit, flat)
    return out
