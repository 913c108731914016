"""Inf1 execution over several emulated NeuronCore-v1: --neuroncore-pipeline-cores really runs its stages on N
cores with outputs identical to one core and the documented cost summary; DataParallel over the 4 cores of an
inf1 chip (neuron-api.md 1.6); the core-count errors."""
import io
import warnings

import pytest
import torch

import torch_neuron_emu
from neuron_emu.compiler.options import CompilerArgumentError
from neuron_emu.runtime import last_call
from neuron_emu.runtime import placement as runtime_mod


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(runtime_mod, "_runtimes", {})
    monkeypatch.delenv("NEURON_EMU_INSTANCE_TYPE", raising=False)
    return runtime_mod


def _mlp():
    return torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.GELU())
                                 for _ in range(8)]).eval(), torch.randn(4, 32)


def _trace(model, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch_neuron_emu.trace(model, x, **kw)


def test_pipeline_over_4_cores_matches_one_core_and_reports_stages(fresh):
    model, x = _mlp()
    one = _trace(model, x)
    four = _trace(model, x, compiler_args=["--neuroncore-pipeline-cores", "4"])
    kinds = [n.kind() for n in four.graph.nodes() if not n.kind().startswith("prim::")]
    assert kinds == ["neuron::forward_1"] * 4
    buf = io.BytesIO()
    torch.jit.save(four, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    want = one(x)
    assert torch.equal(four(x), want) and torch.equal(loaded(x), want)
    assert last_call().core_index == 3  # the last stage ran on the fourth core
    rep = torch_neuron_emu.pipeline_report(loaded, batch=4)
    assert [s["core"] for s in rep["stages"]] == [0, 1, 2, 3] and [s["stage"] for s in rep["stages"]] == [0, 1, 2, 3]
    lat = [s["latency_s"] for s in rep["stages"]]
    assert all(v > 0 for v in lat) and rep["latency_s"] == pytest.approx(sum(lat))
    assert rep["throughput_per_s"] == pytest.approx(4 / max(lat))
    single = torch_neuron_emu.pipeline_report(one, batch=4)
    assert rep["throughput_per_s"] > 2 * single["throughput_per_s"]  # 4 stages busy on different inputs
    counters = [c.counters().executions for c in runtime_mod.runtime_for(1).cores]
    assert all(n >= 1 for n in counters)


def test_pipeline_core_count_errors(fresh, monkeypatch):
    model, x = _mlp()
    with pytest.raises(CompilerArgumentError, match="--neuroncore-pipeline-cores: invalid value 0"):
        _trace(model, x, compiler_args="--neuroncore-pipeline-cores 0")
    with pytest.raises(CompilerArgumentError, match="--neuroncore-pipeline-cores 5: only 4 NeuronCores are visible"):
        _trace(model, x, compiler_args="--neuroncore-pipeline-cores 5")
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "1-2")
    monkeypatch.setattr(runtime_mod, "_runtimes", {})  # (read when the runtime starts)
    with pytest.raises(CompilerArgumentError, match="--neuroncore-pipeline-cores 3: only 2 NeuronCores are visible"):
        _trace(model, x, compiler_args="--neuroncore-pipeline-cores 3")
    two = _trace(model, x, compiler_args="--neuroncore-pipeline-cores 2")
    assert torch.equal(two(x), _trace(model, x)(x))


def test_data_parallel_over_the_4_cores_of_an_inf1_chip(fresh):
    model, x = _mlp()
    traced = _trace(model, x)
    want = traced(x)
    dp = torch_neuron_emu.DataParallel(traced)
    assert dp.device_ids == [0, 1, 2, 3] and dp.dim == 0 and dp.dynamic_batching
    big = torch.cat([x] * 4)
    for c in runtime_mod.runtime_for(1).cores:
        c.reset_counters()
    assert torch.equal(dp(big), torch.cat([want] * 4))
    assert [c.counters().executions for c in runtime_mod.runtime_for(1).cores] == [1, 1, 1, 1]
    odd = torch.cat([x] * 3)[:10]  # dynamic batching: any batch size
    assert torch.equal(dp(odd), torch.cat([want] * 3)[:10])
    dp.disable_dynamic_batching()
    with pytest.raises(ValueError, match="input.shape\\[0\\] / len\\(device_ids\\) must equal the compiled size"):
        dp(odd)
    with pytest.raises(ValueError, match="not supported for NeuronCore-Pipeline models"):
        torch_neuron_emu.DataParallel(_trace(model, x, compiler_args="--neuroncore-pipeline-cores 2"))


def test_neuroncore_group_sizes_places_models_by_group_in_load_order(fresh, monkeypatch):
    model, x = _mlp()
    monkeypatch.setenv("NEURONCORE_GROUP_SIZES", "2,2")
    a = _trace(model, x, compiler_args="--neuroncore-pipeline-cores 2")
    b = _trace(model, x, compiler_args="--neuroncore-pipeline-cores 2")
    monkeypatch.setattr(runtime_mod, "_runtimes", {})  # a runtime started with the groups, nothing loaded yet
    a(x)
    b(x)
    assert [s["core"] for s in torch_neuron_emu.pipeline_report(a)["stages"]] == [0, 1]
    assert [s["core"] for s in torch_neuron_emu.pipeline_report(b)["stages"]] == [2, 3]
    monkeypatch.setenv("NEURONCORE_GROUP_SIZES", "4,2")
    monkeypatch.setattr(runtime_mod, "_runtimes", {})
    with pytest.raises(RuntimeError, match="NEURONCORE_GROUP_SIZES='4,2' asks for 6 NeuronCores, but 4 are visible"):
        _trace(model, x)(x)


def test_dynamic_batch_size(fresh):
    model, x = _mlp()
    traced = _trace(model, x, dynamic_batch_size=True)
    big = torch.randn(10, 32)
    want = torch.cat([_trace(model, x)(torch.cat([big, big[:2]])[i:i + 4]) for i in range(0, 12, 4)])[:10]
    assert torch.equal(traced(big), want)  # 10 rows as compiled-size chunks of 4 (the last one padded)


def test_pipeline_of_a_cnn_equals_one_core(fresh):
    """Stage cuts never split a convolution from the batch norm the compiler folds into it."""
    from neuron_emu import zoo

    model, x = zoo.resnet()
    assert torch.equal(_trace(model, x, compiler_args="--neuroncore-pipeline-cores 4")(*x), _trace(model, x)(*x))


def test_pipeline_stages_overlap_across_calls_and_concurrent_callers_get_their_results(fresh):
    """Call i waits before stage 1 (the test holds core 1); call i+1 still runs stage 0 on core 0 meanwhile; when
    core 1 is free both finish with their own results, and many concurrent requests match one core exactly."""
    import threading

    from torch_neuron_emu.pipeline import run_requests

    model, x = _mlp()
    one = _trace(model, x)
    four = _trace(model, x, compiler_args=["--neuroncore-pipeline-cores", "4"])
    four(x)  # placed: stage i on core i
    cores = runtime_mod.runtime_for(1).cores
    xs = [torch.randn(4, 32) for _ in range(12)]
    wants = [one(r) for r in xs]
    results = {}
    for c in cores:
        c.reset_counters()
    with cores[1].stage_lock:
        ta = threading.Thread(target=lambda: results.__setitem__("a", four(xs[0])))
        ta.start()
        _wait(lambda: cores[0].counters().executions == 1)  # call a: stage 0 done, now blocked before stage 1
        tb = threading.Thread(target=lambda: results.__setitem__("b", four(xs[1])))
        tb.start()
        _wait(lambda: cores[0].counters().executions == 2)  # call b's stage 0 ran while a is in the pipeline
        assert cores[1].counters().executions == 0 and "a" not in results
    ta.join()
    tb.join()
    assert torch.equal(results["a"], wants[0]) and torch.equal(results["b"], wants[1])
    got = run_requests(four, xs)  # 4 threads (one per stage) feeding 12 requests
    assert all(torch.equal(g, w) for g, w in zip(got, wants))
    assert [c.counters().executions for c in cores] == [14, 14, 14, 14]


def _wait(cond, timeout=120.0):
    import time

    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "the pipeline made no progress"
        time.sleep(0.005)
