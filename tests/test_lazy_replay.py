"""Decomposition replay (replay.py): a pure decomposition is captured once per argument signature and replayed
with the new arguments' values; one that reads values (a transfer to CPU), writes an argument or draws random
numbers runs every time; a replayed step records the same graph as the decomposed one."""
import pytest
import torch

import torch_neuronx_emu.xla_model as xm
from neuron_emu.lazy import executor, replay

from lazy_helpers import dev  # noqa: F401

aten = torch.ops.aten
OP = aten.native_layer_norm.default   # any op: `replay.run` is given the decomposition to capture


@pytest.fixture(autouse=True)
def fresh_templates():
    replay._templates.clear()
    yield
    replay._templates.clear()


def _counting(fn):
    calls = []

    def decompose(func, args, kwargs):
        calls.append(1)
        return fn(*args)
    return decompose, calls


def test_pure_decomposition_is_replayed_with_new_values(dev):
    decompose, calls = _counting(lambda x, w, s: x * w + s * 2.5)
    outs = []
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x, w = torch.randn(3, 4, generator=g), torch.randn(4, generator=g)
        out = replay.run(OP, (x.to(dev), w.to(dev), 0.5), {}, decompose)
        outs.append((out.cpu(), x * w + 0.5 * 2.5))
    assert len(calls) == 1   # captured once, replayed twice
    for got, want in outs:
        torch.testing.assert_close(got, want)


def test_scalar_arguments_and_aliasing_are_part_of_the_signature(dev):
    decompose, calls = _counting(lambda a, b, s: a - b * s)
    x, y = torch.randn(5), torch.randn(5)
    xd, yd = x.to(dev), y.to(dev)
    torch.testing.assert_close(replay.run(OP, (xd, yd, 2.0), {}, decompose).cpu(), x - y * 2.0)
    torch.testing.assert_close(replay.run(OP, (xd, yd, 3.0), {}, decompose).cpu(), x - y * 3.0)
    torch.testing.assert_close(replay.run(OP, (xd, xd, 3.0), {}, decompose).cpu(), x - x * 3.0)
    torch.testing.assert_close(replay.run(OP, (yd, xd, 3.0), {}, decompose).cpu(), y - x * 3.0)
    assert len(calls) == 3   # the last is a replay of the second with other values


def test_a_decomposition_that_reads_values_is_not_replayed(dev):
    decompose, calls = _counting(lambda x: x * x.sum().item())
    for v in (1.0, 2.0, 3.0):
        x = torch.full((3,), v)
        torch.testing.assert_close(replay.run(OP, (x.to(dev),), {}, decompose).cpu(), x * x.sum())
    assert len(calls) == 3
    assert list(replay._templates.values()) == [None]


def test_a_decomposition_that_writes_an_argument_is_not_replayed(dev):
    def writes(x):
        x.add_(1.0)
        return x * 2
    decompose, calls = _counting(writes)
    x = torch.zeros(3).to(dev)
    replay.run(OP, (x,), {}, decompose)
    replay.run(OP, (x,), {}, decompose)
    assert len(calls) == 2
    torch.testing.assert_close(x.cpu(), torch.full((3,), 2.0))


def test_a_decomposition_that_draws_random_numbers_is_not_replayed(dev):
    decompose, calls = _counting(lambda x: x + torch.rand(x.shape))   # (a CPU draw: a constant of the graph)
    x = torch.zeros(4).to(dev)
    a = replay.run(OP, (x,), {}, decompose).cpu()
    b = replay.run(OP, (x,), {}, decompose).cpu()
    assert len(calls) == 2 and not torch.equal(a, b)


def test_replayed_training_step_records_the_same_graph_as_the_decomposed_one(dev):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3)).to(dev)
    x = torch.randn(4, 8).to(dev)

    def step():
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0]).to(dev))
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        executor.sync([g._st for g in grads] + [loss._st], "test", "here")
        return executor.last_graph.key, [g.cpu().clone() for g in grads]
    key_captured, g_captured = step()     # decompositions run (and are captured)
    assert any(t is not None for t in replay._templates.values())
    key_replayed, g_replayed = step()     # replayed
    assert key_replayed == key_captured
    for a, b in zip(g_replayed, g_captured):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    xm.mark_step()
