"""The runtime's NeuronCores: instance types, placement, concurrent execution on two cores, per-call stats
that stay with their thread, per-core counters, the (artifact, core) cache and its release, the fair pool."""
import gc
import io
import threading

import numpy as np
import psutil
import pytest
import torch

import torch_neuron_emu
import torch_neuronx_emu
from neuron_emu import _C, zoo
from neuron_emu.isa import ENGINE_NAMES
from neuron_emu.kernels import tensor_engine, vector_engine
from neuron_emu.runtime import Runtime, last_call, runtime
from neuron_emu.runtime import placement as runtime_mod
from neuron_emu.runtime.core import engine_summaries


@pytest.fixture
def fresh(monkeypatch):
    """A process runtime with no models loaded (placement starts from empty cores)."""
    monkeypatch.setattr(runtime_mod, "_runtimes", {})
    monkeypatch.delenv("NEURON_EMU_INSTANCE_TYPE", raising=False)
    return runtime_mod


def _jit_copies(traced, n):
    """n loaded copies, saved lazy (lazy_load): each is placed at its first call, which these tests observe
    (torch.jit.load's default load is covered in test_loading)."""
    torch_neuronx_emu.lazy_load(traced)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    out = []
    for _ in range(n):
        buf.seek(0)
        out.append(torch.jit.load(buf))
    return out


@pytest.mark.parametrize("name,cores,gen", [("inf2.xlarge", 2, 2), ("inf2.48xlarge", 24, 2),
                                            ("trn1.32xlarge", 32, 2), ("inf1.xlarge", 4, 1)])
def test_instance_types(name, cores, gen):
    rt = Runtime(name)
    assert len(rt.cores) == cores and [c.index for c in rt.cores] == list(range(cores))
    assert all(c.generation == gen for c in rt.cores) and rt.generation == gen
    with pytest.raises(IndexError, match=f"{name} has {cores} NeuronCores"):
        rt.core(cores)


def test_unknown_instance_type(fresh, monkeypatch):
    with pytest.raises(ValueError, match=r"Unknown instance type 'inf9\.huge'.*inf2\.xlarge.*trn1\.32xlarge"):
        Runtime("inf9.huge")
    monkeypatch.setenv("NEURON_EMU_INSTANCE_TYPE", "inf9.huge")
    with pytest.raises(ValueError, match="NEURON_EMU_INSTANCE_TYPE"):
        runtime()
    monkeypatch.setenv("NEURON_EMU_INSTANCE_TYPE", "inf2.48xlarge")
    assert len(runtime().cores) == 24


def test_generation_mismatch(fresh, monkeypatch):
    model, inputs = zoo.mlp(batch=2)
    v1 = torch_neuron_emu.trace(model, inputs)
    with pytest.raises(RuntimeError, match="compiled for NeuronCore-v1 but NeuronCore 1 is a NeuronCore-v2"):
        Runtime("inf2.xlarge").load(v1.neff, core=1)
    v1a, v1b = _jit_copies(v1, 2)  # (trace itself may already have placed v1)
    monkeypatch.setenv("NEURON_EMU_INSTANCE_TYPE", "inf2.xlarge")
    with pytest.raises(RuntimeError, match="NeuronCore-v1.*NeuronCore-v2"):
        v1a(*inputs)
    monkeypatch.delenv("NEURON_EMU_INSTANCE_TYPE")
    v1b(*inputs)  # no instance type set: v1 artifacts run on the default Inf1 instance
    assert last_call().core == "NeuronCore-v1"


def test_placement_least_used(fresh):
    model, inputs = zoo.mlp(batch=1)
    traced = torch_neuronx_emu.trace(model, inputs)
    a, b, c = _jit_copies(traced, 3)
    del traced  # (trace may have run it once: released with its artifact)
    gc.collect()
    assert [core.loaded_models for core in runtime().cores] == [0, 0]
    placed = []
    for m in (a, b, c, a):
        m(*inputs)
        placed.append(last_call().core_index)
    assert placed == [0, 1, 0, 0]
    assert [core.loaded_models for core in runtime().cores] == [2, 1]


def test_run_returns_its_stats():
    model, inputs = zoo.mlp(batch=4)
    traced = torch_neuronx_emu.trace(model, inputs)
    traced(*inputs)
    m = last_call().model
    x = inputs[0].contiguous()
    out = torch.empty(4, 10)
    st = m.program.run([x.data_ptr()], [out.data_ptr()])
    assert st.dtype == np.float64 and st.shape == (1 + 5 * len(_C.Program.STATS_FIELDS),)
    ref = m.program.last_stats()
    assert st[0] == ref["latency_ns"] > 0
    summ = engine_summaries(st, st[0] * 1e-9)
    for name in ENGINE_NAMES:
        e = ref["engines"][name]
        assert summ[name].busy_s == pytest.approx(e["busy_ns"] * 1e-9, rel=1e-12)
        assert (summ[name].instructions, summ[name].bytes, summ[name].flops) == (e["instructions"], e["bytes"], e["flops"])
    tl = last_call().timeline()
    # a call = host link copy in + the device timeline + copy out (docs/cost-model.md)
    mem = tl["memory"]
    assert tl["end_ns"].max() == pytest.approx(mem["device_ns"])
    assert st[0] == pytest.approx(mem["host_in_ns"] + mem["device_ns"] + mem["host_out_ns"])


def test_same_artifact_two_cores_concurrently():
    model, inputs = zoo.mlp(in_features=256, hidden=(512, 512), out=64, batch=4)
    traced = torch_neuronx_emu.trace(model, inputs)
    rt = Runtime("inf2.xlarge")
    m0, m1 = rt.load(traced.neff, core=0), rt.load(traced.neff, core=1)
    assert m0 is not m1 and m0.program is not m1.program and rt.load(traced.neff, core=1) is m1
    xs = [torch.randn(4, 256) for _ in range(8)]
    ref = [m0([x])[0] for x in xs]
    for c in rt.cores:
        c.reset_counters()
    errors = []

    def loop(m, core):
        try:
            for k in range(50):
                x = xs[k % len(xs)]
                y = m([x])[0]
                s = last_call()
                if not torch.equal(y, ref[k % len(xs)]) or s.core_index != core or s.model is not m:
                    errors.append((core, k))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=loop, args=(m, i)) for i, m in enumerate((m0, m1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [c.counters().executions for c in rt.cores] == [50, 50]


def test_stats_not_mixed_between_threads(fresh):
    small, s_in = zoo.mlp(in_features=64, hidden=(32,), out=8, batch=1)
    big, b_in = zoo.mlp(in_features=512, hidden=(512, 512), out=256, batch=16)
    ts, tb = torch_neuronx_emu.trace(small, s_in), torch_neuronx_emu.trace(big, b_in)
    expect = {}
    for name, t, x in (("small", ts, s_in), ("big", tb, b_in)):
        t(*x)
        expect[name] = (last_call().latency_s, last_call().core_index)
    assert expect["small"][0] < expect["big"][0] / 2 and expect["small"][1] != expect["big"][1]
    errors = []
    barrier = threading.Barrier(2)

    def loop(name, t, x):
        barrier.wait()
        for _ in range(50):
            t(*x)
            s = last_call()
            if (s.latency_s, s.core_index) != expect[name]:
                errors.append((name, s.latency_s, s.core_index))

    threads = [threading.Thread(target=loop, args=a) for a in (("small", ts, s_in), ("big", tb, b_in))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert last_call().latency_s == expect["big"][0]  # this thread's own last call, untouched by the threads


def test_core_counters_add_up():
    model, inputs = zoo.mlp(batch=2)
    traced = torch_neuronx_emu.trace(model, inputs)
    rt = Runtime("inf2.xlarge")
    m = rt.load(traced.neff, core=1)
    m(list(inputs))
    one = last_call()
    core = rt.core(1)
    core.reset_counters()
    for _ in range(7):
        m(list(inputs))
    c = core.counters()
    assert c.core == 1 and c.executions == 7 and rt.core(0).counters().executions == 0
    assert c.total_latency_s == pytest.approx(7 * one.latency_s) and c.last_latency_s == one.latency_s
    assert c.mean_latency_s == pytest.approx(one.latency_s) and c.host_s > 0
    for name in ENGINE_NAMES:
        assert c.engines[name].busy_s == pytest.approx(7 * one.engines[name].busy_s)
        assert c.engines[name].flops == 7 * one.engines[name].flops
        assert c.engines[name].utilization == pytest.approx(one.engines[name].utilization)


def test_cache_lru_eviction():
    model, inputs = zoo.mlp(batch=1)
    blobs = [t.neff for t in _jit_copies(torch_neuronx_emu.trace(model, inputs), 3)]
    rt = Runtime("inf2.xlarge", models_to_keep=2)
    first = rt.load(blobs[0], core=0)
    rt.load(blobs[1], core=0)
    assert rt.load(blobs[0], core=0) is first  # a hit makes it the most recently used
    rt.load(blobs[2], core=0)                 # evicts blobs[1]
    assert rt.core(0).loaded_models == 2 and rt.load(blobs[0], core=0) is first
    assert {m.key for m in rt.core(0).models()} == {id(blobs[0]), id(blobs[2])}


def test_release_when_artifact_collected(fresh):
    model, inputs = zoo.mlp(batch=1)
    m = _jit_copies(torch_neuronx_emu.trace(model, inputs), 1)[0]
    gc.collect()  # the temporary traced module (a TorchScript module sits in reference cycles) leaves core 0
    m(*inputs)
    own = Runtime("inf2.48xlarge")
    explicit = own.load(m.neff, core=5)
    assert runtime().core(0).loaded_models == 1 and own.core(5).loaded_models == 1
    del m
    gc.collect()
    assert runtime().core(0).loaded_models == 0 and own.core(5).loaded_models == 0 and not runtime_mod._placed
    assert explicit([inputs[0]])[0].shape == (1, 10)  # a LoadedModel still held keeps working


def test_release_keeps_rss_bounded(fresh):
    model, inputs = zoo.mlp(in_features=1024, hidden=(1024,), out=16, batch=1)  # ~4.1 MiB of weights
    buf = io.BytesIO()
    torch.jit.save(torch_neuronx_emu.trace(model, inputs), buf)
    proc = psutil.Process()

    def cycle():
        buf.seek(0)
        m = torch.jit.load(buf)
        m(*inputs)
        del m

    for _ in range(20):
        cycle()
    gc.collect()
    before = proc.memory_info().rss
    for _ in range(200):
        cycle()
    gc.collect()
    grown = (proc.memory_info().rss - before) / 2**20
    assert grown < 40, f"RSS grew {grown:.0f} MiB over 200 load/call/del cycles of a 4 MiB model"
    assert sum(c.loaded_models for c in runtime().cores) == 0


def test_pool_serves_concurrent_callers():
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    x, y = torch.randn(2048, 1024), torch.randn(2048, 1024)
    ref_mm = tensor_engine.matmul(a, b, dtype="bf16")[0]
    ref_vec = vector_engine.softmax(vector_engine.binary(x, y, op="mul")[0])[0]
    errors = []

    def mm():
        for _ in range(50):
            if not torch.equal(tensor_engine.matmul(a, b, dtype="bf16")[0], ref_mm):
                errors.append("matmul")

    def vec():
        for _ in range(50):
            if not torch.equal(vector_engine.softmax(vector_engine.binary(x, y, op="mul")[0])[0], ref_vec):
                errors.append("vector")

    threads = [threading.Thread(target=f) for f in (mm, vec, mm)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_pool_exception_reaches_its_caller():
    # a kernel that fails inside the pool (bad shape) raises in its own thread while another thread computes
    a = torch.randn(512, 512)
    ok, failed = [], []

    def good():
        for _ in range(20):
            ok.append(torch.equal(tensor_engine.matmul(a, a)[0], tensor_engine.matmul(a, a)[0]))

    def bad():
        for _ in range(20):
            try:
                tensor_engine.matmul(a, torch.randn(3, 3))
            except ValueError:
                failed.append(True)

    threads = [threading.Thread(target=f) for f in (good, bad)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(ok) and len(ok) == 20 and len(failed) == 20
