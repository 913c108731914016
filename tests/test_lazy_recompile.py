"""Every compilation says why: a loop of identical steps compiles once; a new batch size compiles once more with
the changed input named; a `.item()` inside the step is reported as a graph cut at its source line."""
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm
from neuron_emu import lazy

from lazy_helpers import dev  # noqa: F401


def _model(dev):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).to(dev)


def test_identical_steps_compile_once_and_batch_change_recompiles_once(dev):
    m = _model(dev)
    with torch.no_grad():
        for bs in [4] * 5 + [8] * 5:
            y = m(torch.randn(bs, 16).to(dev))  # noqa: F841  (a live output: what mark_step computes)
            xm.mark_step()
    assert met.counter_value("UncachedCompile") == 2
    assert met.counter_value("CachedCompile") == 8
    reasons = lazy.recompile_reasons()
    assert len(reasons) == 2 and "graph cut by mark_step" in reasons[0]
    assert "changed shape from [4, 16] to [8, 16]" in reasons[1], reasons[1]
    assert "aten::t" in reasons[1] or "aten::addmm" in reasons[1]     # names the op that reads the input
    assert "graph cut by mark_step at " + __file__ in reasons[1]
    assert "changed shape from [4, 16] to [8, 16]" in met.metrics_report()


def test_item_inside_the_step_is_a_graph_cut_with_its_line(dev):
    m = _model(dev)
    with torch.no_grad():
        for _ in range(3):
            y = m(torch.randn(4, 16).to(dev))
            if y.sum().item() > 1e9:  # the cut
                pass
            z = y * 2  # noqa: F841
            xm.mark_step()
    line = test_item_inside_the_step_is_a_graph_cut_with_its_line.__code__.co_firstlineno + 5
    cuts = lazy.graph_cuts()
    assert len(cuts) == 3
    assert all(c.startswith(f".item() at {__file__}:{line} ") for c in cuts), cuts
    # two graphs per step (before and after the cut), each compiled once
    assert met.counter_value("UncachedCompile") == 2 and met.counter_value("CachedCompile") == 4
    assert "Graph cuts before mark_step:\n  .item() at " in met.metrics_report()


def test_changed_op_sequence_names_the_first_difference(dev):
    x = torch.randn(4, 4).to(dev)
    xm.mark_step()
    (x + 1).relu()
    y = (x + 1).relu()  # noqa: F841
    xm.mark_step()
    y = (x + 1).sigmoid()  # noqa: F841
    xm.mark_step()
    r = lazy.recompile_reasons()[-1]
    line = test_changed_op_sequence_names_the_first_difference.__code__.co_firstlineno + 6
    assert "op sequence differs from the nearest cached graph" in r
    assert f"this graph has aten::sigmoid at {__file__}:{line}" in r, r


def test_dtype_change_is_named(dev):
    for dt in (torch.float32, torch.float32, torch.float64):
        y = torch.ones(3, dtype=dt).to(dev) * 2  # noqa: F841
        xm.mark_step()
    assert "changed dtype from float32 to float64" in lazy.recompile_reasons()[-1]
