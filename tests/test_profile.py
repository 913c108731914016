"""profile() Reports (both packages), their internal consistency, Perfetto timelines, plots and bad input.

Oracles: the instance table (neuron_emu.hardware: cores, prices) for throughput and cost, the Chrome trace-event
format (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU: "X" events with
ts/dur in microseconds, "M" metadata naming processes and threads) for the timeline."""
import json

import pytest
import torch

import torch_neuron_emu
import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.hardware import INSTANCES
from neuron_emu.isa import ENGINE_NAMES


@pytest.fixture(scope="module")
def mlp():
    return zoo.mlp(in_features=256, hidden=(512,), out=64, batch=16)


@pytest.fixture(scope="module")
def inf2_report(mlp):
    model, inputs = mlp
    traced = torch_neuronx_emu.trace(model, inputs)
    return torch_neuronx_emu.profile(traced, *inputs, num_cores=2)


def check_consistent(r, instance, cores, batch):
    inst = INSTANCES[instance]
    assert r.instance_type == instance and r.num_cores == cores and r.batch == batch
    assert r.latency_ms == pytest.approx(r.device_ms + r.host_transfer_ms) and r.host_transfer_ms > 0
    assert r.throughput_per_s == pytest.approx(cores * batch / (r.latency_ms * 1e-3))
    assert r.cost_per_inference_usd == pytest.approx(inst.usd_per_hour / 3600 / r.throughput_per_s)
    assert set(r.engines) == set(ENGINE_NAMES)
    for name, e in r.engines.items():
        assert 0 <= e.busy_ms <= r.device_ms * (1 + 1e-9), name
        assert 0.0 <= e.utilization <= 1.0 and e.utilization == pytest.approx(e.busy_ms / r.device_ms)
    assert r.bottleneck == max(r.engines, key=lambda n: r.engines[n].busy_ms)
    assert r.flops == sum(e.flops for e in r.engines.values()) > 0
    assert r.hbm_bytes > 0 and r.sbuf_peak_bytes > 0


def test_inf2_report_fields_and_consistency(inf2_report, mlp):
    r = inf2_report
    check_consistent(r, "inf2.xlarge", 2, 16)
    # the MLP's matmuls: 2 * batch * (256*512 + 512*64) flops on TensorE
    assert r.engines["TensorE"].flops == 2 * 16 * (256 * 512 + 512 * 64)
    # weights are loaded from device memory: at least the bf16 weights (auto-cast matmult) and fp32 biases
    assert r.hbm_bytes >= (256 * 512 + 512 * 64) * 2
    d = json.loads(r.to_json())
    assert d["latency_ms"] == r.latency_ms and d["engines"]["TensorE"]["flops"] == r.engines["TensorE"].flops
    md = r.to_markdown()
    assert "| TensorE |" in md and f"{r.latency_ms:.3f}" in md


def test_plain_module_is_traced_and_inf1(mlp):
    model, inputs = mlp
    r2 = torch_neuronx_emu.profile(model, *inputs)
    check_consistent(r2, "inf2.xlarge", 1, 16)
    r1 = torch_neuron_emu.profile(model, *inputs)
    check_consistent(r1, "inf1.xlarge", 1, 16)
    assert r1.core == "NeuronCore-v1" and r1.engines["GpSimdE"].instructions == 0
    assert r1.latency_ms > r2.latency_ms   # NeuronCore-v1: 16 vs 92 TFLOPS, 34 vs 272 GB/s DMA


def test_profile_matches_the_runtime(mlp):
    """profile() and an execution report the same modelled latency (one program model)."""
    model, inputs = mlp
    traced = torch_neuronx_emu.trace(model, inputs)
    traced(*inputs)
    s = torch_neuronx_emu.last_call()
    r = torch_neuronx_emu.profile(traced, *inputs)
    assert r.latency_ms == pytest.approx(s.latency_s * 1e3)


def test_perfetto_trace(inf2_report, tmp_path):
    r = inf2_report
    path = tmp_path / "t.json"
    r.to_perfetto(str(path))
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    spans = [e for e in events if e["ph"] == "X"]
    # one process per core, named; one named thread per engine track
    procs = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    assert sorted(procs) == [0, 1] and all("NeuronCore" in n for n in procs.values())
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    for pid in procs:
        names = {n for (p, _), n in threads.items() if p == pid}
        assert {"TensorE", "VectorE", "ScalarE", "Host link (PCIe)"} <= names
    for e in spans:
        assert set(e) >= {"name", "ph", "ts", "dur", "pid", "tid"}
        assert isinstance(e["ts"], float) and e["dur"] >= 0 and (e["pid"], e["tid"]) in threads
        # every span lies inside the call: [0, latency] in microseconds
        assert -1e-6 <= e["ts"] and e["ts"] + e["dur"] <= r.latency_ms * 1e3 * (1 + 1e-9) + 1e-6
    names = {e["name"] for e in spans}
    assert "aten::addmm" in names and "copy inputs to device" in names
    mm = next(e for e in spans if e["name"] == "aten::addmm" and e["tid"] == 0)
    # the user's source line: nn.Sequential's layers live in torch, so the first user frame is the trace call
    assert mm["args"]["isa_op"] == "MatMul" and "test_profile.py:" in mm["args"]["source"]
    assert len([e for e in spans if e["pid"] == 0]) == len([e for e in spans if e["pid"] == 1])


def test_plot_without_matplotlib_says_what_to_install(inf2_report, tmp_path, monkeypatch):
    """With matplotlib the PNGs are checked in test_plots.py; without it plot() names the missing package."""
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *a, **k):
        if name.split(".")[0] == "matplotlib":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match="plotting needs matplotlib, which is not installed: pip install matplotlib"):
        inf2_report.plot(str(tmp_path / "u.png"))


def test_utilization_series_matches_busy(inf2_report):
    from neuron_emu.plots import utilization_series
    t, util = utilization_series(inf2_report, bins=50)
    width = inf2_report.device_ms / 50
    for name in ("TensorE", "VectorE", "ScalarE", "DMA"):
        assert float(util[name].sum() * width) == pytest.approx(inf2_report.engines[name].busy_ms, rel=1e-6)


def test_bad_input(mlp):
    model, inputs = mlp
    with pytest.raises(ValueError, match=r"unknown instance type 'inf3.xlarge'; valid instance types for "
                                         r"NeuronCore-v2: inf2.24xlarge, inf2.48xlarge, inf2.8xlarge, inf2.xlarge"):
        torch_neuronx_emu.profile(model, *inputs, instance_type="inf3.xlarge")
    with pytest.raises(ValueError, match=r"num_cores=3: inf2.xlarge has 2 NeuronCore\(s\); choose 1..2"):
        torch_neuronx_emu.profile(model, *inputs, num_cores=3)
    with pytest.raises(ValueError, match="has NeuronCore-v2 cores, not NeuronCore-v1; valid instance types for "
                                         "NeuronCore-v1: inf1.24xlarge"):
        torch_neuron_emu.profile(model, *inputs, instance_type="inf2.xlarge")
    traced = torch_neuronx_emu.trace(model, inputs)
    with pytest.raises(ValueError, match="compiled for NeuronCore-v2; profile it with the torch_neuronx_emu"):
        torch_neuron_emu.profile(traced, *inputs)
    with pytest.raises(RuntimeError, match=r"Input tensor 0 has shape \[4, 256\].*fixed input shapes"):
        torch_neuronx_emu.profile(traced, torch.randn(4, 256))
    with pytest.raises(ValueError, match="needs the example inputs"):
        torch_neuronx_emu.profile(model)


def test_dynamic_shape_model_names_the_problem():
    class Nonzero(torch.nn.Module):
        def forward(self, x):
            return torch.nonzero(x)
    with pytest.raises(Exception, match="profile: tracing Nonzero for NeuronCore-v2 failed: .*fixed shapes"):
        torch_neuronx_emu.profile(Nonzero(), torch.randn(8))
