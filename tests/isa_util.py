"""Hand-built instructions for tests of malformed rows: every field of the op zero unless given."""
from neuron_emu.isa import Instr, schema


def fields(op, **given):
    sch = schema(op)
    f = {k: 0 for k in list(sch.ints) + list(sch.reals)}
    unknown = set(given) - set(f)
    assert not unknown, f"{sch.name} has no field(s) {unknown}"
    f.update(given)
    return f


def instr(op, operands, view=None, deps=(), **given):
    return Instr(op, list(operands), fields(op, **given), view, deps=list(deps))
