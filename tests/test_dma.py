"""DMA: strided copies, costs in ns, and IoIn / IoOut host dtype conversions through a Program."""
import numpy as np
import pytest
import torch

from neuron_emu import _C
from neuron_emu.isa import Instr, IoDType, Op, encode_program, view_layout
from neuron_emu.kernels import dma
from neuron_emu.kernels._run import spec
from isa_util import instr


def dma_ns(nbytes, payload):
    """docs/cost-model.md: bytes at 16 queues x 17 B/ns (under the 410 GB/s HBM share), efficiency p / (p + 512)."""
    p = max(payload, 1)
    return nbytes / (16 * 17.0 * p / (p + 512))


def test_copy_strided_and_cost():
    base = torch.randn(128, 1024)
    out, c = dma.copy(base[:, ::2])
    assert torch.equal(out, base[:, ::2])
    assert c["engine"] == "DMA" and c["bytes"] == 128 * 512 * 4 and c["instructions"] == 1
    # every other element: a strided access pattern runs at half rate (NKI-V2: innermost stride > 16 bytes)
    assert c["ns"] == pytest.approx(2 * dma_ns(262144, 262144 / 128)) and c["latency_ns"] == 1300
    _, c = dma.copy(base)
    assert c["ns"] == pytest.approx(dma_ns(128 * 1024 * 4, 4096))  # one 4 KiB row per partition, contiguous
    dst = torch.zeros(6, 4)
    src = torch.randn(4, 6)
    dma.copy(src.t(), dst)
    assert torch.equal(dst, src.t())
    _, c = dma.copy(torch.randn(10), elem_bytes=2)
    assert c["bytes"] == 20
    c = dma.load_cost(4096)
    assert c["ns"] == pytest.approx(dma_ns(4096, 32)) and c["bytes"] == 4096 and c["span_ns"] == c["ns"] + 1300


def test_errors():
    with pytest.raises(ValueError, match="'dst' has shape"):
        dma.copy(torch.randn(3), torch.zeros(4))
    with pytest.raises(ValueError, match="'queue'"):
        dma.copy(torch.randn(3), queue="north")
    a = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="DmaCopy operand 0"):
        _C.run_instr(instr(Op.DmaCopy, [0, 1], view_layout([8], [(4, [1]), (0, [1])]), elem_bytes=4).encode(),
                     [a, a.copy()], spec())
    with pytest.raises(ValueError, match="runs only inside a Program"):
        _C.run_instr(instr(Op.IoIn, [0], numel=8).encode(), [a], spec())


def _roundtrip(x: torch.Tensor, in_dt: IoDType, out_dt: IoDType, out_torch_dtype):
    n = x.numel()
    instrs = [instr(Op.IoIn, [0], io_index=0, io_dtype=in_dt, numel=n),
              instr(Op.IoOut, [0], deps=[0], io_index=0, io_dtype=out_dt, numel=n)]
    rows, deps = encode_program(instrs)
    prog = _C.Program(spec(), rows, deps, np.array([n], np.int64), np.array([0], np.int32), np.array([0], np.int64),
                      [], n, [(n, int(in_dt))], [(n, int(out_dt))])
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=out_torch_dtype)
    prog.run([x.data_ptr()], [out.data_ptr()])
    stats = prog.last_stats()
    return out, stats


IN_TYPES = [(IoDType.F32, torch.float32), (IoDType.F64, torch.float64), (IoDType.F16, torch.float16),
            (IoDType.BF16, torch.bfloat16), (IoDType.I64, torch.int64), (IoDType.I32, torch.int32),
            (IoDType.I16, torch.int16), (IoDType.I8, torch.int8), (IoDType.U8, torch.uint8),
            (IoDType.Bool, torch.bool)]


@pytest.mark.parametrize("dt,tdt", IN_TYPES)
def test_io_in(dt, tdt):
    src = torch.randn(1000) * 100
    src[:6] = torch.tensor([0.0, -0.0, 1e-7, 70000.0, float("inf"), -5.5])
    x = src.to(tdt)
    out, stats = _roundtrip(x, dt, IoDType.F32, torch.float32)
    assert torch.equal(out, x.to(torch.float32))
    dma_ns, dma_ns_of = stats["engines"]["DMA"]["busy_ns"], lambda b: globals()["dma_ns"](b, b / 128)
    # device side only (the host link copy is Program's host_in/out time): bytes spread over 128 partitions
    assert dma_ns == pytest.approx(sum(dma_ns_of(1000 * b) for b in (x.element_size(), 4)))


@pytest.mark.parametrize("dt,tdt", IN_TYPES)
def test_io_out(dt, tdt):
    x = torch.randn(2000) * 50
    x[:10] = torch.tensor([0.0, -0.0, 0.5, -0.5, 1.5, -1.7, 127.9, -128.2, 65519.0, 70000.0])
    if tdt == torch.bfloat16 or tdt == torch.float16:
        x[10:14] = torch.tensor([float("inf"), float("nan"), 1e-6, 3e-8])
    out, _ = _roundtrip(x, IoDType.F32, dt, tdt)
    ref = x.to(tdt)
    if tdt in (torch.float16, torch.bfloat16):
        assert torch.equal(out.view(torch.int16)[~x.isnan()], ref.view(torch.int16)[~x.isnan()])
        assert out[11].isnan()
    elif tdt in (torch.int8, torch.uint8, torch.int16):
        sel = x.abs() < 100  # in range of the narrow type: truncation toward zero
        assert torch.equal(out[sel], ref[sel])
    else:
        assert torch.equal(out, ref)


def test_io_bad_dtype_rejected_at_load():
    rows, deps = encode_program([instr(Op.IoIn, [0], io_index=0, io_dtype=12, numel=4)])
    with pytest.raises(ValueError, match="io dtype"):
        _C.Program(spec(), rows, deps, np.array([4], np.int64), np.array([0], np.int32), np.array([0], np.int64),
                   [], 4, [(4, 0)], [])
