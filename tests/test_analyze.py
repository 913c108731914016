"""torch_neuronx.analyze (neuron-api.md 2.6): the documented report dict, and agreement with trace (an operator
reported supported compiles; the one reported unsupported is the one trace rejects)."""
import json
import os
import re

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo


class SortedMLP(torch.nn.Module):
    """The SDK's partitioner example: an MLP with a sorted log-softmax output (aten::sort is unsupported)."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x):
        out = torch.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)
        return torch.sort(out)[0]


def test_report_has_the_documented_fields_and_counts():
    r = torch_neuronx_emu.analyze(SortedMLP().eval(), torch.rand(2, 8))
    assert set(r) == {"torch_neuronx_version", "neuronx_cc_version", "support_percentage", "supported_operators",
                      "unsupported_operators"}
    assert r["supported_operators"] == {"aten::_log_softmax": 1, "aten::addmm": 2, "aten::relu": 1, "aten::t": 2}
    assert r["support_percentage"] == "85.71%"   # 6 of 7, the app note's figure for its sort example
    [u] = r["unsupported_operators"]
    assert u["kind"] == "aten::sort" and u["failureAt"] == "neuronx-cc"
    assert re.search(r"test_analyze.py:\d+ in forward", u["call"])
    assert "aten::sort" in u["opGraph"]
    json.dumps(r)   # JSON-like: serialisable as is


def test_analyze_agrees_with_trace():
    model, inputs = zoo.mlp(in_features=8, hidden=(16,), out=4, batch=2)
    r = torch_neuronx_emu.analyze(model, inputs)
    assert r["support_percentage"] == "100.00%" and not r["unsupported_operators"]
    torch_neuronx_emu.trace(model, inputs)   # compiles
    with pytest.raises(Exception, match="aten::sort"):
        torch_neuronx_emu.trace(SortedMLP().eval(), torch.rand(2, 8))


def test_ignored_ops_workdir_and_cleanup(tmp_path):
    r = torch_neuronx_emu.analyze(SortedMLP().eval(), torch.rand(2, 8), str(tmp_path / "w"),
                                  additional_ignored_ops={"aten::sort", "aten::t"})
    assert r["support_percentage"] == "100.00%" and "aten::t" not in r["supported_operators"]
    with open(tmp_path / "w" / "analyze.json") as f:
        assert json.load(f) == r
    torch_neuronx_emu.analyze(SortedMLP().eval(), torch.rand(2, 8), str(tmp_path / "c"), cleanup=True)
    assert not os.path.exists(tmp_path / "c")
    with pytest.raises(ValueError, match="max_workers"):
        torch_neuronx_emu.analyze(SortedMLP().eval(), torch.rand(2, 8), max_workers=0)
