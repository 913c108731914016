"""torch_neuron_emu's partitioner: supported ops in `neuron::forward_1` subgraphs, the rest as `aten::` CPU nodes;
the documented kwargs and log lines (docs/reference/neuron-api.md 1.1-1.5); save and load in a fresh process.

Oracle: the same plan with each compiled subgraph replaced by the compiler's eager reference with the same casts
(neuron_emu/partitioner/reference.py); tolerance 1e-5 of the output scale (fp32 summation order only)."""
import logging
import os
import warnings

import pytest
import torch

import torch_neuron_emu
from neuron_emu.partitioner.reference import run_plan_reference
from torch_neuron_emu.partition import plan_model
from torch_neuron_emu.trace import parse_neuron_cc_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Mixed(torch.nn.Module):
    """Supported ops around torch.fft.rfft, which neuron-cc does not support (and whose result is complex)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(9, 4)

    def forward(self, x):
        h = torch.relu(self.a(x)) * 2
        f = torch.fft.rfft(h).abs()
        return self.b(torch.tanh(f) + 1)


def _trace(model, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch_neuron_emu.trace(model, x, **kw)


def _kinds(traced):
    return [n.kind() for n in traced.graph.nodes() if not n.kind().startswith("prim::")]


def _close_to_plan_reference(model, x, got, **kw):
    p = plan_model(model, (x,), parse_neuron_cc_args(None), **kw)
    ref = run_plan_reference(p.graph, p.plan, parse_neuron_cc_args(None), (x,))[0]
    scale = ref.abs().max().item()
    assert (got - ref).abs().max().item() <= 1e-5 * scale


def test_mixed_model_falls_back_to_cpu_and_matches(caplog):
    model, x = Mixed().eval(), torch.randn(3, 16)
    with caplog.at_level(logging.INFO, logger="Neuron"):
        traced = _trace(model, x)
    assert _kinds(traced) == ["neuron::forward_1", "aten::_fft_r2c", "aten::abs", "neuron::forward_1"]
    log = caplog.text
    assert ("There are 1 ops of 1 different types in the TorchScript that are not compiled by neuron-cc: "
            "aten::_fft_r2c, (For more information see") in log
    assert "Number of arithmetic operators (pre-compilation) before = 8, fused = 6, percent fused = 75.00%" in log
    assert "The neuron partitioner created 2 sub-graphs" in log
    assert ("Neuron successfully compiled 2 sub-graphs, Total fused subgraphs = 2, Percent of model sub-graphs "
            "successfully compiled = 100.0%") in log
    assert " => aten::addmm: 2" in log and " => aten::_fft_r2c: 1 [not supported]" in log
    _close_to_plan_reference(model, x, traced(x))
    with torch.no_grad():
        assert (traced(x) - model(x)).abs().max() > 1e-4  # bf16 casts on the Neuron parts (--fast-math all)


def test_fallback_false_names_the_op():
    with pytest.raises(AttributeError, match=r"Neuron compile failed\. Operator aten::_fft_r2c is not supported"):
        _trace(Mixed().eval(), torch.randn(3, 16), fallback=False)


def test_no_operator_placed_returns_a_cpu_trace(caplog):
    model, x = Mixed().eval(), torch.randn(3, 16)
    with caplog.at_level(logging.WARNING, logger="Neuron"):
        traced = _trace(model, x, minimum_segment_size=100)
    assert "No operator is placed on Neuron runtime; returning a CPU trace" in caplog.text
    assert not any(k.startswith("neuron::") for k in _kinds(traced))
    with torch.no_grad():
        assert torch.equal(traced(x), model(x))


class BigSmall(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(*[torch.nn.Linear(8, 8) for _ in range(6)])
        self.head = torch.nn.Linear(5, 3)

    def forward(self, x):
        h = self.layers(x)
        s = torch.fft.rfft(h).abs()  # CPU
        return self.head(torch.tanh(s))


def test_single_fusion_ratio_threshold():
    model, x = BigSmall().eval(), torch.randn(2, 8)
    one = _trace(model, x)  # 6 addmm of 8 candidate ops > 0.6: only the big partition is compiled
    assert _kinds(one).count("neuron::forward_1") == 1
    both = _trace(model, x, single_fusion_ratio_threshold=1.0)
    assert _kinds(both).count("neuron::forward_1") == 2
    _close_to_plan_reference(model, x, one(x))
    _close_to_plan_reference(model, x, both(x), single_fusion_ratio_threshold=1.0)


class Detect(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.m = torch.nn.Conv2d(8, 6, 1)

    def forward(self, x):
        y = self.m(x).sigmoid()
        return y.view(y.shape[0], 2, 3, -1).permute(0, 1, 3, 2)


class Yolo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.SiLU(),
                                            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.SiLU())
        self.detect = Detect()

    def forward(self, x):
        return self.detect(self.backbone(x))


def test_yolo_style_subgraph_builder_function_excludes_detect():
    seen = []

    def builder(node):
        seen.append(node.name)
        return "Detect" not in node.name

    model, x = Yolo().eval(), torch.randn(1, 3, 8, 8)
    traced = _trace(model, x, subgraph_builder_function=builder)
    kinds = _kinds(traced)
    assert kinds[0] == "neuron::forward_1" and kinds.count("neuron::forward_1") == 1
    assert kinds[1:] == ["aten::_convolution", "aten::sigmoid", "aten::view_copy", "aten::permute_copy"]  # Detect: CPU
    assert any("Yolo/Detect[detect]" in s for s in seen) and any("Sequential[backbone]" in s for s in seen)
    _close_to_plan_reference(model, x, traced(x), subgraph_builder_function=builder)


def test_supported_operations_and_api_surface():
    ops = torch_neuron_emu.get_supported_operations()
    with open(os.path.join(ROOT, "torch_neuron_emu", "inf1-supported-ops.txt")) as f:
        listed = [line.strip() for line in f if not line.startswith("#") and line.strip()]
    assert ops == sorted(listed) and len(ops) == 169 and "aten::embedding" in ops and "aten::_fft_r2c" not in ops
    assert torch.neuron.trace is torch_neuron_emu.trace and torch.neuron.DataParallel is torch_neuron_emu.DataParallel
    assert torch_neuron_emu.hint is torch_neuron_emu.trace and torch_neuron_emu.is_available()
    assert torch_neuron_emu.Optimization.FLOAT32_TO_FLOAT16
    import torch_neuronx_emu  # noqa: F401  (both packages in one process, as users migrating do)


def test_analyze_model_prints_and_returns_the_report(caplog):
    with caplog.at_level(logging.INFO, logger="Neuron"):
        report = torch_neuron_emu.analyze_model(Mixed().eval(), torch.randn(3, 16))
    assert report["unsupported_operators"] == {"aten::_fft_r2c": 1}
    assert report["supported_operators"]["aten::addmm"] == 2
    assert "The following operations are currently not supported in torch-neuron for this model:" in caplog.text
    assert "87.50% of arithmetic operations (7 of 8) are supported" in caplog.text
