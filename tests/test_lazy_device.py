"""The emulated XLA device against CPU eager: factories, transfers, arithmetic, views and in-place ops, laziness,
CPU fallbacks. The oracle is the same code run on CPU tensors."""
import re

import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm
from neuron_emu.lazy import executor
from neuron_emu.lazy.record import Ref

from lazy_helpers import dev  # noqa: F401


def test_device_identity(dev):
    assert dev == torch.device("neuron", 0)
    assert xm.xla_device_kind() == "NC_v2"
    assert xm.get_xla_supported_devices() == ["neuron:0", "neuron:1"]   # inf2.xlarge: 2 NeuronCores
    assert (xm.get_ordinal(), xm.xrt_world_size(), xm.is_master_ordinal()) == (0, 1, True)
    t = torch.ones(2, device=dev)
    assert t.device == dev and t.is_neuron


def test_factories_match_cpu(dev):
    torch.manual_seed(3)
    want = torch.rand(3, 4)
    torch.manual_seed(3)
    got = torch.rand(3, 4, device=dev)
    assert torch.equal(got.cpu(), want)
    assert torch.equal(torch.zeros(2, 3, device=dev).cpu(), torch.zeros(2, 3))
    assert torch.equal(torch.full((2,), 7.5, device=dev).cpu(), torch.full((2,), 7.5))
    assert torch.equal(torch.arange(5, device=dev).cpu(), torch.arange(5))
    assert torch.equal(torch.tensor([1, 2], device=dev).cpu(), torch.tensor([1, 2]))


def _chain(x, w):
    y = torch.softmax(x @ w, dim=-1) * 3.5 - x.mean()
    return torch.nn.functional.gelu(y).sum(0) / 2


def test_arithmetic_matches_eager(dev):
    x, w = torch.randn(8, 16), torch.randn(16, 16)
    got = _chain(x.to(dev), w.to(dev)).cpu()
    # fp32 on both sides; only summation order differs (matmul over 16 terms, then a softmax and a sum over 8)
    torch.testing.assert_close(got, _chain(x, w), rtol=1e-5, atol=1e-5)


def test_ops_are_recorded_until_a_sync(dev):
    x = torch.randn(4, 4).to(dev)
    y = (x + 1) * 2
    assert isinstance(y._st.value, Ref)                  # nothing ran yet
    assert met.metric_data("ExecuteTime") is None
    assert y.sum().item() == pytest.approx(((x.cpu() + 1) * 2).sum().item(), rel=1e-6)
    assert met.metric_data("ExecuteTime")[0] == 1


def test_print_evaluates_only_that_tensor(dev):
    x = torch.randn(3).to(dev)
    a = x + 1
    b = x * 2
    text = repr(a)
    assert text == repr(x.cpu() + 1)[:-1] + ", device='neuron:0')"
    assert len(executor.last_graph.nodes) == 1            # only a's add ran
    assert isinstance(b._st.value, Ref)                   # b is still pending
    assert f"{a.sum():.3f}" == f"{(x.cpu() + 1).sum().item():.3f}"


def _views(x):
    x[0].add_(1)                # select
    x.T.mul_(2)                 # transpose
    v = x.view(-1)
    v[3:5] = 9.0                # slice of a view
    a, b = x.split(2, dim=1)
    b.sub_(0.5)                 # split output
    r = x[1]
    x.add_(100)                 # a write to the base is seen through an older view
    return x.clone(), r.clone()


def test_views_and_inplace_match_eager(dev):
    base = torch.randn(3, 4)
    want_x, want_r = _views(base.clone())
    got_x, got_r = _views(base.to(dev))
    torch.testing.assert_close(got_x.cpu(), want_x)
    torch.testing.assert_close(got_r.cpu(), want_r)


def test_copy_and_dtype_conversions(dev):
    x = torch.randn(2, 3).to(dev)
    y = torch.empty(2, 3, dtype=torch.float64, device=dev)
    y.copy_(x)
    assert y.cpu().dtype == torch.float64
    torch.testing.assert_close(y.cpu(), x.cpu().double())
    assert torch.equal(x.to(torch.int32).cpu(), x.cpu().to(torch.int32))
    cpu = torch.zeros(2, 3)
    cpu.copy_(x)
    assert torch.equal(cpu, x.cpu())
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        torch.ones(2, dtype=torch.long, device=dev).add_(torch.ones(2, device=dev) * 0.5)


def test_cpu_scalar_tensors_mix(dev):
    x = torch.randn(4).to(dev)
    torch.testing.assert_close((x * torch.tensor(3.0)).cpu(), x.cpu() * 3.0)


def test_op_without_lowering_runs_on_cpu_and_is_counted(dev):
    x = torch.tensor([3.0, 1.0, 2.0]).to(dev) * 1
    vals, idx = torch.sort(x)
    assert torch.equal(vals.cpu(), torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(idx.cpu(), torch.tensor([1, 2, 0]))
    assert met.counter_value("aten::sort") == 1
    assert "aten::sort" in met.executed_fallback_ops()
    # the fallback needed x's value: that is a graph cut, reported with the op
    assert any(c.startswith("aten::sort (CPU fallback)") for c in xm_cuts())


def xm_cuts():
    from neuron_emu import lazy
    return lazy.graph_cuts()


def test_nn_module_to_device(dev):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    x = torch.randn(2, 3, 8, 8)
    want = m(x)
    m.to(dev)
    assert all(p.device == dev and isinstance(p, torch.nn.Parameter) for p in m.parameters())
    with torch.no_grad():
        got = m(x.to(dev))
    xm.mark_step()
    torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-5)


def test_eager_debug_mode_runs_op_by_op(dev, monkeypatch):
    from neuron_emu.lazy import tensor
    monkeypatch.setattr(tensor, "_EAGER", True)
    x = torch.randn(3).to(dev)
    y = x + 1
    assert not isinstance(y._st.value, Ref)
    z = y * 2
    assert not isinstance(z._st.value, Ref)
    assert met.counter_value("UncachedCompile") == 2
    assert torch.equal(z.cpu(), (x.cpu() + 1) * 2)


def test_repr_of_grad_tensor(dev):
    w = torch.ones(2, device=dev, requires_grad=True)
    assert re.search(r"device='neuron:0', requires_grad=True\)$", repr(w))


def test_xla_use_bf16(dev, monkeypatch):
    from neuron_emu.lazy import bf16
    monkeypatch.setenv("XLA_USE_BF16", "1")
    monkeypatch.setattr(bf16, "_warned", set())
    monkeypatch.setattr(bf16, "_gen", None)
    with pytest.warns(DeprecationWarning, match="XLA_USE_BF16 will be deprecated after Neuron 2.19 release"):
        xm.xla_device()
    x = torch.randn(1000) * 3
    d = x.to(dev)
    held = d.cpu()
    assert held.dtype == torch.float32                          # still reports float32
    assert torch.equal(held, held.bfloat16().float())           # values are bf16
    # stochastic rounding: each value is one of its two bf16 neighbours (within one bf16 ulp, 2^-7 relative),
    # not always the nearest, and unbiased on average
    assert ((held - x).abs() <= x.abs() * 2.0 ** -7).all()
    assert (held != x.bfloat16().float()).any()
    assert abs((held - x).mean().item()) < 0.01
    y = (d * 1.001).cpu()                                       # computed results are rounded to bf16 too
    assert torch.equal(y, y.bfloat16().float())


def test_views_without_inverse_never_go_silently_wrong(dev):
    a, b = torch.randn(3), torch.randn(3)
    # torch's decompositions of these write through real/imag and diagonal views: run on CPU instead
    assert torch.equal(torch.complex(a.to(dev), b.to(dev)).cpu(), torch.complex(a, b))
    z, s = torch.zeros(3, 3), torch.ones(3)
    assert torch.equal(torch.diagonal_scatter(z.to(dev), s.to(dev)).cpu(), torch.diagonal_scatter(z, s))
    d = torch.randn(3, 3)
    dd = d.to(dev)
    assert torch.equal(dd.diagonal().cpu(), d.diagonal())      # reading such a view is fine
    dd.diagonal(1).add_(1)                                      # writing one reaches the base (diagonal_scatter)
    d.diagonal(1).add_(1)
    dd.fill_diagonal_(7)                                        # (through an as_strided view: as_strided_scatter)
    d.fill_diagonal_(7)
    assert torch.equal(dd.cpu(), d)
    with pytest.raises(RuntimeError, match="in-place write through a view made by aten::unfold is not supported"):
        dd.unfold(1, 2, 1).add_(1)
    y = torch.randn(2, 3)
    yd = y.to(dev)
    yd.t_()                                                     # in-place shape change: a new view of the storage
    assert yd.shape == (3, 2) and torch.equal(yd.cpu(), y.t())
    assert torch.equal(torch.round(a.to(dev) * 100, decimals=-1).cpu(), torch.round(a * 100, decimals=-1))


def test_empty_out_tensors_are_resized(dev):
    a, b = torch.randn(3), torch.randn(3)
    out = torch.empty(0).to(dev)
    torch.add(a.to(dev), b.to(dev), out=out)                 # lowered op, out= variant
    assert out.shape == (3,) and torch.equal(out.cpu(), a + b)
    idx = torch.empty(0, dtype=torch.long, device=dev)
    torch.arange(2, 7, out=idx)                               # run on CPU, resized there
    assert torch.equal(idx.cpu(), torch.arange(2, 7))
    x = torch.randn(5)
    for kw in ({}, {"r": 3}, {"with_replacement": True}):   # ATen's combinations writes into an empty arange out=
        assert torch.equal(torch.combinations(x.to(dev), **kw).cpu(), torch.combinations(x, **kw))
    with pytest.raises(RuntimeError, match=r"aten::add: the out= tensor of shape \[2\] would be resized to \[3\]"):
        torch.add(a.to(dev), b.to(dev), out=torch.zeros(2).to(dev))


def test_to_aliases_only_when_nothing_changes(dev):
    """aten::to returns `self` when dtype and device stay (as in eager); a real conversion is a new tensor, so
    writing to it leaves the source alone."""
    x = torch.arange(4.0).to(dev)
    assert x.to(torch.float32) is x and x.to(dev) is x
    y = x.to(torch.float64)
    y.add_(1)
    z = x.to(torch.float32, copy=True)
    z.mul_(2)
    assert x.cpu().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert y.cpu().tolist() == [1.0, 2.0, 3.0, 4.0] and z.cpu().tolist() == [0.0, 2.0, 4.0, 6.0]


def test_xla_device_strings_name_this_device(dev):
    """torch_xla's tutorials write `device = 'xla'`: without torch_xla that is torch's built-in XLA type, which
    has no device guard; here it names this device (index n: visible NeuronCore n)."""
    a = torch.arange(6.0).reshape(2, 3)
    x = a.to("xla")
    y = torch.ones(2, 3, device="xla")
    z = torch.tensor([1.0, 2.0, 3.0], device=torch.device("xla"))
    assert x.device == y.device == z.device == dev
    model = torch.nn.Linear(3, 2)
    want = model(a)
    got = model.to("xla")(x)
    assert got.device == dev
    torch.testing.assert_close(got.cpu(), want)
    torch.testing.assert_close((x + y * z).cpu(), a + torch.tensor([1.0, 2.0, 3.0]))
    if len(xm.get_xla_supported_devices()) > 1:
        assert torch.zeros(2, device="xla:1").device == torch.device(dev.type, 1)


def test_seeding_the_device_module_makes_device_draws_reproducible(dev):
    # as torch.cuda.manual_seed(s) does for CUDA draws (it was a no-op: the draws came out different)
    draws = []
    for _ in range(2):
        torch.neuron.manual_seed(123)
        draws.append(torch.rand(4, device=dev).cpu())
    assert torch.equal(draws[0], draws[1])
    torch.manual_seed(7)   # (which calls torch.neuron.manual_seed_all(7): the same sequence as a CPU draw)
    a = torch.rand(4, device=dev).cpu()
    torch.manual_seed(7)
    assert torch.equal(a, torch.rand(4))
