"""Fast checks of the model zoo: tiny variants only (the full-size builders are exercised by the
benchmarks and the slow tests)."""
import pytest
import torch
from torch.utils._pytree import tree_leaves

from neuron_emu import zoo


def _tensors(out):
    if hasattr(out, "to_tuple"):  # transformers ModelOutput
        out = out.to_tuple()
    return [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("name", sorted(zoo.TINY_BUILDERS))
def test_tiny_model_runs_and_is_deterministic(name):
    state = torch.random.get_rng_state()
    m1, x1 = zoo.TINY_BUILDERS[name]()
    m2, x2 = zoo.TINY_BUILDERS[name]()
    assert torch.equal(state, torch.random.get_rng_state()), "builder perturbed the global RNG"
    assert not m1.training and isinstance(x1, tuple)
    for a, b in zip(x1, x2):
        assert torch.equal(a, b)
    with torch.no_grad():
        o1, o2 = _tensors(m1(*x1)), _tensors(m2(*x2))
    assert o1 and len(o1) == len(o2)
    for a, b in zip(o1, o2):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_output_structures():
    m, x = zoo.dict_output_model()
    assert set(m(*x)) == {"logits", "hidden", "probs"}
    m, x = zoo.tuple_output_model()
    a, (b, c) = m(*x)
    assert a.shape == b.shape == c.shape
    m, x = zoo.bert("tiny", seq=16, batch=2)
    out = m(*x)
    assert out["last_hidden_state"].shape == (2, 16, 64)
    assert out["pooler_output"].shape == (2, 64)
    ids, mask, tt = x
    assert ids.dtype == mask.dtype == tt.dtype == torch.int64
    assert (mask == 0).any() and (mask == 1).any()


def test_small_resnet_shapes_and_bn_stats():
    m, (x,) = zoo.resnet(depths=(1, 1, 1, 1), width=16, image=64)
    assert m(x).shape == (1, 10)
    bns = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    assert bns and all(not torch.all(b.running_var == 1) for b in bns)


def test_resnet50_architecture():
    # Construction only (cheap): parameter count matches torchvision's resnet50 (25,557,032).
    m, (x,) = zoo.resnet50()
    assert sum(p.numel() for p in m.parameters()) == 25_557_032
    assert x.shape == (1, 3, 224, 224)


def test_unsupported_op_model_uses_sort():
    from torch.fx.experimental.proxy_tensor import make_fx

    m, x = zoo.unsupported_op_model()
    g = make_fx(lambda *a: m(*a))(*x)
    assert any(n.target == torch.ops.aten.sort.default for n in g.graph.nodes)


def test_seeds_differ():
    (_, x1), (_, x2) = zoo.mlp(seed=0), zoo.mlp(seed=1)
    assert not torch.equal(x1[0], x2[0])
