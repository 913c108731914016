"""ScalarE kernel-level API: activation(x, func, scale, bias, param) = func(x * scale + bias), torch semantics.

Returns ``(out, cost)``; accepts strided float32 views. Cost: max(MIN_II, N) ScalarE cycles per instruction of
at most 512 elements per partition (see csrc/scalar_engine.cpp).
"""
from __future__ import annotations

from numbers import Number
from typing import Optional

import torch

from neuron_emu.isa import ActFunc, DType, Op
from neuron_emu.kernels._run import check_tensor
from neuron_emu.kernels.vector_engine import elementwise_instr, parse_out_dtype

_FUNCS = {f.name.lower(): f for f in ActFunc}
_FUNCS.update({"gelu_tanh": ActFunc.GeluTanh, "leaky_relu": ActFunc.LeakyRelu, "logical_not": ActFunc.LogicalNot,
               "swish": ActFunc.Silu, "none": ActFunc.Identity, "copy": ActFunc.Identity, "ln": ActFunc.Log})
_DEFAULT_PARAM = {ActFunc.LeakyRelu: 0.01, ActFunc.Elu: 1.0}

FUNCS = tuple(sorted(_FUNCS))


def activation(x, func="identity", scale: float = 1.0, bias: float = 0.0, param: Optional[float] = None,
               out_dtype="fp32"):
    """out = func(x * scale + bias); `param` is the LeakyRelu slope (0.01) or the Elu alpha (1.0)."""
    fn = "activation"
    check_tensor(x, "x", fn)
    if isinstance(func, ActFunc):
        f = func
    elif isinstance(func, str) and func.lower() in _FUNCS:
        f = _FUNCS[func.lower()]
    else:
        raise ValueError(f"{fn}: argument 'func' must be one of {list(FUNCS)}, got {func!r}")
    for name, v in (("scale", scale), ("bias", bias)):
        if not isinstance(v, Number):
            raise TypeError(f"{fn}: argument '{name}' must be a number, got {type(v).__name__}")
    if param is None:
        param = _DEFAULT_PARAM.get(f, 0.0)
    if not isinstance(param, Number):
        raise TypeError(f"{fn}: argument 'param' must be a number, got {type(param).__name__}")
    out = torch.empty(x.shape, dtype=torch.float32)
    cost = elementwise_instr(Op.Activation, fn, [("x", x)], out,
                             dict(func=f, in_dtype=DType.F32, out_dtype=parse_out_dtype(out_dtype, fn),
                                  scale=float(scale), bias=float(bias), param=float(param)))
    return out, cost
