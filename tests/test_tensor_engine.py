"""TensorE kernels: MatMul / Conv2d / Transpose numerics vs torch, cost formulas, and validation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuron_emu import _C
from neuron_emu.isa import DType, Instr, Op
from neuron_emu.kernels import _run
from neuron_emu.kernels.tensor_engine import conv2d, matmul, transpose
from isa_util import instr

TORCH = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


def tf32_round(t):
    """numpy RNE to 10 mantissa bits (fp32 exponent), independent of the extension."""
    u = t.numpy().view(np.uint32).astype(np.uint64)
    r = ((u + 0xFFF + ((u >> 13) & 1)) & 0xFFFFE000).astype(np.uint32)
    return torch.from_numpy(r.view(np.float32).copy()).reshape(t.shape)


def rnd(t, dtype):
    if dtype == "fp32":
        return t
    if dtype == "tf32":
        return tf32_round(t)
    return t.to(TORCH[dtype]).float()


def scale_for(dtype):
    # keep fp8 inputs in range (e4m3 max 448) and fp16 products away from overflow
    return 1.0 if dtype != "fp8_e4m3" else 4.0


def ref_mm(a, b, dtype):
    """exact products of the rounded inputs, accumulated in float64"""
    return rnd(a, dtype).double() @ rnd(b, dtype).double()


def assert_close_sumorder(out, ref, a_abs, b_abs, K):
    """|out - ref| may only come from fp32 accumulation order: bound K * eps32 * sum|a||b| per element"""
    bound = (a_abs.double() @ b_abs.double()) * (K + 2) * 2.0 ** -24 + 1e-30
    err = (out.double() - ref).abs()
    assert (err <= bound).all(), f"max err {err.max().item()} exceeds summation bound (max ratio {(err / bound).max().item()})"


DTYPES = ["fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (127, 129, 513), (129, 1, 127), (3, 513, 2), (64, 256, 1)])
def test_matmul_numerics(dtype, M, K, N):
    g = torch.Generator().manual_seed(M * 1000 + K + N)
    a = torch.randn(M, K, generator=g) * scale_for(dtype)
    b = torch.randn(K, N, generator=g)
    out, cost = matmul(a, b, dtype=dtype)
    assert out.shape == (M, N) and out.dtype == torch.float32
    assert_close_sumorder(out, ref_mm(a, b, dtype), rnd(a, dtype).abs(), rnd(b, dtype).abs(), K)
    assert cost["engine"] == "TensorE" and cost["flops"] == 2 * M * N * K


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp8_e5m2"])
@pytest.mark.parametrize("ta,tb", [(False, True), (True, False), (True, True)])
def test_matmul_transposes(dtype, ta, tb):
    M, K, N = 33, 130, 17
    a = torch.randn(M, K)
    b = torch.randn(K, N)
    a_in = a.t().contiguous() if ta else a
    b_in = b.t().contiguous() if tb else b
    out, _ = matmul(a_in, b_in, dtype=dtype, transpose_a=ta, transpose_b=tb)
    assert_close_sumorder(out, ref_mm(a, b, dtype), rnd(a, dtype).abs(), rnd(b, dtype).abs(), K)


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_matmul_batched_and_broadcast(dtype):
    Bt, M, K, N = 3, 17, 65, 9
    a = torch.randn(Bt, M, K)
    b = torch.randn(Bt, K, N)
    b2 = torch.randn(K, N)
    a1 = torch.randn(1, M, K)
    out, cost = matmul(a, b, dtype=dtype)
    assert out.shape == (Bt, M, N)
    assert_close_sumorder(out, ref_mm(a, b, dtype), rnd(a, dtype).abs(), rnd(b, dtype).abs(), K)
    out, _ = matmul(a, b2, dtype=dtype)                   # b broadcast (batch stride 0)
    assert_close_sumorder(out, ref_mm(a, b2, dtype), rnd(a, dtype).abs(), rnd(b2, dtype).abs().expand(Bt, K, N), K)
    out, _ = matmul(a1, b, dtype=dtype)                   # a batch of 1 broadcast
    ref = ref_mm(a1.expand(Bt, M, K), b, dtype)
    assert_close_sumorder(out, ref, rnd(a1, dtype).abs().expand(Bt, M, K), rnd(b, dtype).abs(), K)
    out, _ = matmul(a, b.transpose(1, 2).contiguous(), dtype=dtype, transpose_b=True)
    assert_close_sumorder(out, ref_mm(a, b, dtype), rnd(a, dtype).abs(), rnd(b, dtype).abs(), K)
    assert cost["flops"] == 2 * Bt * M * N * K


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_matmul_bias_accumulate_alpha_outdtype(dtype):
    M, K, N = 40, 70, 30
    a, b, bias = torch.randn(M, K), torch.randn(K, N), torch.randn(N)
    base = ref_mm(a, b, dtype)
    absb = rnd(a, dtype).abs()
    out, _ = matmul(a, b, dtype=dtype, bias=bias)
    assert_close_sumorder(out, base + bias.double(), absb, rnd(b, dtype).abs() + 1, K)
    out, _ = matmul(a, b, dtype=dtype, bias=bias, alpha=0.5, beta=2.0)
    assert_close_sumorder(out, 0.5 * base + 2 * bias.double(), absb, rnd(b, dtype).abs() + 2, K)
    acc = torch.randn(M, N)
    o2 = acc.clone()
    res, _ = matmul(a, b, dtype=dtype, out=o2, accumulate=True)
    assert res is o2
    assert_close_sumorder(o2, base + acc.double(), absb, rnd(b, dtype).abs() + acc.abs().max(), K)
    o3 = acc.clone()
    matmul(a, b, dtype=dtype, bias=bias, out=o3, accumulate=True)
    assert_close_sumorder(o3, base + acc.double() + bias.double(), absb, rnd(b, dtype).abs() + 8, K)
    # out_dtype rounds the fp32 result in place (in == out path of round_array)
    o4, _ = matmul(a, b, dtype=dtype, out_dtype="bf16")
    o5, _ = matmul(a, b, dtype=dtype)
    assert torch.equal(o4, o5.to(torch.bfloat16).float())


def test_matmul_k_zero_and_empty():
    out, cost = matmul(torch.zeros(3, 0), torch.zeros(0, 4), dtype="bf16")
    assert torch.equal(out, torch.zeros(3, 4)) and cost["cycles"] == 0 and cost["instructions"] == 0
    out, _ = matmul(torch.zeros(3, 0), torch.zeros(0, 4), bias=torch.arange(4.0))
    assert torch.equal(out, torch.arange(4.0).expand(3, 4))
    out, _ = matmul(torch.zeros(0, 5), torch.randn(5, 4))
    assert out.shape == (0, 4)


def test_matmul_cost_hand_computed():
    # 128 x 128 x 512, bf16, A stationary: 1 tile of max(min(64,128), 512) = 512 cycles, 2 instructions
    _, c = matmul(torch.randn(128, 128), torch.randn(128, 512), dtype="bf16")
    assert (c["cycles"], c["instructions"]) == (512, 2)
    assert c["ns"] == pytest.approx(512 / 2.8)
    # same in fp32: x4 = 2048
    _, c = matmul(torch.randn(128, 128), torch.randn(128, 512), dtype="fp32")
    assert c["cycles"] == 2048
    # M=129 K=127 N=513 bf16, A stationary: stationary tiles 128,1; moving 512,1; 1 K tile
    # (128,512)->512, (128,1)->max(64,1)=64, (1,512)->512, (1,1)->max(1,1)=1  => 1089 cycles, 4 tiles, 8 instr
    _, c = matmul(torch.randn(129, 127), torch.randn(127, 513), dtype="bf16")
    assert (c["cycles"], c["instructions"]) == (1089, 8)
    # the same with B stationary: stationary = N 513 -> tiles 128 x4, 1; moving = M 129 -> 129 (< 512)
    # 4 * max(64, 129) + max(min(64,1), 129) = 4*129 + 129 = 645 cycles, 5 tiles
    _, c = matmul(torch.randn(129, 127), torch.randn(127, 513), dtype="bf16", stationary="b")
    assert (c["cycles"], c["instructions"]) == (645, 10)
    # K = 300 -> 3 K tiles; M = 1 (matrix-vector, A stationary): max(min(64,1), 1000?) no: N = 1000 -> 512, 488
    # per K tile: max(1, 512) + max(1, 488) = 1000; x3 = 3000 cycles, 6 tiles; batch 2 -> 6000, 24 instr
    _, c = matmul(torch.randn(2, 1, 300), torch.randn(300, 1000), dtype="fp8_e4m3")
    assert (c["cycles"], c["instructions"]) == (6000, 24)
    # short moving: M=128 stationary, N=8: max(min(64,128), 8) = 64 (MM_INIT_LATENCY bound)
    _, c = matmul(torch.randn(128, 128), torch.randn(128, 8), dtype="fp16")
    assert c["cycles"] == 64
    # bytes: bf16 inputs 2 B, fp32 out 4 B: (128*128 + 128*512)*2 + 128*512*4
    _, c = matmul(torch.randn(128, 128), torch.randn(128, 512), dtype="bf16")
    assert c["bytes"] == (128 * 128 + 128 * 512) * 2 + 128 * 512 * 4


def test_matmul_fp32_refused_on_v1():
    with pytest.raises(ValueError, match="fp32"):
        matmul(torch.randn(4, 4), torch.randn(4, 4), dtype="fp32", generation=1)
    out, _ = matmul(torch.randn(4, 4), torch.randn(4, 4), dtype="bf16", generation=1)
    # the extension refuses it too (a compiled program for a v1 core)
    ins = instr(Op.MatMul, [0, 1, 2], batch=1, M=4, K=4, N=4, lda=4, ldb=4, out_bstride=16, in_dtype=DType.F32,
                alpha=1.0, beta=1.0)
    a = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="fp32"):
        _C.run_instr(ins.encode(), [a, a.copy(), a.copy()], _run.spec(1))


CONV_CASES = [
    # (N, C, H, W), (O, kh, kw), stride, padding, dilation, groups
    ((2, 8, 12, 12), (16, 3, 3), 1, 1, 1, 1),
    ((1, 8, 13, 11), (8, 3, 3), 2, 1, 1, 2),           # groups, stride 2, odd sizes
    ((2, 6, 10, 10), (6, 3, 3), 1, 1, 1, 6),           # depthwise
    ((1, 3, 23, 23), (8, 7, 7), 2, 3, 1, 1),           # 7x7 stem-like
    ((2, 16, 7, 7), (32, 1, 1), 1, 0, 1, 1),           # 1x1 (pointwise, no im2col)
    ((1, 16, 8, 8), (8, 1, 1), 2, 0, 1, 1),            # 1x1 stride 2 (im2col path)
    ((1, 4, 15, 15), (4, 3, 3), 1, 2, 2, 1),           # dilation 2
    ((1, 4, 9, 12), (6, 3, 5), (2, 1), (1, 2), (1, 2), 2),
    ((1, 64, 56, 56), (64, 3, 3), 1, 1, 1, 1),         # a ResNet-50 layer (parallel im2col)
]


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp8_e5m2"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_vs_torch(case, dtype):
    xs, (O, kh, kw), stride, padding, dilation, groups = case
    g = torch.Generator().manual_seed(sum(xs) + O)
    x = torch.randn(*xs, generator=g)
    w = torch.randn(O, xs[1] // groups, kh, kw, generator=g)
    bias = torch.randn(O, generator=g)
    out, cost = conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups, dtype=dtype)
    xr, wr = rnd(x, dtype).double(), rnd(w, dtype).double()
    ref = F.conv2d(xr, wr, bias.double(), stride=stride, padding=padding, dilation=dilation, groups=groups)
    absref = F.conv2d(xr.abs(), wr.abs(), bias.double().abs(), stride=stride, padding=padding, dilation=dilation, groups=groups)
    K = xs[1] // groups * kh * kw
    assert out.shape == ref.shape
    assert ((out.double() - ref).abs() <= absref * (K + 3) * 2.0 ** -24 + 1e-30).all()
    assert cost["flops"] == 2 * ref.numel() * K


def test_conv2d_cost_hand_computed():
    # 1x64x8x8 input, 128 filters 3x3 pad 1, bf16: per group (1) weights stationary M=128 (1 tile),
    # contraction 64*9 = 576 -> 5 K tiles, moving = 1*8*8 = 64 pixels -> 1 tile: max(min(64,128), 64) = 64
    # => 5 * 64 = 320 cycles, 5 tiles, 10 instructions
    _, c = conv2d(torch.randn(1, 64, 8, 8), torch.randn(128, 64, 3, 3), padding=1, dtype="bf16")
    assert (c["cycles"], c["instructions"]) == (320, 10)
    # depthwise 1x4x4x4, 3x3 pad 1, groups 4, fp32: per group M=1, K=9 (1 tile), moving 16:
    # max(min(64,1), 16) = 16, x4 (fp32) = 64; 4 groups => 256 cycles, 8 instructions
    _, c = conv2d(torch.randn(1, 4, 4, 4), torch.randn(4, 1, 3, 3), padding=1, groups=4)
    assert (c["cycles"], c["instructions"]) == (256, 8)


def test_transpose():
    x = torch.randn(100, 300)
    out, c = transpose(x)
    assert torch.equal(out, x.t())
    # F = 300 in tiles of 128: 128, 128, 44 -> max(100, min(64,128))*2 + max(100, min(64, 44)) = 300
    assert (c["cycles"], c["instructions"]) == (300, 6)
    out, c = transpose(torch.randn(16, 100))
    assert c["cycles"] == 64          # max(16, min(64, 100))
    out, c = transpose(torch.randn(128, 10))
    assert c["cycles"] == 128         # max(128, min(64, 10))
    xb, _ = transpose(x, dtype="bf16")
    assert torch.equal(xb, x.t().to(torch.bfloat16).float())
    with pytest.raises(ValueError, match="129"):
        transpose(torch.randn(129, 4))


def test_argument_errors_name_the_argument():
    a, b = torch.randn(4, 5), torch.randn(5, 6)
    with pytest.raises(TypeError, match="'a'.*float64"):
        matmul(a.double(), b)
    with pytest.raises(TypeError, match="'b'"):
        matmul(a, b.numpy())
    with pytest.raises(ValueError, match="'b'.*contiguous"):
        matmul(a, torch.randn(6, 5).t())
    with pytest.raises(ValueError, match=r"'a' of shape \(4, 5\).*'b' of shape \(6, 6\)"):
        matmul(a, torch.randn(6, 6))
    with pytest.raises(ValueError, match="'bias'"):
        matmul(a, b, bias=torch.randn(5))
    with pytest.raises(ValueError, match="'out'"):
        matmul(a, b, out=torch.empty(4, 5))
    with pytest.raises(ValueError, match="'dtype'.*bf16"):
        matmul(a, b, dtype="int8")
    with pytest.raises(ValueError, match="'stationary'"):
        matmul(a, b, stationary="c")
    with pytest.raises(ValueError, match="batch"):
        matmul(torch.randn(2, 4, 5), torch.randn(3, 5, 6))
    with pytest.raises(ValueError, match="'a'.*dimensions"):
        matmul(torch.randn(5), b)
    x, w = torch.randn(1, 4, 8, 8), torch.randn(8, 4, 3, 3)
    with pytest.raises(TypeError, match="'x'"):
        conv2d(x.half(), w)
    with pytest.raises(ValueError, match="'w'.*contiguous"):
        conv2d(x, w.permute(0, 1, 3, 2))
    with pytest.raises(ValueError, match="'groups'"):
        conv2d(x, w, groups=3)
    with pytest.raises(ValueError, match="'w'.*input channels"):
        conv2d(x, torch.randn(8, 3, 3, 3))
    with pytest.raises(ValueError, match="'bias'"):
        conv2d(x, w, torch.randn(7))
    with pytest.raises(ValueError, match="'stride'"):
        conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv2d(torch.randn(1, 4, 2, 2), w)
    with pytest.raises(ValueError, match="'x'.*contiguous"):
        transpose(torch.randn(8, 4).t())


def mm_row(over=None):
    f = dict(batch=1, M=4, K=5, N=6, lda=5, ldb=6, out_bstride=24, in_dtype=DType.BF16, alpha=1.0, beta=1.0)
    f.update(over or {})
    return instr(Op.MatMul, [0, 1, 2], **f).encode()


def test_malformed_instructions_raise_value_error():
    a, b, o = np.zeros((4, 5), np.float32), np.zeros((5, 6), np.float32), np.zeros((4, 6), np.float32)
    spec = _run.spec(2)
    assert _C.run_instr(mm_row(), [a, b, o], spec)["cycles"] > 0
    bad = [
        (dict(M=400), "MatMul.*(lda|A)"),          # M too large for A's buffer (and lda)
        (dict(M=5, lda=5), "operand 0 \\(A\\)"),     # M = 5 rows of A: A has only 4
        (dict(N=7, ldb=7), "operand 1 \\(B\\)"),     # N too large for B
        (dict(a_off=1), "operand 0 \\(A\\)"),        # offset pushes A past its end
        (dict(lda=3), "lda"),                      # lda < K
        (dict(in_dtype=9), "in_dtype"),            # unknown dtype code
        (dict(out_dtype=-1), "out_dtype"),
        (dict(transA=2), "transA"),
        (dict(has_bias=1), "has_bias"),            # has_bias but 3 operands
        (dict(M=-1), "M"),
        (dict(out_off=1), "Out"),
    ]
    for over, pat in bad:
        with pytest.raises(ValueError, match=pat):
            _C.run_instr(mm_row(over), [a, b, o], spec)
    # batch 2 with a broadcast A/B but an Out of one matrix
    with pytest.raises(ValueError, match="Out"):
        _C.run_instr(mm_row(dict(batch=2, out_bstride=24)), [a, b, o], spec)
    good = dict(N=1, C=4, H=8, W=8, O=8, kh=3, kw=3, sh=1, sw=1, ph=1, pw=1, dh=1, dw=1, groups=1, in_dtype=0, OH=8, OW=8)
    conv = instr(Op.Conv2d, [0, 1, 2], **good)
    x, w, out = np.zeros((1, 4, 8, 8), np.float32), np.zeros((8, 4, 3, 3), np.float32), np.zeros((1, 8, 8, 8), np.float32)
    assert _C.run_instr(conv.encode(), [x, w, out], spec)["flops"] > 0
    for over, pat in [(dict(OH=9), "output size"), (dict(H=9, OH=9), "X"), (dict(groups=3), "groups"),
                      (dict(sh=0), "stride"), (dict(O=16), "W"), (dict(in_dtype=6), "in_dtype")]:
        conv = instr(Op.Conv2d, [0, 1, 2], **{**good, **over})
        with pytest.raises(ValueError, match=pat):
            _C.run_instr(conv.encode(), [x, w, out], spec)
    tr = instr(Op.Transpose, [0, 1], P=129, F=2)
    with pytest.raises(ValueError, match="P"):
        _C.run_instr(tr.encode(), [np.zeros(258, np.float32), np.zeros(258, np.float32)], spec)
    tr = instr(Op.Transpose, [0, 1], P=4, F=8)
    with pytest.raises(ValueError, match="Out"):
        _C.run_instr(tr.encode(), [np.zeros(32, np.float32), np.zeros(31, np.float32)], spec)


def test_program_rejects_overlapping_out():
    # a Program whose MatMul writes the buffer it reads from is refused at load
    from neuron_emu.isa import encode_program
    ins = instr(Op.MatMul, [0, 0, 0], batch=1, M=2, K=2, N=2, lda=2, ldb=2, out_bstride=4, alpha=1.0, beta=1.0)
    rows, deps = encode_program([ins])
    with pytest.raises(ValueError, match="overlaps"):
        _C.Program(_run.spec(2), rows, deps, np.array([4], np.int64), np.array([0], np.int32),
                   np.array([0], np.int64), [], 4, [], [])


@pytest.mark.parametrize("shape", [(1, 300, 200), (200, 300, 1), (1, 7, 1)])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matrix_vector_products(shape, ta, tb):
    # one row or one column of the output takes the gemv path: same results as torch in fp32 (and under
    # the two-thread split, whose threshold 2^18 multiply-adds a 1x512x512 product reaches)
    M, K, N = shape
    a = torch.randn(K, M) if ta else torch.randn(M, K)
    b = torch.randn(N, K) if tb else torch.randn(K, N)
    bias = torch.randn(N)
    out, _ = matmul(a, b, transpose_a=ta, transpose_b=tb, bias=bias)
    ref = (a.T if ta else a) @ (b.T if tb else b) + bias
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    big, _ = matmul(torch.randn(1, 512), torch.randn(512, 512), transpose_b=tb)
    assert big.shape == (1, 512)
