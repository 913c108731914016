"""The step's running key (neuron_emu/lazy/trace.py): a mark_step of a step seen before runs its program without
walking the graph, and steps that differ in one op's argument, an operand's producer, the wiring, a shape or a
dtype never share a program (each is checked against CPU eager: a collision would return the other step's values)."""
import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm
from neuron_emu.lazy import executor, graph, trace
from neuron_emu.lazy.record import record
from neuron_emu.lazy.tensor import _wrap

from lazy_helpers import dev  # noqa: F401

aten = torch.ops.aten


def _run(dev, fn, *cpu_inputs):
    """fn on the device (one mark_step) and on CPU; the device result and the trace key it ran under."""
    ins = [t.to(dev) for t in cpu_inputs]
    out = fn(*ins)
    before = set(executor._bindings)
    xm.mark_step()
    new = set(executor._bindings) - before
    got = out.cpu()
    torch.testing.assert_close(got, fn(*cpu_inputs), rtol=1e-6, atol=1e-6)
    return new.pop() if new else None


STEP_PAIRS = {
    "int argument": (lambda x, y: x.pow(2).sum(0), lambda x, y: x.pow(3).sum(0)),
    "float argument": (lambda x, y: x.clamp(min=0.25) * 2, lambda x, y: x.clamp(min=0.5) * 2),
    "kwarg": (lambda x, y: x.add(y, alpha=2), lambda x, y: x.add(y, alpha=3)),
    "dim argument": (lambda x, y: x.sum(0) + y.sum(0), lambda x, y: x.sum(1) + y.sum(0)),
    "operand wiring": (lambda x, y: x * y - x, lambda x, y: x * y - y),
    "producer": (lambda x, y: x.exp() - x.sin(), lambda x, y: x.sin() - x.exp()),
    "shared input": (lambda x, y: x * x + y, lambda x, y: x * y + y),
    "op": (lambda x, y: x.tanh() + y, lambda x, y: x.sigmoid() + y),
}


@pytest.mark.parametrize("what", sorted(STEP_PAIRS))
def test_steps_differing_in_one_thing_get_different_keys(dev, what):
    a, b = STEP_PAIRS[what]
    x, y = torch.rand(3, 3) + 0.5, torch.rand(3, 3) + 0.5
    ka = _run(dev, a, x, y)
    kb = _run(dev, b, x, y)
    assert ka is not None and kb is not None and ka != kb
    assert met.counter_value("UncachedCompile") == 2
    assert _run(dev, a, y, x) is None                   # the first step again: a hit on its key, new values


def test_shape_and_dtype_are_part_of_the_key(dev):
    f = (lambda x, y: (x * y).sum())
    keys = {_run(dev, f, torch.rand(4), torch.rand(4)),
            _run(dev, f, torch.rand(5), torch.rand(5)),
            _run(dev, f, torch.rand(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64))}
    assert None not in keys and len(keys) == 3
    assert met.counter_value("UncachedCompile") == 3


def test_a_cached_step_does_not_walk_the_graph(dev, monkeypatch):
    w = torch.randn(8, 8)
    wd = w.to(dev)

    def step(x):
        return ((x @ wd).relu() + 1).sum(0)
    for i in range(2):
        got = step(torch.randn(4, 8).to(dev))    # noqa: F841  (kept: a step's result is what it syncs)
        xm.mark_step()
    walks = []
    real = graph.Walk
    monkeypatch.setattr(executor, "Walk", lambda outs: walks.append(1) or real(outs))
    for i in range(3):
        x = torch.randn(4, 8)
        got = step(x.to(dev))
        xm.mark_step()
        torch.testing.assert_close(got.cpu(), ((x @ w).relu() + 1).sum(0), rtol=1e-5, atol=1e-5)
    assert walks == []
    assert met.counter_value("UncachedCompile") == 1


def test_dead_ops_change_the_trace_but_reuse_the_walked_graph(dev):
    x = torch.randn(5)
    _run(dev, lambda t: t * 2, x)

    def with_dead(t):
        t.exp()            # recorded, never used
        return t * 2
    assert _run(dev, with_dead, x) is not None          # a new trace key ...
    assert met.counter_value("UncachedCompile") == 1     # ... bound to the graph compiled for the first step
    assert met.counter_value("CachedCompile") == 1


def test_a_value_from_an_older_trace_makes_the_sync_walk(dev):
    x = torch.randn(4)
    a = x.to(dev) + 1
    old = a._st.value            # a pending value that the next full sync materialises elsewhere
    xm.mark_step()
    assert trace.current.parts == []
    b = _wrap(record(aten.neg.default, (old,), {}))   # recorded on a value from before the trace began
    assert trace.current.parts is None                 # the trace is abandoned ...
    xm.mark_step()
    torch.testing.assert_close(b.cpu(), -(x + 1))       # ... and the sync walks the graph instead
    assert trace.current.parts == []


def test_partial_syncs_keep_the_trace_until_nothing_is_pending(dev):
    x = torch.randn(4).to(dev)
    a, b = x + 1, x * 2
    a.cpu()                      # b is still pending: the trace goes on
    assert trace.current.parts
    b.cpu()                      # nothing pending: a fresh trace
    assert trace.current.parts == []
