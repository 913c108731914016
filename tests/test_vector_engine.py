"""VectorE kernels vs PyTorch CPU eager, hand-computed costs, and malformed-instruction errors."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuron_emu import _C
from neuron_emu.isa import DType, Instr, Op, view_layout
from neuron_emu.kernels import vector_engine as ve
from neuron_emu.kernels._run import spec
from isa_util import instr

torch.manual_seed(0)


def rnd(*shape):
    return torch.randn(*shape, dtype=torch.float32)


TORCH_BIN = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "max": torch.maximum,
    "min": torch.minimum, "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt,
    "ge": torch.ge, "and": torch.logical_and, "or": torch.logical_or, "xor": torch.logical_xor,
    "fmod": torch.fmod, "remainder": torch.remainder, "floordiv": torch.floor_divide,
    "copysign": torch.copysign, "fmax": torch.fmax, "fmin": torch.fmin,
}


@pytest.mark.parametrize("op", ["atan2", "hypot"])
def test_binary_libm_vs_torch(op):
    a, b = rnd(5, 7, 9) * 4, rnd(5, 7, 9) * 3
    a[0, 0, :3] = 0.0
    b[0, 1, :3] = 0.0
    out, _ = ve.binary(a, b, op)
    torch.testing.assert_close(out, getattr(torch, op)(a, b), rtol=2e-6, atol=1e-7)


def test_fmax_fmin_ignore_nan():
    a = torch.tensor([float("nan"), 1.0, float("nan"), -2.0])
    b = torch.tensor([3.0, float("nan"), float("nan"), 5.0])
    for op in ("fmax", "fmin"):
        out, _ = ve.binary(a, b, op)
        torch.testing.assert_close(out, getattr(torch, op)(a, b), equal_nan=True)


@pytest.mark.parametrize("op", sorted(TORCH_BIN))
def test_binary_exact_vs_torch(op):
    a = rnd(5, 7, 9) * 4
    b = rnd(5, 7, 9) * 3
    a[0, 0, :3] = 0.0
    b[0, 1, :3] = 0.0
    a[1, 1, 1] = b[1, 1, 1]
    if op in ("div", "fmod", "remainder", "floordiv"):
        b = torch.where(b.abs() < 0.1, torch.full_like(b, 0.7), b)
    out, cost = ve.binary(a, b, op)
    ref = TORCH_BIN[op](a, b).to(torch.float32)
    assert torch.equal(out, ref), (op, (out - ref).abs().max())
    assert cost["engine"] == "VectorE"


def test_binary_pow_and_nan():
    a = rnd(33, 17).abs() + 0.1
    b = rnd(33, 17)
    out, _ = ve.binary(a, b, "pow")
    torch.testing.assert_close(out, torch.pow(a, b), rtol=1e-6, atol=0)
    x = torch.tensor([float("nan"), 1.0, 2.0])
    y = torch.tensor([0.0, float("nan"), 1.0])
    assert torch.equal(ve.binary(x, y, "max")[0].isnan(), torch.maximum(x, y).isnan())


def test_binary_broadcast_and_strided():
    a = rnd(6, 1, 5)
    b = rnd(4, 1)
    out, cost = ve.binary(a, b, "sub")
    assert torch.equal(out, a - b)
    base = rnd(10, 12)
    v1 = base[1:9:2, ::3]          # strided view with offset
    v2 = base.t()[:4, 2:6]         # transposed view
    out, _ = ve.binary(v1, v2, "mul")
    assert torch.equal(out, v1 * v2)
    # scalar operand goes through tensor_scalar
    out, cost = ve.binary(v1, 2.5, "add")
    assert torch.equal(out, v1 + 2.5) and cost["instructions"] == 1
    # 0-d and empty
    assert torch.equal(ve.binary(torch.tensor(2.0), torch.tensor(3.0), "mul")[0], torch.tensor(6.0))
    assert ve.binary(rnd(0, 3), rnd(3), "add")[0].shape == (0, 3)


def test_tensor_scalar_chains_and_reverse():
    x = rnd(37, 41)
    out, _ = ve.tensor_scalar(x, 2.0, "mul", 1.0, "add")
    assert torch.equal(out, x * 2.0 + 1.0)
    out, _ = ve.tensor_scalar(x, 1.0, "sub", reverse0=True)
    assert torch.equal(out, 1.0 - x)
    out, _ = ve.tensor_scalar(x, 3.0, "add", 1.0, "div", reverse1=True)
    assert torch.equal(out, 1.0 / (x + 3.0))
    out, _ = ve.tensor_scalar(x.t(), 0.5, "max")
    assert torch.equal(out, torch.clamp_min(x.t(), 0.5))


def test_out_dtype_rounds_like_round_to():
    x = rnd(8, 16)
    for name, code in (("bf16", DType.BF16), ("fp16", DType.FP16), ("fp8_e4m3", DType.FP8E4M3)):
        out, _ = ve.binary(x, x, "add", out_dtype=name)
        ref = torch.from_numpy(_C.round_to((x + x).numpy(), int(code)))
        assert torch.equal(out, ref)
        out, _ = ve.copy(x.t(), out_dtype=name)
        assert torch.equal(out, torch.from_numpy(_C.round_to(x.t().contiguous().numpy(), int(code))))


@pytest.mark.parametrize("op", ["sum", "max", "min", "mean", "prod", "argmax", "argmin", "any", "all"])
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_reduce_vs_torch(op, dim):
    x = rnd(5, 200, 3)
    if op == "prod":
        x = 1 + 0.01 * x
    if op in ("any", "all"):
        x = (rnd(5, 200, 3) > 1.5).float() if op == "any" else (rnd(5, 200, 3) > -2.5).float()
    out, _ = ve.reduce(x, dim, op)
    ref = {"sum": lambda: x.sum(dim), "max": lambda: x.amax(dim), "min": lambda: x.amin(dim),
           "mean": lambda: x.mean(dim), "prod": lambda: x.prod(dim), "argmax": lambda: x.argmax(dim).float(),
           "argmin": lambda: x.argmin(dim).float(), "any": lambda: x.bool().any(dim).float(),
           "all": lambda: x.bool().all(dim).float()}[op]()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_reduce_ties_nan_keepdim_and_large_inner():
    x = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, float("nan"), 5.0, float("nan")]])
    assert ve.reduce(x, 1, "argmax")[0].tolist() == [1.0, 1.0]
    assert ve.reduce(x, 1, "argmin")[0].tolist() == [3.0, 1.0]
    assert math.isnan(ve.reduce(x, 1, "max")[0][1])
    y = rnd(3, 7, 300)
    out, _ = ve.reduce(y, 1, "sum", keepdim=True)
    torch.testing.assert_close(out, y.sum(1, keepdim=True), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,dim", [((4, 33), -1), ((3, 700), 1), ((5, 6, 7), 1), ((130, 3, 2), 0)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_vs_torch(shape, dim, log):
    x = rnd(*shape) * 10
    out, _ = ve.softmax(x, dim, log=log)
    ref = F.log_softmax(x, dim) if log else F.softmax(x, dim)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_softmax_extremes():
    x = torch.tensor([[1000.0, 0.0, -1000.0], [-float("inf"), 0.0, 1.0]])
    torch.testing.assert_close(ve.softmax(x, 1)[0], F.softmax(x, 1))
    torch.testing.assert_close(ve.softmax(x, 1, log=True)[0], F.log_softmax(x, 1))
    # NaN / inf past the first 16 lanes of the vectorised row max, along a contiguous and a strided dim
    y = rnd(3, 37, 40) * 10
    y[0, 5, 20] = float("nan")
    y[1, 30, 3] = float("inf")
    y[2, :, 7] = -float("inf")
    for dim in (-1, 1):
        torch.testing.assert_close(ve.softmax(y, dim)[0], F.softmax(y, dim), rtol=1e-5, atol=1e-6, equal_nan=True)
        torch.testing.assert_close(ve.softmax(y, dim, log=True)[0], F.log_softmax(y, dim), rtol=1e-5, atol=1e-6,
                                   equal_nan=True)


@pytest.mark.parametrize("affine", [(True, True), (True, False), (False, True), (False, False)])
def test_layer_norm(affine):
    x = rnd(6, 5, 97) * 3 + 1000.0  # large mean: needs a stable variance
    w = rnd(97) if affine[0] else None
    b = rnd(97) if affine[1] else None
    out, _ = ve.layer_norm(x, w, b, eps=1e-5)
    ref = F.layer_norm(x, (97,), w, b, 1e-5)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    out, _ = ve.layer_norm(x, rnd(5, 97), None, normalized_shape=(5, 97))


def test_layer_norm_precise():
    x = rnd(4, 768)
    w, b = rnd(768), rnd(768)
    torch.testing.assert_close(ve.layer_norm(x, w, b, 1e-12)[0], F.layer_norm(x, (768,), w, b, 1e-12),
                               rtol=1e-5, atol=1e-5)


def test_batch_norm():
    x = rnd(3, 5, 7, 6)
    m, v, w, b = rnd(5), rnd(5).abs() + 0.1, rnd(5), rnd(5)
    out, _ = ve.batch_norm(x, m, v, w, b, eps=1e-5)
    torch.testing.assert_close(out, F.batch_norm(x, m, v, w, b, False, 0.0, 1e-5), rtol=1e-5, atol=1e-6)
    out, _ = ve.batch_norm(x, m, v)
    torch.testing.assert_close(out, F.batch_norm(x, m, v, None, None, False, 0.0, 1e-5), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k,s,p,d,ceil", [(3, 2, 1, 1, False), (3, 2, 1, 1, True), (2, 2, 0, 1, True),
                                          (3, 1, 1, 2, False), ((3, 2), (2, 3), (1, 1), (2, 1), True)])
def test_max_pool(k, s, p, d, ceil):
    x = rnd(2, 3, 11, 10)
    out, _ = ve.pool2d(x, k, s, p, "max", dilation=d, ceil_mode=ceil)
    assert torch.equal(out, F.max_pool2d(x, k, s, p, d, ceil_mode=ceil))


@pytest.mark.parametrize("k,s,p,ceil,cip,dov", [(3, 2, 1, False, True, None), (3, 2, 1, True, False, None),
                                                (2, 2, 0, True, True, None), (3, 2, 1, True, True, 5),
                                                ((3, 2), (2, 1), (1, 0), False, False, None)])
def test_avg_pool(k, s, p, ceil, cip, dov):
    x = rnd(2, 3, 11, 10)
    out, _ = ve.pool2d(x, k, s, p, "avg", ceil_mode=ceil, count_include_pad=cip, divisor_override=dov)
    ref = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip, divisor_override=dov)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


def test_copy_transpose_scan():
    base = rnd(9, 14)
    out, _ = ve.copy(base[::2, 1::3])
    assert torch.equal(out, base[::2, 1::3])
    dst = torch.zeros(14, 9)
    ve.copy(base[:5, :9], out=dst.t()[:9, :5].t())   # write into a transposed view
    assert torch.equal(dst.t()[:9, :5].t(), base[:5, :9]) and int((dst != 0).sum()) == 45
    for P, Fr in ((45, 70), (128, 33), (1, 5), (32, 32)):
        x = rnd(P, Fr)
        out, cost = ve.transpose(x)
        assert torch.equal(out, x.t())
    x = rnd(4, 50, 3)
    for dim in (0, 1, 2):
        torch.testing.assert_close(ve.scan(x, dim, "add")[0], x.cumsum(dim), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ve.scan(1 + 0.01 * x, dim, "mul")[0], (1 + 0.01 * x).cumprod(dim))
        assert torch.equal(ve.scan(x, dim, "max")[0], x.cummax(dim).values)
        assert torch.equal(ve.scan(x, dim, "min")[0], x.cummin(dim).values)


def test_large_parallel_paths():
    a, b = rnd(256, 1024), rnd(1024)
    assert torch.equal(ve.binary(a, b, "add")[0], a + b)
    x = rnd(64, 2048)
    torch.testing.assert_close(ve.softmax(x, 1)[0], F.softmax(x, 1), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ve.reduce(x, 0, "sum")[0], x.sum(0), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- costs written by hand
def test_costs_by_hand():
    c = ve.binary(rnd(128, 1024), rnd(128, 1024), "add")[1]
    assert (c["cycles"], c["instructions"]) == (2048.0, 2)       # 2 x max(64, 2*512)
    assert c["bytes"] == 128 * 1024 * 12
    c = ve.binary(rnd(4, 8), rnd(4, 8), "mul")[1]
    assert (c["cycles"], c["instructions"]) == (64.0, 1)         # max(64, 2*1)
    c = ve.tensor_scalar(rnd(128, 600), 2.0, "mul")[1]
    assert (c["cycles"], c["instructions"]) == (600.0, 2)        # max(64,512) + max(64,88)
    c = ve.reduce(rnd(256, 1000), 1, "sum")[1]
    assert (c["cycles"], c["instructions"]) == (2000.0, 4)       # 2 partition tiles x (512 + 488)
    c = ve.softmax(rnd(128, 512), -1)[1]
    # VectorE: reduce 512 + multiply 512 + reciprocal max(64, 8); ScalarE (serial): exp-accumulate 512 + 64
    assert c["cycles"] == 512 + 512 + 64 and c["instructions"] == 3
    assert (c["aux_engine"], c["aux_cycles"], c["aux_serial"]) == ("ScalarE", 576, True)
    assert c["span_ns"] == pytest.approx(1088 / 1.12 + 576 / 1.4)
    c = ve.layer_norm(rnd(128, 768), rnd(768), rnd(768))[1]
    # chunks 512, 256: bn_stats + normalize + mul w + add b; bn_aggr max(64, 13*4)=64; rstd 64
    assert c["cycles"] == (512 + 512 + 1024 + 1024) + (256 + 256 + 512 + 512) + 64 + 64
    assert c["instructions"] == 10
    c = ve.pool2d(rnd(1, 128, 16, 16), 2, 2, kind="max")[1]
    assert c["cycles"] == 64 + 3 * 128                             # copy + 3 max taps over N = 64
    c = ve.transpose(rnd(128, 64))[1]
    assert (c["cycles"], c["instructions"]) == (128.0, 2)
    assert c["ns"] == pytest.approx(128 / 1.12)


# ---------------------------------------------------------------- argument and instruction errors
def test_bad_arguments_name_the_argument():
    with pytest.raises(TypeError, match="'b'.*float32"):
        ve.binary(rnd(3), torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="broadcast"):
        ve.binary(rnd(3, 4), rnd(5))
    with pytest.raises(ValueError, match="'op'"):
        ve.binary(rnd(3), rnd(3), "frobnicate")
    with pytest.raises(ValueError, match="'x' must be contiguous"):
        ve.softmax(rnd(4, 5).t())
    with pytest.raises(ValueError, match="'dim'"):
        ve.reduce(rnd(4, 5), 2)
    with pytest.raises(ValueError, match="'weight' has shape"):
        ve.layer_norm(rnd(4, 5), rnd(4))
    with pytest.raises(ValueError, match="'out_dtype'"):
        ve.copy(rnd(3), out_dtype="int7")
    with pytest.raises(ValueError, match="padding"):
        ve.pool2d(rnd(1, 1, 8, 8), 2, 2, 2)
    with pytest.raises(ValueError, match="'mean' has shape"):
        ve.batch_norm(rnd(2, 3, 4), rnd(4), rnd(3))


def _run(op, arrays, view=None, **given):
    return _C.run_instr(instr(op, range(len(arrays)), view, **given).encode(), arrays, spec())


def test_malformed_rows_raise_value_error():
    a = np.zeros(16, np.float32)
    b = np.zeros(16, np.float32)
    o = np.zeros(16, np.float32)
    ok = view_layout([4, 4], [(0, [4, 1])] * 3)
    _run(Op.TensorTensor, [a, b, o], ok, alu=0)
    with pytest.raises(ValueError, match="TensorTensor operand 1"):
        _run(Op.TensorTensor, [a, b, o], view_layout([4, 4], [(0, [4, 1]), (1, [4, 1]), (0, [4, 1])]), alu=0)
    with pytest.raises(ValueError, match="alu code 99"):
        _run(Op.TensorTensor, [a, b, o], ok, alu=99)
    with pytest.raises(ValueError, match="out_dtype"):
        _run(Op.TensorTensor, [a, b, o], ok, alu=0, out_dtype=17)
    with pytest.raises(ValueError, match="ndim"):
        _run(Op.TensorCopy, [a, o], {0: 9})
    with pytest.raises(ValueError, match="alu code"):
        _run(Op.TensorScalar, [a, o], view_layout([16], [(0, [1])] * 2), alu0=0, alu1=55)
    with pytest.raises(ValueError, match="reduce op"):
        _run(Op.TensorReduce, [a, o], outer=4, R=4, inner=1, reduce_op=42)
    with pytest.raises(ValueError, match="needs 64 elements"):
        _run(Op.TensorReduce, [a, o], outer=4, R=16, inner=1)
    with pytest.raises(ValueError, match="overflows"):
        _run(Op.Softmax, [a, o], outer=1 << 40, R=1 << 40, inner=1)
    with pytest.raises(ValueError, match="outer -1 not in"):
        _run(Op.Scan, [a, o], outer=-1, R=4, inner=1)
    with pytest.raises(ValueError, match="stride height"):
        _run(Op.Pool2d, [a, o], NC=1, H=4, W=4, kh=2, kw=2, sh=0, sw=1, dh=1, dw=1, OH=2, OW=2)
    with pytest.raises(ValueError, match="operands"):
        _run(Op.LayerNorm, [a, o], rows=4, D=4, has_weight=1, has_bias=1)
    with pytest.raises(ValueError, match="output"):
        _run(Op.VecTranspose, [np.zeros(32, np.float32), o], P=4, F=8)
