"""GpSimd: iota, select, gather (and its harness cost), incl. out-of-range gathers through a Program."""
import numpy as np
import pytest
import torch

from neuron_emu import _C
from neuron_emu.isa import Instr, Op, encode_program, view_layout
from neuron_emu.kernels import gpsimd_engine as ge
from neuron_emu.kernels._run import spec
from isa_util import instr


def test_iota():
    out, c = ge.iota(1000, 3.0, 0.5)
    assert torch.equal(out, torch.arange(1000, dtype=torch.float64).mul(0.5).add(3.0).float())
    # [128, F=8]: rows 0..124 of 8 elements; core 0 holds 16 rows = 128 elements = 8 cycles of 16 lanes
    assert (c["cycles"], c["instructions"], c["engine"]) == (158.0, 1, "GpSimdE")
    assert ge.iota(0)[0].numel() == 0
    out, _ = ge.iota(70000)
    assert torch.equal(out, torch.arange(70000, dtype=torch.float32))


def test_select_broadcast_and_strided():
    cond = (torch.randn(5, 1, 6) > 0).float()
    a = torch.randn(4, 6)
    b = torch.randn(6)
    out, c = ge.select(cond, a, b)
    assert torch.equal(out, torch.where(cond != 0, a, b))
    base = torch.randn(300, 400)
    v = base.t()[::2]
    cond = (torch.randn(200, 300) > 0).float()
    out, c = ge.select(cond, v, -v)
    assert torch.equal(out, torch.where(cond != 0, v, -v))
    assert c["cycles"] == 150 + 469  # [128, ceil(60000/128)=469]: 16 rows of 469 on a core


def test_gather():
    table = torch.randn(50, 64)
    idx = torch.randint(0, 50, (300,))
    out, c = ge.gather(table, idx)
    assert torch.equal(out, table[idx])
    # 300 rows over partitions: core 0 owns rows 0-15, 128-143, 256-271 = 48 rows x 64 / 16 lanes
    assert c["cycles"] == 150 + 192
    out, _ = ge.gather(table, idx.float().reshape(3, 100))
    assert torch.equal(out, table[idx].reshape(3, 100, 64))
    big = torch.randn(1000, 128)
    idx = torch.randint(0, 1000, (4096,))
    assert torch.equal(ge.gather(big, idx)[0], big[idx])


def test_gather_out_of_range():
    table = torch.randn(10, 4)
    with pytest.raises(ValueError, match=r"Gather: index 12 .* table of 10 rows"):
        ge.gather(table, torch.tensor([1, 12, 3]))
    with pytest.raises(ValueError, match=r"Gather: index -1 "):
        ge.gather(table, torch.tensor([-1.0]))
    with pytest.raises(ValueError, match=r"Gather: index 1.5"):
        ge.gather(table, torch.tensor([1.5]))
    with pytest.raises(TypeError, match="'table'"):
        ge.gather(table.double(), torch.tensor([1]))


def test_gather_error_through_program():
    table = np.random.randn(10, 4).astype(np.float32)
    index = np.array([0, 99], np.float32)
    instrs = [instr(Op.Gather, [0, 1, 2], n=2, rows=10, D=4)]
    rows, deps = encode_program(instrs)
    prog = _C.Program(spec(), rows, deps, np.array([40, 2, 8], np.int64), np.array([1, 1, 0], np.int32),
                      np.array([0, 0, 0], np.int64), [(0, table), (1, index)], 8, [], [])
    with pytest.raises(ValueError, match="Gather: index 99 .*10 rows"):
        prog.run([], [])


def test_malformed_rows():
    a = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="Iota operand 0"):
        _C.run_instr(instr(Op.Iota, [0], numel=9).encode(), [a], spec())
    with pytest.raises(ValueError, match="Select operand 2"):
        _C.run_instr(instr(Op.Select, [0, 1, 2, 3], view_layout([8], [(0, [1]), (0, [1]), (1, [1]), (0, [1])])
                           ).encode(), [a, a.copy(), a.copy(), a.copy()], spec())
    with pytest.raises(ValueError, match="Gather operand 2"):
        _C.run_instr(instr(Op.Gather, [0, 1, 2], n=4, rows=2, D=4).encode(), [a, a.copy(), a.copy()], spec())
