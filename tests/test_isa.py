"""neuron_emu/isa.py against the extension: op codes come from the schema, the field enums have the
kernels' sizes, and every enum value the kernels accept is one Python names."""
import pytest
import torch

from neuron_emu import _C
from neuron_emu.isa import ActFunc, Alu, DType, Op, ReduceOp, schema
from neuron_emu.kernels import scalar_engine as se
from neuron_emu.kernels import vector_engine as ve


def test_op_codes_are_the_schema():
    table = _C.op_schema()
    for op in Op:
        assert table[op.name]["code"] == int(op)
        assert schema(op).engine == _C.op_table()[int(op)][1]


def test_enum_sizes_match_the_kernels():
    sizes = _C.enum_sizes()
    assert len(Alu) == sizes["Alu"] and len(ActFunc) == sizes["ActFunc"] and len(ReduceOp) == sizes["ReduceOp"]
    assert len(DType) == sizes["DType"]
    for enum in (Alu, ActFunc, ReduceOp, DType):
        assert [int(v) for v in enum] == list(range(len(enum))), enum


@pytest.mark.parametrize("name,fn", [("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh),
                                     ("exp", torch.exp), ("abs", torch.abs), ("floor", torch.floor)])
def test_activation_codes_mean_what_their_names_say(name, fn):
    x = torch.linspace(-3, 3, 64)
    out, _ = se.activation(x, name)
    torch.testing.assert_close(out, fn(x), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name,fn", [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("max", torch.maximum),
                                     ("min", torch.minimum), ("lt", lambda a, b: (a < b).float())])
def test_alu_codes_mean_what_their_names_say(name, fn):
    a, b = torch.randn(32), torch.randn(32)
    out, _ = ve.binary(a, b, name)
    torch.testing.assert_close(out, fn(a, b), rtol=0, atol=0)
