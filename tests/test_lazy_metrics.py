"""torch_xla.debug.metrics mirror: the documented report format (neuron-api.md 3.2), counters and metric data."""
import re

import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm
from neuron_emu.lazy.metrics import format_time

from lazy_helpers import dev  # noqa: F401


def test_time_format_matches_the_neuron_debug_guide():
    # the two values printed in the Neuron debug guide's example report
    assert format_time(9_969_486_408) == "09s969ms486.408us"
    assert format_time(186_062_970) == "186ms062.970us"
    assert format_time(1_500) == "001.500us"


def _step(dev, n):
    x = torch.randn(n, 4).to(dev)
    y = (x @ torch.ones(4, 2, device=dev)).relu()
    xm.mark_step()
    return y


def test_counters_and_metrics_of_a_loop(dev):
    for _ in range(3):
        _step(dev, 4)
    assert met.counter_value("MarkStep") == 3
    assert met.counter_value("UncachedCompile") == 1
    assert met.counter_value("CachedCompile") == 2
    total, acc, samples = met.metric_data("CompileTime")
    assert total == 1 and acc > 0 and len(samples) == 1
    assert met.metric_data("ExecuteTime")[0] == 3
    assert met.metric_data("TensorsGraphSize")[2][-1][1] >= 2          # ones + mm + relu, at least
    assert met.metric_data("TransferToDeviceTime")[0] == 3
    assert met.metric_data("NoSuchMetric") is None
    assert met.counter_value("NoSuchCounter") is None
    assert {"CompileTime", "ExecuteTime", "TensorsGraphSize", "TransferToDeviceTime"} <= set(met.metric_names())
    assert {"MarkStep", "CachedCompile", "UncachedCompile"} <= set(met.counter_names())


def test_report_format(dev):
    _step(dev, 4).cpu()
    text = met.metrics_report()
    block = re.search(r"Metric: CompileTime\n  TotalSamples: 1\n  Accumulator: (\S+)\n(?:  .*\n)*?"
                      r"  Percentiles: 1%=(\S+); 5%=\S+; 10%=\S+; 20%=\S+; 50%=\S+; 80%=\S+; 90%=\S+; 95%=\S+; "
                      r"99%=\S+\n", text)
    assert block, text
    assert re.fullmatch(r"(\d{2}s)?(\d{3}ms)?\d{3}\.\d{3}us", block.group(1))
    assert "Counter: MarkStep\n  Value: 1\n" in text
    assert "Metric: TransferFromDeviceTime\n" in text
    short = met.short_metrics_report()
    assert "Counter: MarkStep" in short and "Metric: CompileTime" in short and "TensorsGraphSize" not in short
    met.clear_all()
    assert met.metrics_report() == "" and met.counter_value("MarkStep") is None


def test_fallback_ops_are_listed(dev):
    x = torch.randn(5).to(dev) + 0
    torch.nonzero(x > 0).cpu()
    assert met.executed_fallback_ops() == ["aten::nonzero"]
    assert "Counter: aten::nonzero\n  Value: 1\n" in met.metrics_report()
