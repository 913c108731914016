"""torch_neuronx.analyze (neuron-api.md 2.6): the documented report dict at the SDK's granularity (the aten:: nodes
of the model's inlined torch.jit.trace graph, e.g. aten::linear), and agreement with trace (an operator reported
supported compiles; the one reported unsupported is the one trace rejects).

Oracles: torch.jit.trace + torch._C._jit_pass_inline for the operator counts; the partitioner app note for the
MLP's figures (6 of 7 supported, 85.71%); the analyze doc for fft being unsupported."""
import importlib
import json
import os
import re
from collections import Counter

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo


class SortedMLP(torch.nn.Module):
    """The partitioner app note's "Default Usage" MLP (smaller layers): three linears with ReLUs, a log-softmax, and a
    sort of the output (aten::sort is unsupported)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 12), torch.nn.Linear(12, 4)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        r1 = self.relu(self.fc1(x))
        r2 = self.relu(self.fc2(r1))
        out = torch.log_softmax(self.fc3(r2), dim=1)
        sort_out, _ = torch.sort(out)
        return sort_out


def torchscript_kinds(model, *inputs) -> Counter:
    """The aten:: nodes of the inlined torch.jit.trace graph: what the SDK's analyze counts."""
    traced = torch.jit.trace(model, inputs, strict=False, check_trace=False)
    g = (traced.forward if isinstance(traced, torch.jit.ScriptModule) else traced).graph.copy()
    torch._C._jit_pass_inline(g)
    return Counter(n.kind() for n in g.nodes() if n.kind().startswith("aten::"))


def counts(report) -> Counter:
    return Counter(report["supported_operators"]) + Counter(u["kind"] for u in report["unsupported_operators"])


def test_app_note_mlp_report_has_the_documented_fields_and_figures():
    model, x = SortedMLP().eval(), torch.rand(2, 8)
    r = torch_neuronx_emu.analyze(model, x)
    assert set(r) == {"torch_neuronx_version", "neuronx_cc_version", "support_percentage", "supported_operators",
                      "unsupported_operators"}
    assert r["supported_operators"] == {"aten::linear": 3, "aten::log_softmax": 1, "aten::relu": 2}
    assert r["support_percentage"] == "85.71%"   # 6 of 7, the app note's figure for this model
    assert counts(r) == torchscript_kinds(model, x)
    [u] = r["unsupported_operators"]
    assert u["kind"] == "aten::sort" and u["failureAt"] == "neuronx-cc"
    assert re.match(r".*test_analyze\.py\(\d+\): forward", u["call"])   # the Python stack, user's line first
    assert "aten::sort" in u["opGraph"] and "aten::linear" not in u["opGraph"]   # the one node
    json.dumps(r)   # JSON-like: serialisable as is


def test_counts_equal_the_inlined_trace_graph_of_a_transformer():
    """BERT-tiny: shape arithmetic (aten::size, aten::Int, ...) and every layer's ops, as TorchScript has them."""
    model, inputs = zoo.bert("tiny", seq=16)
    r = torch_neuronx_emu.analyze(model, inputs)
    assert counts(r) == torchscript_kinds(model, *inputs)
    assert r["support_percentage"] == "100.00%", r["unsupported_operators"]
    assert "aten::linear" in r["supported_operators"] and "aten::addmm" not in r["supported_operators"]


def test_fft_and_complex_are_unsupported():
    class Spectrum(torch.nn.Module):
        def forward(self, x):
            return torch.fft.fft(torch.tanh(x)).abs() * 2

    r = torch_neuronx_emu.analyze(Spectrum(), torch.randn(4, 8))
    assert {u["kind"] for u in r["unsupported_operators"]} == {"aten::fft_fft", "aten::abs"}  # abs of a complex
    assert r["supported_operators"] == {"aten::mul": 1, "aten::tanh": 1}
    assert r["support_percentage"] == "50.00%"


def test_analyze_agrees_with_trace():
    model, inputs = zoo.mlp(in_features=8, hidden=(16,), out=4, batch=2)
    r = torch_neuronx_emu.analyze(model, inputs)
    assert r["support_percentage"] == "100.00%" and not r["unsupported_operators"]
    assert counts(r) == torchscript_kinds(model, *inputs)
    torch_neuronx_emu.trace(model, inputs)   # compiles
    with pytest.raises(Exception, match="aten::sort"):
        torch_neuronx_emu.trace(SortedMLP().eval(), torch.rand(2, 8))


def test_ignored_ops_workdir_and_cleanup(tmp_path):
    r = torch_neuronx_emu.analyze(SortedMLP().eval(), torch.rand(2, 8), str(tmp_path / "w"),
                                  additional_ignored_ops={"aten::sort", "aten::relu"})
    assert r["support_percentage"] == "100.00%" and not r["unsupported_operators"]
    assert r["supported_operators"] == {"aten::linear": 3, "aten::log_softmax": 1}
    with open(tmp_path / "w" / "analyze.json") as f:
        assert json.load(f) == r
    torch_neuronx_emu.analyze(SortedMLP().eval(), torch.rand(2, 8), str(tmp_path / "c"), cleanup=True)
    assert not os.path.exists(tmp_path / "c")
    with pytest.raises(ValueError, match="max_workers"):
        torch_neuronx_emu.analyze(SortedMLP().eval(), torch.rand(2, 8), max_workers=0)
    with pytest.raises(TypeError, match="additional_ignored_ops"):
        torch_neuronx_emu.analyze(SortedMLP().eval(), torch.rand(2, 8), additional_ignored_ops="aten::sort")


def test_fallbacks_when_a_node_or_the_model_cannot_be_traced(monkeypatch):
    """A node that cannot be cut out is judged by its own operator's lowering (aten::sort rejected, aten::relu
    lowered), with a warning; a model torch.jit.trace refuses is reported on capture's dispatcher operators."""
    an = importlib.import_module("torch_neuronx_emu.analyze")   # (the package's `analyze` is the function)

    def refuse(*_):
        raise RuntimeError("cannot isolate")

    model, x = SortedMLP().eval(), torch.rand(2, 8)
    with monkeypatch.context() as m:
        m.setattr(an, "one_node_function", refuse)
        with pytest.warns(UserWarning, match=r"aten::sort .*could not be run on its own .*cannot isolate"):
            r = torch_neuronx_emu.analyze(model, x)
    assert counts(r) == torchscript_kinds(model, x)
    assert [u["kind"] for u in r["unsupported_operators"]].count("aten::sort") == 1
    assert r["supported_operators"]["aten::relu"] == 2
    with monkeypatch.context() as m:
        m.setattr(an, "inlined_trace_graph", refuse)
        with pytest.warns(UserWarning, match="torch.jit.trace could not trace the model"):
            r = torch_neuronx_emu.analyze(model, x)
    assert r["supported_operators"]["aten::addmm"] == 3 and r["unsupported_operators"][0]["kind"] == "aten::sort"
