"""Elementwise lowerings: tensor-tensor and tensor-scalar ALU ops on VectorE, activation
functions on ScalarE (func(in*scale + bias)), selects on GpSimdE."""
from __future__ import annotations

import math

import torch

from neuron_emu.compiler.builder import TV
from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import (LoweringError, alloc_like_node, broadcast_strides, fill_into,
                                                 strided_layout)
from neuron_emu.isa import ActFunc, Alu, DType, Instr, Op

aten = torch.ops.aten

ALU = {"add": Alu.Add, "sub": Alu.Sub, "mul": Alu.Mul, "div": Alu.Div, "max": Alu.Max, "min": Alu.Min,
       "pow": Alu.Pow, "eq": Alu.Eq, "ne": Alu.Ne, "lt": Alu.Lt, "le": Alu.Le, "gt": Alu.Gt, "ge": Alu.Ge,
       "and": Alu.And, "or": Alu.Or, "xor": Alu.Xor, "fmod": Alu.Fmod, "remainder": Alu.Remainder,
       "floordiv": Alu.FloorDiv, "atan2": Alu.Atan2, "hypot": Alu.Hypot, "copysign": Alu.Copysign, "fmax": Alu.FMax,
       "fmin": Alu.FMin}


def _scalar(x):
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)):
        return float(x)
    return None


def tensor_scalar_into(b, x: TV, out: TV, op0: str, s0: float, reverse0=False, op1=None, s1=0.0, reverse1=False):
    view = strided_layout("TensorScalar", out.shape, [(x.offset, broadcast_strides(x, out.shape)), (out.offset, out.strides)])
    fields = dict(alu0=ALU[op0], reverse0=int(reverse0), alu1=ALU[op1] if op1 else -1, reverse1=int(reverse1),
                  in_dtype=x.emu, out_dtype=out.emu, scalar0=s0, scalar1=s1)
    b.emit(Instr(Op.TensorScalar, [x.buf, out.buf], fields, view), [x], [out])
    return out


def activation_into(b, x: TV, out: TV, func: ActFunc, scale=1.0, bias=0.0, param=0.0):
    view = strided_layout("Activation", out.shape, [(x.offset, broadcast_strides(x, out.shape)), (out.offset, out.strides)])
    fields = dict(func=func, in_dtype=x.emu, out_dtype=out.emu, scale=scale, bias=bias, param=param)
    b.emit(Instr(Op.Activation, [x.buf, out.buf], fields, view), [x], [out])
    return out


def binary_into(b, op: str, x, y, out: TV, beta_b=1.0):
    """out = x <op> (beta_b * y) with broadcasting; x or y may be Python scalars."""
    sx, sy = _scalar(x), _scalar(y)
    if sy is not None:
        return tensor_scalar_into(b, x, out, op, sy * beta_b)
    if beta_b != 1.0:
        tmp = b.alloc(y.shape, y.dtype)
        tensor_scalar_into(b, y, tmp, "mul", beta_b)
        y = tmp
    if sx is not None:
        return tensor_scalar_into(b, y, out, op, sx, reverse0=True)
    view = strided_layout("TensorTensor", out.shape, [(x.offset, broadcast_strides(x, out.shape)),
                                                      (y.offset, broadcast_strides(y, out.shape)), (out.offset, out.strides)])
    fields = dict(alu=ALU[op], in_dtype=x.emu, out_dtype=out.emu)
    b.emit(Instr(Op.TensorTensor, [x.buf, y.buf, out.buf], fields, view), [x, y], [out])
    return out


def _binary(op):
    def lower(b, node, x, y, alpha=1, **kwargs):
        out = alloc_like_node(b, node)
        if op in ("add", "sub") and alpha != 1:
            return binary_into(b, op, x, y, out, beta_b=alpha)
        return binary_into(b, op, x, y, out)
    return lower


for _name, _op in [("add", "add"), ("sub", "sub"), ("mul", "mul"), ("maximum", "max"), ("minimum", "min"),
                   ("eq", "eq"), ("ne", "ne"), ("lt", "lt"), ("le", "le"), ("gt", "gt"), ("ge", "ge"),
                   ("logical_and", "and"), ("logical_or", "or"), ("logical_xor", "xor"), ("bitwise_and", "and"),
                   ("bitwise_or", "or"), ("bitwise_xor", "xor"), ("fmod", "fmod"), ("remainder", "remainder"),
                   ("floor_divide", "floordiv")]:
    register(getattr(aten, _name))(_binary(_op))


@register(aten.rsub)
def _rsub(b, node, x, y, alpha=1):
    out = alloc_like_node(b, node)
    if _scalar(y) is not None:  # y - alpha*x
        return tensor_scalar_into(b, x, out, "mul", float(alpha), op1="sub", s1=float(y), reverse1=True)
    return binary_into(b, "sub", y, x, out, beta_b=alpha)


@register(aten.div)
def _div(b, node, x, y, rounding_mode=None):
    out = alloc_like_node(b, node)
    if rounding_mode is None:
        if _scalar(y) is not None:
            return tensor_scalar_into(b, x, out, "mul", 1.0 / float(y)) if float(y) != 0 and _exact_reciprocal(y) \
                else tensor_scalar_into(b, x, out, "div", float(y))
        return binary_into(b, "div", x, y, out)
    if rounding_mode == "floor":
        return binary_into(b, "floordiv", x, y, out)
    tmp = b.alloc(out.shape, out.dtype, DType.F32)
    binary_into(b, "div", x, y, tmp)
    return activation_into(b, tmp, out, ActFunc.Trunc)


def _exact_reciprocal(y) -> bool:
    m, _ = math.frexp(float(y))
    return m == 0.5  # power of two: x * (1/y) is bit-identical to x / y


@register(aten.pow)
def _pow(b, node, x, y):
    out = alloc_like_node(b, node)
    sy = _scalar(y)
    if sy == 2.0:
        return activation_into(b, x, out, ActFunc.Square)
    if sy == 0.5:
        return activation_into(b, x, out, ActFunc.Sqrt)
    if sy == 1.0:
        return activation_into(b, x, out, ActFunc.Identity)
    return binary_into(b, "pow", x, y, out)


@register(aten.neg)
def _neg(b, node, x):
    # a VectorE multiply, not ScalarE's func(scale * x + bias): its + 0.0 bias would turn -0.0 into +0.0
    return tensor_scalar_into(b, x, alloc_like_node(b, node), "mul", -1.0)


_ACT = {aten.relu: ActFunc.Relu, aten.sigmoid: ActFunc.Sigmoid, aten.tanh: ActFunc.Tanh, aten.exp: ActFunc.Exp,
        aten.log: ActFunc.Log, aten.silu: ActFunc.Silu, aten.sqrt: ActFunc.Sqrt, aten.rsqrt: ActFunc.Rsqrt,
        aten.reciprocal: ActFunc.Reciprocal, aten.abs: ActFunc.Abs, aten.erf: ActFunc.Erf, aten.sin: ActFunc.Sin,
        aten.cos: ActFunc.Cos, aten.sign: ActFunc.Sign, aten.floor: ActFunc.Floor, aten.ceil: ActFunc.Ceil,
        aten.round: ActFunc.Round, aten.log1p: ActFunc.Log1p, aten.expm1: ActFunc.Expm1, aten.trunc: ActFunc.Trunc,
        aten.logical_not: ActFunc.LogicalNot, aten.bitwise_not: ActFunc.LogicalNot, aten.hardsigmoid: ActFunc.Hardsigmoid,
        aten.hardswish: ActFunc.Hardswish, aten.mish: ActFunc.Mish}

for _t, _f in _ACT.items():
    register(_t)(lambda b, node, x, *a, _f=_f, **k: activation_into(b, x, alloc_like_node(b, node), _f))


@register(aten.gelu)
def _gelu(b, node, x, approximate="none"):
    return activation_into(b, x, alloc_like_node(b, node), ActFunc.GeluTanh if approximate == "tanh" else ActFunc.Gelu)


@register(aten.leaky_relu)
def _leaky_relu(b, node, x, slope=0.01):
    return activation_into(b, x, alloc_like_node(b, node), ActFunc.LeakyRelu, param=float(slope))


@register(aten.clamp, aten.hardtanh, aten.clip)
def _clamp(b, node, x, lo=None, hi=None):
    out = alloc_like_node(b, node)
    if node.target is aten.hardtanh.default and lo is None:
        lo, hi = -1.0, 1.0
    if lo is not None and hi is not None:
        return tensor_scalar_into(b, x, out, "max", float(lo), op1="min", s1=float(hi))
    if lo is not None:
        return tensor_scalar_into(b, x, out, "max", float(lo))
    if hi is not None:
        return tensor_scalar_into(b, x, out, "min", float(hi))
    return activation_into(b, x, out, ActFunc.Identity)


@register(aten.clamp_min)
def _clamp_min(b, node, x, lo):
    return tensor_scalar_into(b, x, alloc_like_node(b, node), "max", float(lo))


@register(aten.clamp_max)
def _clamp_max(b, node, x, hi):
    return tensor_scalar_into(b, x, alloc_like_node(b, node), "min", float(hi))


def select_into(b, cond: TV, x, y, out: TV):
    xs, ys = _scalar(x), _scalar(y)
    if xs is not None:
        x = b.const(torch.tensor(xs, dtype=torch.float32))
    if ys is not None:
        y = b.const(torch.tensor(ys, dtype=torch.float32))
    view = strided_layout("Select", out.shape, [(cond.offset, broadcast_strides(cond, out.shape)),
                                                (x.offset, broadcast_strides(x, out.shape)),
                                                (y.offset, broadcast_strides(y, out.shape)), (out.offset, out.strides)])
    op = Op.Select if b.has_engine("GpSimdE") else Op.VecSelect  # v1: VectorE's predicated copy
    b.emit(Instr(op, [cond.buf, x.buf, y.buf, out.buf], dict(in_dtype=x.emu, out_dtype=out.emu), view),
           [cond, x, y], [out])
    return out


@register(aten.where)
def _where(b, node, cond, x, y):
    return select_into(b, cond, x, y, alloc_like_node(b, node))


@register(aten.masked_fill)
def _masked_fill(b, node, x, mask, value):
    return select_into(b, mask, value, x, alloc_like_node(b, node))


@register(aten.fill)
def _fill(b, node, x, value):
    out = alloc_like_node(b, node)
    if isinstance(value, TV):  # fill.Tensor: a 0-dim value, broadcast
        from neuron_emu.compiler.lowering.common import cast_copy
        cast_copy(b, value, out)
        return out
    return fill_into(b, out, value)


def _fill_node(b, node, value):
    out = alloc_like_node(b, node)
    return fill_into(b, out, value)


# Creation ops that read only their tensor argument's shape (a computed tensor's, else they fold): a constant fill.
register(aten.new_zeros, aten.zeros_like)(lambda b, node, *a, **k: _fill_node(b, node, 0.0))
register(aten.new_ones, aten.ones_like)(lambda b, node, *a, **k: _fill_node(b, node, 1.0))
register(aten.new_full)(lambda b, node, x, size, fill_value, **k: _fill_node(b, node, fill_value))
register(aten.full_like)(lambda b, node, x, fill_value, **k: _fill_node(b, node, fill_value))
