"""The program-level cost model (csrc/program.cpp, docs/cost-model.md) on hand-built programs whose timeline can be
worked out by hand from the published constants: dependent-instruction overhead, DMA latency overlap, SBUF spills
with their traffic counted, PSUM evacuation on ScalarE, the host link framing each call; and (slow) the
4096x8192x8192 bf16 matmul against its formula ideal."""
import numpy as np
import pytest
import torch

from neuron_emu import _C
from neuron_emu.isa import Alu, DType, IoDType, Op, encode_program, view_layout
from neuron_emu.kernels import tensor_engine as te
from neuron_emu.kernels._run import spec
from isa_util import instr

VE_GHZ, DEP, MIN_II = 1.12, 100, 64
RATE = 16 * 17.0                       # DMA bytes/ns: 16 queues x 17 B/ns (below the 410 GB/s HBM share)
PCIE, FIXED = 31.5, 1300.0


def dma_ns(nbytes):                    # spread over 128 partitions, efficiency p / (p + 512)
    p = nbytes / 128
    return nbytes / (RATE * p / (p + 512))


def chain(n, k, **ts):
    """IoIn x -> k dependent TensorScalar (x * 2) -> IoOut, all on one buffer of n floats."""
    v = view_layout([n], [(0, [1]), (0, [1])])
    ins = [instr(Op.IoIn, [0], io_index=0, io_dtype=IoDType.F32, numel=n)]
    for i in range(k):
        ins.append(instr(Op.TensorScalar, [0, 0], v, deps=[i], alu0=Alu.Mul, scalar0=2.0, alu1=-1, **ts))
    ins.append(instr(Op.IoOut, [0], deps=[k], io_index=0, io_dtype=IoDType.F32, numel=n))
    rows, deps = encode_program(ins)
    return _C.Program(spec(), rows, deps, np.array([n], np.int64), np.array([0], np.int32), np.array([0], np.int64),
                      [], n, [(n, int(IoDType.F32))], [(n, int(IoDType.F32))])


def test_dependent_chain_pays_the_static_overhead_and_host_link():
    n, k = 128 * 4, 10                                # N = 4 elements per partition: MIN_II-bound
    p = chain(n, k)
    tl = p.timeline()
    mem = tl["memory"]
    io = dma_ns(n * 4)
    assert mem["host_in_ns"] == pytest.approx(FIXED + n * 4 / PCIE) == pytest.approx(mem["host_out_ns"])
    # IoIn (bytes + 1300 ns latency), then k instructions of MIN_II + the dependency overhead, then IoOut
    expected = (io + FIXED) + k * (MIN_II + DEP) / VE_GHZ + (io + FIXED)
    assert mem["device_ns"] == pytest.approx(expected)
    st = p.last_stats()
    assert st["latency_ns"] == pytest.approx(mem["host_in_ns"] + expected + mem["host_out_ns"])
    assert st["engines"]["VectorE"]["busy_ns"] == pytest.approx(k * (MIN_II + DEP) / VE_GHZ)
    assert mem["spill_bytes"] == 0 and mem["sbuf_peak_bytes"] == n * 4


def test_dma_latency_overlaps_other_transfers():
    """Two independent weight loads: the second waits for the first's bytes, not for its 1300 ns latency."""
    n = 128 * 1024
    ins = [instr(Op.DmaLoad, [0], bytes=n * 4, queue=0), instr(Op.DmaLoad, [1], bytes=n * 4, queue=0),
           instr(Op.IoIn, [2], io_index=0, io_dtype=IoDType.F32, numel=1),
           instr(Op.IoOut, [2], deps=[0, 1, 2], io_index=0, io_dtype=IoDType.F32, numel=1)]
    rows, deps = encode_program(ins)
    w = np.zeros(n, np.float32)
    p = _C.Program(spec(), rows, deps, np.array([n, n, 1], np.int64), np.array([1, 1, 0], np.int32),
                   np.array([0, 0, 0], np.int64), [(0, w), (1, w)], 1, [(1, 0)], [(1, 0)])
    tl = p.timeline()
    one = dma_ns(n * 4)
    assert tl["start_ns"][1] == pytest.approx(one)                   # the queue is free after the bytes
    assert tl["end_ns"][1] == pytest.approx(2 * one + FIXED)         # ... the data lands 1300 ns later
    assert tl["memory"]["hbm_bytes"] == 2 * n * 4 + 2 * 4


def test_working_set_beyond_sbuf_spills_a_proportional_share():
    n = 8 * 2 ** 20                                   # 32 MiB of fp32 in, 32 MiB out: 64 MiB live > 24 MiB SBUF
    v = view_layout([n], [(0, [1]), (0, [1])])
    ins = [instr(Op.IoIn, [0], io_index=0, io_dtype=IoDType.F32, numel=n),
           instr(Op.TensorScalar, [0, 1], v, deps=[0], alu0=Alu.Mul, scalar0=2.0, alu1=-1),
           instr(Op.IoOut, [1], deps=[1], io_index=0, io_dtype=IoDType.F32, numel=n)]
    rows, deps = encode_program(ins)
    p = _C.Program(spec(), rows, deps, np.array([n, n], np.int64), np.array([0, 0], np.int32),
                   np.array([0, n], np.int64), [], 2 * n, [(n, 0)], [(n, 0)])
    tl = p.timeline()
    mem = tl["memory"]
    f = 1 - 24 * 2 ** 20 / (64 * 2 ** 20)
    op_bytes = 2 * n * 4                              # the TensorScalar reads and writes n fp32
    assert mem["spill_bytes"] == int(f * op_bytes)
    assert mem["working_set_peak_bytes"] == 64 * 2 ** 20 and mem["sbuf_peak_bytes"] == 24 * 2 ** 20
    # the spill streams alongside the instruction, which ends when both are done
    compute = ((n // 128) // 512) * 512 / VE_GHZ + DEP / VE_GHZ
    spill = tl["spills"]
    assert len(spill["start_ns"]) == 1 and spill["instr"][0] == 1
    assert tl["end_ns"][1] == pytest.approx(max(tl["start_ns"][1] + compute, spill["end_ns"][0]))
    assert spill["end_ns"][0] - spill["start_ns"][0] == pytest.approx(dma_ns(int(f * op_bytes)) + FIXED)
    assert spill["busy_end_ns"][0] == pytest.approx(spill["end_ns"][0] - FIXED)   # the DMA bandwidth's share
    # tensors larger than SBUF stay in device memory: IoIn moves nothing into SBUF
    assert tl["end_ns"][0] == pytest.approx(FIXED)


def test_matmul_psum_evacuation_on_scalar_engine():
    a, b = torch.randn(256, 128), torch.randn(128, 1024)
    _, c = te.matmul(a, b, dtype="bf16", stationary="a")
    # out [256, 1024] in PSUM: A's 256 rows stationary (2 tiles of 128 partitions) x B's 1024 columns moving (2 tiles
    # of 512) -> 4 evacuations of max(64, 512) ScalarE cycles, pipelined with TensorE
    assert (c["aux_engine"], c["aux_cycles"], c["aux_serial"]) == ("ScalarE", 4 * 512, False)
    assert c["span_ns"] == pytest.approx(max(c["ns"], 4 * 512 / 1.4))


@pytest.mark.slow
def test_big_bf16_matmul_within_10_percent_of_ideal():
    """4096x8192 @ 8192x8192 in bf16 on one NeuronCore-v2: ideal 2*M*N*K / 91.75 TFLOPS = 5.99 ms."""
    from neuron_emu.compiler import compile_graph
    from neuron_emu.compiler.capture import capture
    from neuron_emu.compiler.options import parse_compiler_args
    from neuron_emu.runtime.model import LoadedModel

    class MM(torch.nn.Module):
        def forward(self, a, b):
            return a @ b
    graph = capture(MM(), (torch.randn(4096, 8192), torch.randn(8192, 8192)))[0]
    m = LoadedModel(compile_graph(graph, parse_compiler_args(["--auto-cast", "matmult"]), generation=2).blob)
    device_ms = m.program.timeline()["memory"]["device_ns"] * 1e-6
    ideal = 2 * 4096 * 8192 * 8192 / (128 * 128 * 2 * 2.8e9) * 1e3
    assert ideal == pytest.approx(5.99, abs=0.005)
    assert abs(device_ms / ideal - 1) < 0.10, device_ms


def _mm_cost(pe_transpose, batch=4, M=256, K=256, N=64):
    """Cost of one bf16 MatMul [batch, M, K] @ [batch, K, N] with the given operand-transpose bits."""
    ins = instr(Op.MatMul, [0, 1, 2], batch=batch, M=M, K=K, N=N, a_bstride=M * K, lda=K, b_bstride=K * N, ldb=N,
                out_bstride=M * N, in_dtype=DType.BF16, out_dtype=DType.F32, pe_transpose=pe_transpose,
                alpha=1.0, beta=0.0)
    arrays = [np.zeros(batch * M * K, np.float32), np.zeros(batch * K * N, np.float32),
              np.zeros(batch * M * N, np.float32)]
    return _C.run_instr(ins.encode(), arrays, spec())


def test_matmul_charges_pe_transposes_of_free_axis_operands():
    """An operand with K on the SBUF free axis goes through TensorE transposes first (NKI-ISA nc_transpose:
    max(P, min(64, F)) cycles per [P, F<=128] tile) and each [F, P] result is copied PSUM -> SBUF on ScalarE
    (max(MIN_II, P) per 128-partition tile); the values do not change."""
    plain, a_t, b_t = _mm_cost(0), _mm_cost(1), _mm_cost(2)
    # A [256, 256] per matrix: 2 slabs of 128 rows, each 2 tiles of 128 K-columns at max(128, 64) cycles
    assert a_t["cycles"] - plain["cycles"] == 4 * 2 * 2 * 128
    # each slab's [256, 128] result: 2 partition tiles of max(64, 128) ScalarE cycles
    assert a_t["aux_cycles"] - plain["aux_cycles"] == 4 * 2 * 2 * 128
    # B [N=64 rows, K=256]: one slab of 64 rows, 2 tiles at max(64, min(64, 128)); evacuation max(64, 64) x 2
    assert b_t["cycles"] - plain["cycles"] == 4 * 2 * 64
    assert b_t["aux_cycles"] - plain["aux_cycles"] == 4 * 2 * 64
    assert _mm_cost(3)["cycles"] - plain["cycles"] == 4 * 2 * 2 * 128 + 4 * 2 * 64
    with pytest.raises(ValueError, match="pe_transpose"):
        _mm_cost(4)


def _matmul_cycles(model, *inputs):
    """TensorE and ScalarE-aux cycles of each MatMul of the compiled model (--auto-cast matmult), in order."""
    from neuron_emu.compiler import compile_graph
    from neuron_emu.compiler.capture import capture
    from neuron_emu.compiler.options import parse_compiler_args
    from neuron_emu.runtime.model import LoadedModel
    graph = capture(model.eval(), inputs)[0]
    tl = LoadedModel(compile_graph(graph, parse_compiler_args(["--auto-cast", "matmult"]), generation=2).blob
                     ).program.timeline()
    mm = [i for i in range(len(tl["op"])) if int(tl["op"][i]) == int(Op.MatMul)]
    return [(float(tl["cycles"][i]), tl["aux_end_ns"][i] - tl["aux_start_ns"][i]) for i in mm]


def test_softmax_output_is_transposed_before_the_value_matmul():
    """softmax(S) @ V contracts over S's last dim, which the softmax left on the free axis (as the NKI fused
    attention tutorial's `nc_transpose(softmax_res)`); exp(S) @ V, elementwise on an input, needs no transpose."""
    class Attn(torch.nn.Module):
        def __init__(self, act):
            super().__init__()
            self.act = act

        def forward(self, s, v):
            return self.act(s) @ v
    s, v = torch.randn(4, 256, 256), torch.randn(4, 256, 64)
    (soft, soft_aux), = _matmul_cycles(Attn(lambda x: torch.softmax(x, -1)), s, v)
    (plain, plain_aux), = _matmul_cycles(Attn(torch.exp), s, v)
    assert soft - plain == 4 * 2 * 2 * 128                          # as test_matmul_charges_pe_transposes_...
    assert soft_aux - plain_aux == pytest.approx(4 * 2 * 2 * 128 / 1.4)


def test_layer_norm_output_is_transposed_once_for_its_matmuls():
    """Two Linear layers read one LayerNorm output (as Q, K and V projections do): one transposed copy serves both."""
    class Proj(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln, self.q, self.k = torch.nn.LayerNorm(256), torch.nn.Linear(256, 256), torch.nn.Linear(256, 256)

        def forward(self, x):
            h = self.ln(x)
            return self.q(h), self.k(h)

    class NoNorm(Proj):
        def forward(self, x):
            h = x * 2.0
            return self.q(h), self.k(h)
    x = torch.randn(256, 256)
    (q, _), (k, _) = _matmul_cycles(Proj(), x)
    (q0, _), (k0, _) = _matmul_cycles(NoNorm(), x)
    assert q - q0 == 2 * 2 * 128 and k == k0                      # [256 tokens, 256]: 2 slabs x 2 tiles
