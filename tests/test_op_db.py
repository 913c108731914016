"""PyTorch's op_db through torch_neuronx_emu.trace against eager (tests/op_db_conformance.py).

CI runs a fast subset: one or more ops of every lowering family, each of which must pass (or be rejected with a
source, as the real neuronx-cc rejects it). NEMU_OP_DB_FULL=1 runs the whole database, prints every op's outcome
and the rate, and fails on any wrong number or a rate below the floor measured when this suite was written.
The same in bf16: FAST_BF16 here; NEMU_OP_DB_FULL=1 NEMU_OP_DB_CAST=all runs the whole database under --auto-cast all
against the auto-cast reference (tests/op_db_autocast.py argues its tolerances)."""
import os

import pytest
import torch

import op_db_conformance as conf
import torch_neuronx_emu
from neuron_emu.compiler.errors import CompilationError
from neuron_emu.compiler.rejected import REJECTED, RejectedOpError

FAST = [
    # elementwise math and activations
    "tan", "atan2", "logaddexp", "xlogy", "lerp", "addcdiv", "nan_to_num", "round.decimals_3", "round.decimals_neg_3",
    "clamp", "heaviside", "nn.functional.elu", "nn.functional.selu", "nn.functional.celu",
    "nn.functional.softplus", "nn.functional.softshrink", "nn.functional.glu", "nn.functional.logsigmoid",
    "nn.functional.prelu", "logical_and", "where", "masked_fill",
    # reductions and statistics
    "linalg.vector_norm", "nn.functional.normalize", "var_mean", "std", "logsumexp", "dot", "mv", "addmv", "trace",
    "cumsum", "topk", "cummax",
    # layout
    "flip", "roll", "repeat", "tril", "diag_embed", "diagonal_scatter", "unfold", "nn.functional.pixel_shuffle",
    "as_strided", "as_strided.partial_views", "as_strided_scatter",
    # gathers and scatters
    "gather", "take", "scatter", "scatter_add", "scatter_reduce.amax", "scatter_reduce.mean", "index_add",
    "index_reduce.prod", "index_fill", "put",
    # resampling, padding, pooling, norms
    "nn.functional.interpolate.nearest", "nn.functional.interpolate.bilinear", "nn.functional.interpolate.bicubic",
    "nn.functional.adaptive_avg_pool2d", "nn.functional.pad.reflect", "nn.functional.pad.replicate",
    "native_layer_norm", "native_group_norm", "native_batch_norm", "nn.functional.linear",
    "nn.functional.conv_transpose2d", "nn.functional.conv3d", "nn.functional.cross_entropy",
    # capture-time decompositions (compiler/decompose*.py)
    "linalg.solve", "linalg.cholesky", "linalg.qr", "special.i1e", "special.bessel_y0", "polygamma.polygamma_n_2",
    "cdist", "masked_scatter", "nn.functional.adaptive_max_pool2d", "diff",
    # rejected by the real compiler
    "sort", "argsort",
]


# bf16 under --auto-cast all against the auto-cast reference (tests/op_db_autocast.py): every family once, and the
# ops whose lowerings kept fp32 values in bf16 results or rounded intermediates the policy does not round.
FAST_BF16 = [
    "exp", "atan2", "nn.functional.gelu", "where", "softmax", "logsumexp", "linalg.vector_norm", "cumsum", "topk",
    "var_mean", "native_layer_norm", "native_group_norm", "gather", "scatter_add", "nn.functional.linear",
    "nn.functional.interpolate.bilinear", "nn.functional.adaptive_avg_pool2d", "nn.functional.conv3d",
    "nn.functional.conv_transpose3d", "full_like", "nn.functional.cross_entropy", "sort",
]


@pytest.fixture(scope="module")
def ops():
    by_key = {}
    for o in conf.float32_cpu_ops():
        by_key[o.name + (f".{o.variant_test_name}" if o.variant_test_name else "")] = o
    return by_key


@pytest.mark.parametrize("name", FAST)
def test_op_matches_eager(ops, name, monkeypatch):
    monkeypatch.setattr(conf, "N_SAMPLES", 2)  # CI: the first two samples (the full run takes three)
    outcome, why = conf.run_op(ops[name])
    expected = ("rejected",) if f"aten::{name}" in REJECTED else ("pass",)
    assert outcome in expected, f"{name}: {outcome}: {why}"


@pytest.mark.parametrize("name", FAST_BF16)
def test_op_matches_autocast_reference_bf16(ops, name, monkeypatch):
    monkeypatch.setattr(conf, "N_SAMPLES", 2)
    monkeypatch.setattr(conf, "CAST", "all")
    outcome, why = conf.run_op(ops[name])
    expected = ("rejected",) if f"aten::{name}" in REJECTED else ("pass",)
    assert outcome in expected, f"{name} (bf16, --auto-cast all): {outcome}: {why}"


def test_autocast_oracle_catches_a_missing_cast():
    """The bf16 comparison fails an fp32 result (not rounded) and a result computed from unrounded inputs."""
    import op_db_autocast as oa
    from neuron_emu.compiler.reference import round_tensor
    x = torch.linspace(4.0, 8.0, 997)  # rounding x to bf16 moves exp(x) by up to 4 bf16 ulps
    ref = round_tensor(torch.exp(round_tensor(x, "bf16")), "bf16")
    exact = [torch.exp(round_tensor(x, "bf16").double())]
    assert oa.compare([ref.clone()], [ref], [torch.exp(x)], exact) == ""
    assert "not rounded" in oa.compare([torch.exp(x)], [ref], [torch.exp(x)], exact)
    assert "reference" in oa.compare([round_tensor(torch.exp(x), "bf16")], [ref], [torch.exp(x)], exact)
    idx = torch.tensor([3, 1])  # ties: an index naming an equal value passes, another value does not
    v = torch.tensor([0.0, 2.0, 1.0, 2.0])
    assert oa.compare([idx], [torch.tensor([1, 3])], [], None, [v]) == ""
    assert "differ" in oa.compare([torch.tensor([3, 2])], [torch.tensor([1, 3])], [], None, [v])


def test_skip_table_gives_reasons():
    assert all(isinstance(r, str) and len(r) > 10 for r in conf.SKIP.values())


def test_every_rejection_names_a_source():
    assert all(any(k in s for k in (".rst", "#", "doc", "SRC")) for s in REJECTED.values())


def test_sort_is_rejected_like_neuronx_cc():
    class M(torch.nn.Module):
        def forward(self, x):
            return torch.sort(x).values * 2

    with pytest.raises(RejectedOpError, match=r"aten::sort is not supported by neuronx-cc.*partitioner"):
        torch_neuronx_emu.trace(M(), torch.randn(8))
    assert issubclass(RejectedOpError, CompilationError)  # the kind of error the real compile failure is


def test_complex_output_is_rejected():
    with pytest.raises(RejectedOpError, match="complex"):
        torch_neuronx_emu.trace(lambda x: torch.fft.fft(x), torch.randn(8))


def test_inplace_on_fresh_tensor_is_recorded_out_of_place():
    def f(x, w):
        y = x @ w  # a fresh tensor
        y.add_(1.0).clamp_min_(0.5)
        return y

    x, w = torch.randn(4, 3), torch.randn(3, 5)
    traced = torch_neuronx_emu.trace(f, (x, w))
    torch.testing.assert_close(traced(x, w), f(x, w))


def test_inplace_through_a_view_matches_eager():
    def f(x):
        y = x * 2
        v = y[0]
        y.mul_(3)  # v aliases y: functionalize propagates the mutation to the view
        return v + 1

    x = torch.randn(3, 4)
    torch.testing.assert_close(torch_neuronx_emu.trace(f, x)(x), f(x))


def test_recorder_keeps_inplace_on_aliased_tensors_mutable():
    """Only in-place ops on unaliased tensors become out-of-place; on a view (or a storage a view aliases) the op
    stays mutable and the IR check refuses it, never silently dropping the mutation."""
    from neuron_emu.compiler.capture import _Recorder
    rec = _Recorder()
    base = torch.randn(4)
    assert rec._functional_form(torch.ops.aten.add_.Tensor, (base,)) is torch.ops.aten.add.Tensor
    assert rec._functional_form(torch.ops.aten.add_.Tensor, (base[1:],)) is torch.ops.aten.add_.Tensor
    rec.viewed.add(base.untyped_storage().data_ptr())
    assert rec._functional_form(torch.ops.aten.add_.Tensor, (base,)) is torch.ops.aten.add_.Tensor


# Measured when the suite was written (see the closing note of issue 7): the full run must not drop below it.
FULL_FLOOR = 0.89  # measured: 572 of 633 non-skipped entries (90.4%) pass or are rejected with a source


@pytest.mark.skipif(os.environ.get("NEMU_OP_DB_FULL") != "1", reason="full op_db run: set NEMU_OP_DB_FULL=1")
def test_full_op_db(capsys):
    outcomes = conf.main([])
    wrong = {k: v for k, v in outcomes.items() if v[0] == "wrong"}
    scored = [v for v in outcomes.values() if v[0] != "skip"]
    ok = sum(v[0] in ("pass", "rejected") for v in scored) / max(len(scored), 1)
    assert not wrong, f"wrong numbers: {wrong}"
    assert ok >= FULL_FLOOR, conf.summarize(outcomes)
