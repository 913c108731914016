"""Custom ops over every device dtype of the headers (kFloat, kBFloat16, kHalf, kInt, kShort, kChar, kByte): in
eager, inside trace and in a saved model run in a fresh process. The oracle is the same arithmetic in torch
(one rounding per op for the 16-bit floats, wrap-around for the small ints)."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import torch_neuronx_emu
from neuron_emu.custom_op.library import CustomOpError
from torch_neuronx_emu.xla_impl import custom_op

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "custom_op_src")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.int32, torch.int16, torch.int8, torch.uint8]


@pytest.fixture(scope="module")
def dt(tmp_path_factory):
    d = tmp_path_factory.mktemp("dtypes_build")
    custom_op.load("dtypes", [os.path.join(SRC, "dtypes.cpp")], [os.path.join(SRC, "dtypes_shape.cpp")],
                   build_directory=str(d))
    return d


def operands(dtype, shape=(5, 7)):
    g = torch.Generator().manual_seed(3)
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g) * 100).to(dtype), (torch.randn(shape, generator=g) * 100).to(dtype)
    info = torch.iinfo(dtype)
    lo, hi = max(info.min, -(1 << 20)), min(info.max, 1 << 20)
    return (torch.randint(lo, hi + 1, shape, generator=g).to(dtype),
            torch.randint(lo, hi + 1, shape, generator=g).to(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_eager_each_dtype_matches_torch(dt, dtype):
    x, y = operands(dtype)
    got = torch.ops.dt_ops.sub(x, y)
    assert got.dtype == dtype
    torch.testing.assert_close(got, x - y, rtol=0, atol=0)  # int8/uint8 wrap around like torch
    meta = torch.ops.dt_ops.sub(x.to("meta"), y.to("meta"))
    assert meta.dtype == dtype and meta.shape == x.shape


def test_eager_dtype_changing_ops(dt):
    x = torch.randn(6, 11) * 50
    got = torch.ops.dt_ops.floor_int(x)
    assert got.dtype == torch.int32
    torch.testing.assert_close(got, torch.floor(x).to(torch.int32), rtol=0, atol=0)
    i = torch.arange(-40, 41, dtype=torch.int32) * 9973
    torch.testing.assert_close(torch.ops.dt_ops.times3(i), i * 3, rtol=0, atol=0)


def test_dtype_errors_name_the_op_and_argument(dt):
    with pytest.raises(CustomOpError, match=r"dt_ops::sub: tensor argument 0 has dtype torch.float64; GpSimd custom "
                                            r"ops take tensors of dtype uint8, int8, int16, int32, float16, float32"):
        torch.ops.dt_ops.sub(torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64))
    big = torch.tensor([1 << 25, 3], dtype=torch.int32)
    with pytest.raises(CustomOpError, match=r"dt_ops::times3: tensor argument 0 \(int32\) holds values beyond \+-2\^24"):
        torch.ops.dt_ops.times3(big)
    # an output the fp32 device buffer cannot hold exactly is an error, never a silently rounded value
    with pytest.raises(CustomOpError, match=r"dt_ops::times3: element 1 of the op's output \(kInt\) is 16777221, "
                                            r"beyond \+-2\^24"):
        torch.ops.dt_ops.times3(torch.tensor([1, 5592407], dtype=torch.int32))


def test_tcm_cost_counts_the_dtypes_bytes(dt):
    """Same elements and transfers; the bf16 copy moves 2 bytes per element in and out instead of 4."""
    from neuron_emu.custom_op.torch_ops import CURRENT
    from neuron_emu.hardware import CUSTOM_OP_COSTS
    x = torch.randn(64, 100)
    cycles = {}
    for dtype in (torch.float32, torch.bfloat16, torch.int16):
        xd = x.to(dtype) if dtype.is_floating_point else (x * 100).to(dtype)
        torch.testing.assert_close(torch.ops.dt_ops.tcm_copy(xd), xd, rtol=0, atol=0)
        cycles[dtype] = CURRENT[("dt_ops", "tcm_copy")].last_cost["cycles"]
    # a 4 KB TCM buffer: fp32 in chunks of 1024 elements, 16-bit in chunks of 2048; each chunk is one transfer
    # in and one out, each paying the setup
    chunks = lambda per: -(-x.numel() // per)  # noqa: E731
    extra_setups = 2 * (chunks(1024) - chunks(2048)) * CUSTOM_OP_COSTS.tcm_setup_cycles
    saved_bytes = 2 * x.numel() * 2 / CUSTOM_OP_COSTS.tcm_bytes_per_cycle
    assert cycles[torch.float32] - cycles[torch.bfloat16] == pytest.approx(saved_bytes + extra_setups, rel=1e-6)
    assert cycles[torch.int16] == pytest.approx(cycles[torch.bfloat16], rel=1e-9)


class SubModel(torch.nn.Module):
    def forward(self, x, y):
        return torch.ops.dt_ops.sub(x, y)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int32, torch.int16, torch.int8, torch.uint8],
                         ids=lambda d: str(d)[6:])
def test_traced_each_dtype_is_a_gpsimd_instruction(dt, dtype):
    x, y = operands(dtype, (4, 9))
    traced = torch_neuronx_emu.trace(SubModel().eval(), (x, y))
    got = traced(x, y)
    assert got.dtype == dtype
    torch.testing.assert_close(got, x - y, rtol=0, atol=0)
    assert torch_neuronx_emu.last_call().engines["GpSimdE"].instructions == 1


def test_traced_dtype_models_saved_and_run_in_a_fresh_process(dt, tmp_path):
    class Mixed(torch.nn.Module):
        def forward(self, x, i):
            return torch.ops.dt_ops.floor_int(x * 4.0) + torch.ops.dt_ops.times3(i).reshape(3, 8), \
                torch.ops.dt_ops.sub(x.to(torch.bfloat16), x.to(torch.bfloat16) * 0.5)

    x, i = torch.randn(3, 8), torch.arange(24, dtype=torch.int32) - 12
    traced = torch_neuronx_emu.trace(Mixed().eval(), (x, i))
    a, b = traced(x, i)
    ea, eb = Mixed()(x, i)
    torch.testing.assert_close(a, ea, rtol=0, atol=0)
    torch.testing.assert_close(b, eb, rtol=0, atol=0)
    torch.jit.save(traced, str(tmp_path / "m.pt"))
    torch.save({"x": x, "i": i, "a": a, "b": b}, str(tmp_path / "io.pt"))
    code = textwrap.dedent(f"""
        import torch
        from torch_neuronx_emu.xla_impl import custom_op
        custom_op.load_library({str(dt / 'libdtypes.so')!r})
        io = torch.load({str(tmp_path / 'io.pt')!r})
        a, b = torch.jit.load({str(tmp_path / 'm.pt')!r})(io["x"], io["i"])
        print("SAME:", a.dtype, b.dtype, torch.equal(a, io["a"]) and torch.equal(b, io["b"]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert "SAME: torch.int32 torch.bfloat16 True" in r.stdout, r.stdout + r.stderr
