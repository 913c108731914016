"""The deployment surface of torch_neuronx (neuron-api.md 2.2, 2.3, 2.8): visible cores, explicit placement,
dynamic batching, DataParallel. Numerics are checked against eager PyTorch and, for DataParallel, bit for bit
against the same batch run whole on one core (the chunks run the same compiled program on the same rows)."""
import io
import os
import subprocess
import sys
import threading

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.runtime import Runtime, last_call, runtime
from neuron_emu.runtime import placement as runtime_mod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# fp32 through the emulated engines vs eager: same products, different summation order (argued in test_trace)
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture
def fresh(monkeypatch):
    """A process runtime (inf2.xlarge, both cores visible) with no models loaded."""
    monkeypatch.setattr(runtime_mod, "_runtimes", {})
    for var in ("NEURON_EMU_INSTANCE_TYPE", "NEURON_RT_VISIBLE_CORES", "NEURON_RT_NUM_CORES"):
        monkeypatch.delenv(var, raising=False)
    return runtime_mod


@pytest.fixture(scope="module")
def mlp2():
    """The traced MLP, saved lazy (lazy_load): its copies load at their first call or placement, not at
    torch.jit.load, so each test's placement arithmetic starts from what it does (test_loading covers loads)."""
    model, inputs = zoo.mlp(in_features=64, hidden=(128,), out=16, batch=2)
    traced = torch_neuronx_emu.trace(model, inputs)
    torch_neuronx_emu.lazy_load(traced)
    return model, inputs, traced


def _copy(traced):
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    return torch.jit.load(buf)


def _cores_of(module, calls, *inputs):
    out = []
    for _ in range(calls):
        module(*inputs)
        out.append(last_call().core_index)
    return out


# -- visible cores ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("instance,visible,num,expect", [
    ("inf2.48xlarge", None, None, list(range(24))),
    ("trn1.32xlarge", None, None, list(range(32))),
    ("inf2.48xlarge", "4-7", None, [4, 5, 6, 7]),
    ("inf2.48xlarge", "0,2", None, [0, 2]),
    ("inf2.48xlarge", "1,4-5", None, [1, 4, 5]),
    ("inf2.xlarge", "1", None, [1]),
    ("inf2.48xlarge", None, "3", [0, 1, 2]),
    ("inf2.xlarge", None, "0", [0, 1]),           # 0 = all
    ("inf2.48xlarge", "5", "3", [5]),             # exact cores win over a count
])
def test_visible_cores(monkeypatch, instance, visible, num, expect):
    for var, val in (("NEURON_RT_VISIBLE_CORES", visible), ("NEURON_RT_NUM_CORES", num)):
        if val is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, val)
    rt = Runtime(instance)
    assert [c.index for c in rt.cores] == list(range(len(expect)))   # numbered from 0, as the runtime does
    assert [c.physical_index for c in rt.cores] == expect == rt.visible


@pytest.mark.parametrize("instance,visible,num,message", [
    ("inf2.xlarge", "4-7", None, r"NEURON_RT_VISIBLE_CORES='4-7' asks for NeuronCore 7 but inf2\.xlarge has "
                                 r"NeuronCores 0-1"),
    ("inf2.xlarge", "2", None, r"NEURON_RT_VISIBLE_CORES='2' asks for NeuronCore 2 .*NeuronCores 0-1"),
    ("inf2.xlarge", "abc", None, r"NEURON_RT_VISIBLE_CORES='abc' is not a NeuronCore index.*NeuronCores 0-1"),
    ("inf2.48xlarge", "3-1", None, r"NEURON_RT_VISIBLE_CORES='3-1': '3-1' is not a valid range "
                                   r"\(inf2\.48xlarge has NeuronCores 0-23\)"),
    ("inf2.48xlarge", "0-2,2", None, r"NEURON_RT_VISIBLE_CORES='0-2,2' names NeuronCore 2 twice"),
    ("inf2.xlarge", None, "3", r"NEURON_RT_NUM_CORES='3' must be 0 \(all\) or 1-2: inf2\.xlarge has NeuronCores 0-1"),
    ("inf2.xlarge", None, "-1", r"NEURON_RT_NUM_CORES='-1'"),
    ("inf2.xlarge", None, "two", r"NEURON_RT_NUM_CORES='two'"),
])
def test_bad_visible_cores(monkeypatch, instance, visible, num, message):
    for var, val in (("NEURON_RT_VISIBLE_CORES", visible), ("NEURON_RT_NUM_CORES", num)):
        if val is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, val)
    with pytest.raises(RuntimeError, match=r"^Neuron runtime cannot be initialized; cannot determine the number "
                                           r"of available NeuronCores: " + message):
        Runtime(instance)


def test_visible_cores_end_to_end():
    """A fresh process on inf2.48xlarge with NEURON_RT_VISIBLE_CORES=4-7 sees 4 cores, 0..3."""
    code = (
        "import torch_neuronx_emu as tnx\n"
        "from neuron_emu import zoo\n"
        "from neuron_emu.runtime import runtime, last_call\n"
        "m, x = zoo.mlp(in_features=8, hidden=(8,), out=4, batch=1)\n"
        "t = tnx.trace(m, x)\n"
        "tnx.experimental.set_neuron_cores(t, 3)\n"
        "t(*x)\n"
        "rt = runtime()\n"
        "print(len(rt.cores), last_call().core_index, rt.core(3).physical_index)\n"
        "try:\n"
        "    tnx.experimental.set_neuron_cores(t, 4)\n"
        "except ValueError as e:\n"
        "    print(e)\n")
    env = dict(os.environ, NEURON_EMU_INSTANCE_TYPE="inf2.48xlarge", NEURON_RT_VISIBLE_CORES="4-7",
               PYTHONPATH=ROOT)
    env.pop("NEURON_RT_NUM_CORES", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "4 3 7"
    assert lines[1] == ("Invalid start_nc 4: expected -1 (least used) or a NeuronCore from 0 to 3 (the visible "
                        "NeuronCores)")


def test_index_error_names_visible_cores():
    rt = Runtime("inf2.48xlarge", visible="4-7")
    with pytest.raises(IndexError, match=r"NeuronCore 4 does not exist: inf2\.48xlarge has 4 visible NeuronCores "
                                         r"\(0\.\.3\)"):
        rt.core(4)


# -- explicit placement (2.8) -------------------------------------------------------------------------------

def test_set_neuron_cores(fresh, mlp2):
    _, inputs, traced = mlp2
    t = _copy(traced)
    assert torch_neuronx_emu.experimental.set_neuron_cores(t, 1) is None
    assert _cores_of(t, 3, *inputs) == [1, 1, 1]
    torch_neuronx_emu.experimental.set_neuron_cores(t, 0, 2)    # replicated: executions round robin
    assert _cores_of(t, 4, *inputs) == [0, 1, 0, 1]
    torch_neuronx_emu.experimental.set_neuron_cores(t, 1, -1)
    assert _cores_of(t, 2, *inputs) == [1, 1]
    torch_neuronx_emu.set_multicore(t)
    assert sorted(_cores_of(t, 2, *inputs)) == [0, 1]
    assert [c.loaded_models for c in runtime().cores] == [1, 1]
    # start_nc=-1: the least-used core
    u = _copy(traced)
    torch_neuronx_emu.experimental.set_neuron_cores(t, 0)
    runtime().load(t.neff, core=0)
    assert runtime().core(0).loaded_models == 1 and runtime().core(1).loaded_models == 1
    other = _copy(traced)
    torch_neuronx_emu.experimental.set_neuron_cores(other, 1)   # core 1 now holds two models
    torch_neuronx_emu.experimental.set_neuron_cores(u)
    assert _cores_of(u, 1, *inputs) == [0]
    assert torch_neuronx_emu.experimental.placement.set_neuron_cores is torch_neuronx_emu.set_neuron_cores


@pytest.mark.parametrize("start_nc,nc_count,message", [
    (0, 0, r"Invalid nc_count 0: expected -1 \(one NeuronCore\) or a count of NeuronCores from 1 to 2 "
           r"\(visible NeuronCores 0-1\)"),
    (0, -2, r"Invalid nc_count -2"),
    (-1, 3, r"Invalid nc_count 3: only 2 NeuronCores are visible to this process \(0-1\)"),
    (2, -1, r"Invalid start_nc 2: expected -1 \(least used\) or a NeuronCore from 0 to 1"),
    (-2, -1, r"Invalid start_nc -2"),
    (1, 2, r"Invalid nc_count 2 for start_nc 1: NeuronCores 1-2 are not all visible \(0-1\)"),
])
def test_set_neuron_cores_errors(fresh, mlp2, start_nc, nc_count, message):
    with pytest.raises(ValueError, match=message):
        torch_neuronx_emu.experimental.set_neuron_cores(mlp2[2], start_nc, nc_count)
    with pytest.raises(ValueError, match=message):
        with torch_neuronx_emu.experimental.neuron_cores_context(start_nc, nc_count):
            pass


def test_move_trace_to_device(fresh, mlp2):
    _, inputs, traced = mlp2
    t = _copy(traced)
    assert torch_neuronx_emu.move_trace_to_device(t, 1) is None
    assert _cores_of(t, 2, *inputs) == [1, 1]
    with pytest.raises(ValueError, match=r"Invalid device_id 2: expected a NeuronCore from 0 to 1"):
        torch_neuronx_emu.move_trace_to_device(t, 2)


def test_set_neuron_cores_needs_a_trace():
    with pytest.raises(ValueError, match="contains no Neuron-compiled graph"):
        torch_neuronx_emu.set_neuron_cores(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="Expected a module returned by torch_neuronx.trace"):
        torch_neuronx_emu.set_neuron_cores("model.pt")


def test_placement_contexts(fresh, mlp2):
    _, inputs, traced = mlp2
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    real_load = torch.jit.load

    def load():
        buf.seek(0)
        return torch.jit.load(buf)

    with torch_neuronx_emu.experimental.neuron_cores_context(start_nc=1):
        a, b = load(), load()
    c = load()   # outside: default placement (least used at its first call)
    assert torch.jit.load is real_load
    assert _cores_of(a, 2, *inputs) == [1, 1] and _cores_of(b, 1, *inputs) == [1]
    assert _cores_of(c, 1, *inputs) == [0]
    with torch_neuronx_emu.experimental.multicore_context():
        d = load()
    assert _cores_of(d, 4, *inputs) == [0, 1, 0, 1]
    with torch_neuronx_emu.neuron_cores_context(0, 2):
        e = load()
    assert _cores_of(e, 2, *inputs) == [0, 1]
    assert torch.jit.load is real_load


# -- dynamic_batch (2.2) ------------------------------------------------------------------------------------

def test_dynamic_batch_matches_eager(fresh, mlp2):
    model, inputs, traced = mlp2
    t = _copy(traced)
    x5 = torch.randn(5, 64)
    with pytest.raises(RuntimeError, match="compiled for shape \\[2, 64\\].*dynamic_batch"):
        t(x5)
    assert torch_neuronx_emu.dynamic_batch(t) is t
    for n in (5, 1, 2, 8):
        x = torch.randn(n, 64)
        y = t(x)
        assert y.shape == (n, 16)
        torch.testing.assert_close(y, model(x).detach(), **TOL)
    # the rows of a padded chunk are the rows of the same chunk run unpadded
    torch.testing.assert_close(t(x5[4:5])[0], t(x5)[4], rtol=0, atol=0)


class _TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 4)

    def forward(self, a, b):
        return self.lin(a) * b.sum(1, keepdim=True), a.mean()


def test_dynamic_batch_two_inputs_and_errors(fresh):
    model = _TwoInputs().eval()
    a, b = torch.randn(2, 8), torch.randn(2, 3)
    t = torch_neuronx_emu.dynamic_batch(torch_neuronx_emu.trace(model, (a, b)))
    a5, b5 = torch.randn(5, 8), torch.randn(5, 3)
    y, m = t(a5, b5)
    torch.testing.assert_close(y, model(a5, b5)[0].detach(), **TOL)
    assert m.shape == ()   # not batched: the first chunk's
    with pytest.raises(ValueError, match=r"same size in dimension 0 .* got inputs of shapes \[5, 8\], \[4, 3\]"):
        t(a5, torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"input 1 has shape \[5, 4\] but the model was compiled for shape \[2, 3\]"):
        t(a5, torch.randn(5, 4))


# -- DataParallel (2.3) -------------------------------------------------------------------------------------

def _single_core_reference(traced, x):
    ref = _copy(traced)
    torch_neuronx_emu.set_neuron_cores(ref, 0)
    return torch_neuronx_emu.dynamic_batch(ref)(x)


def test_data_parallel_equals_one_core(fresh, mlp2):
    model, inputs, traced = mlp2
    x = torch.randn(8, 64)
    ref = _single_core_reference(traced, x)
    torch.testing.assert_close(ref, model(x).detach(), **TOL)
    dp = torch_neuronx_emu.DataParallel(_copy(traced))
    assert dp.device_ids == [0, 1] and dp.num_workers == 4 and dp.split_size is None and dp.dim == 0
    assert dp.dynamic_batching
    for c in runtime().cores:
        c.reset_counters()
    assert torch.equal(dp(x), ref)
    assert [c.counters().executions for c in runtime().cores] == [2, 2]   # 2 chunks of 4, 2 runs of batch 2 each
    for n in (1, 3, 7, 16):   # any batch: dynamic batching pads
        xn = torch.randn(n, 64)
        assert torch.equal(dp(xn), _single_core_reference(traced, xn))
    dp.split_size = 1
    assert torch.equal(dp(x), ref)
    with pytest.raises(ValueError, match=r"input 0 has shape \[1, 65\] but the model was compiled for shape \[2, 64\]"):
        dp(torch.randn(8, 65))   # raised on a worker thread, re-raised here


def test_data_parallel_runs_each_cores_chunks_as_one_call(fresh, mlp2):
    """split_size a multiple of the compiled batch (2): a core's consecutive chunks go in one call, as the same
    compiled-size executions (the short last chunk padded as alone), bit-identical to one core."""
    _, _, traced = mlp2
    dp = torch_neuronx_emu.DataParallel(_copy(traced))
    dp.split_size = 2
    for n, runs in ((11, [3, 3]), (12, [3, 3]), (3, [1, 1]), (2, [1, 0])):
        x = torch.randn(n, 64)
        ref = _single_core_reference(traced, x)
        for c in runtime().cores:
            c.reset_counters()
        assert torch.equal(dp(x), ref), n
        assert [c.counters().executions for c in runtime().cores] == runs, n


def test_data_parallel_threads(fresh, mlp2):
    _, _, traced = mlp2
    dp = torch_neuronx_emu.DataParallel(_copy(traced), device_ids=["nc:0", "nc:1"])
    xs = [torch.randn(6, 64) for _ in range(4)]
    refs = [_single_core_reference(traced, x) for x in xs]
    errors = []
    barrier = threading.Barrier(2)

    def loop(k):
        barrier.wait()
        for i in range(20):
            j = (i + k) % len(xs)
            if not torch.equal(dp(xs[j]), refs[j]):
                errors.append((k, i))

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_data_parallel_without_dynamic_batching(fresh, mlp2):
    _, _, traced = mlp2
    dp = torch_neuronx_emu.DataParallel(_copy(traced), set_dynamic_batching=False)
    assert not dp.dynamic_batching
    x = torch.randn(4, 64)
    assert torch.equal(dp(x), _single_core_reference(traced, x))
    with pytest.raises(ValueError, match=r"With dynamic batching disabled, input\.shape\[0\] / len\(device_ids\) "
                                         r"must equal the compiled size: input\.shape\[0\] = 6, 2 NeuronCore\(s\), "
                                         r"compiled size 2 \(expected input\.shape\[0\] = 4\)"):
        dp(torch.randn(6, 64))
    dp2 = torch_neuronx_emu.DataParallel(_copy(traced))
    dp2.disable_dynamic_batching()
    with pytest.raises(ValueError, match="With dynamic batching disabled"):
        dp2(torch.randn(8, 64))
    one = torch_neuronx_emu.DataParallel(_copy(traced), device_ids=[1], set_dynamic_batching=False)
    assert torch.equal(one(x[:2]), _single_core_reference(traced, x[:2]))


def test_data_parallel_device_ids(fresh, mlp2):
    _, inputs, traced = mlp2
    dp = torch_neuronx_emu.DataParallel(_copy(traced), device_ids=["nc:1"])
    assert dp.device_ids == [1] and dp.num_workers == 2
    dp(*inputs)
    assert last_call().core_index == 1   # a single chunk runs on the calling thread
    for bad, message in ((2, r"Invalid device id 2: 2 NeuronCores are visible to this process \(0-1"),
                         ("nc:5", r"Invalid device id 5"), ("gpu:0", r"Invalid device id 'gpu:0': expected an int "
                                                                    r"or a string 'nc:#'"),
                         (1.0, r"Invalid device id 1\.0")):
        with pytest.raises(ValueError, match=message):
            torch_neuronx_emu.DataParallel(traced, device_ids=[bad])
    with pytest.raises(ValueError, match="more than once"):
        torch_neuronx_emu.DataParallel(traced, device_ids=[0, "nc:0"])


def test_data_parallel_dim1_warns(fresh):
    model = torch.nn.Linear(4, 3).eval()

    class T(torch.nn.Module):
        def forward(self, x):     # x: [features, batch]
            return model(x.t()).t()

    x = torch.randn(4, 2)
    traced = torch_neuronx_emu.trace(T(), x)
    with pytest.warns(UserWarning, match="Dynamic batching cannot be enabled"):
        dp = torch_neuronx_emu.DataParallel(traced, dim=1)
    x4 = torch.randn(4, 4)
    y = dp(x4)
    assert y.shape == (3, 4)
    torch.testing.assert_close(y, T()(x4).detach(), **TOL)


def test_placed_models_released_with_the_module(fresh, mlp2):
    import gc
    _, inputs, traced = mlp2
    dp = torch_neuronx_emu.DataParallel(_copy(traced))
    dp(torch.randn(8, 64))
    t = torch_neuronx_emu.dynamic_batch(_copy(traced))
    t(torch.randn(3, 64))
    assert sum(c.loaded_models for c in runtime().cores) == 3
    del dp, t
    gc.collect()
    assert sum(c.loaded_models for c in runtime().cores) == 0


def test_dynamic_batch_over_replicas(fresh, mlp2):
    """set_multicore + dynamic_batch: the chunks of one call are spread over the cores (2.2's cost formula)."""
    model, _, traced = mlp2
    t = _copy(traced)
    torch_neuronx_emu.set_multicore(t)
    torch_neuronx_emu.dynamic_batch(t)
    x = torch.randn(7, 64)
    ref = _single_core_reference(traced, x)
    for c in runtime().cores:
        c.reset_counters()
    assert torch.equal(t(x), ref)
    assert [c.counters().executions for c in runtime().cores] == [2, 2]   # 4 chunks of 2 over 2 cores
    for n in (1, 2, 9):
        xn = torch.randn(n, 64)
        assert torch.equal(t(xn), _single_core_reference(traced, xn))


def test_lazy_and_async_load_are_saved(fresh, mlp2):
    from torch_neuronx_emu.loading import load_settings
    _, inputs, traced = mlp2
    t = _copy(traced)
    assert load_settings(t) == {"lazy": True, "async": False}
    assert torch_neuronx_emu.lazy_load(t, False) is None and torch_neuronx_emu.async_load(t) is None
    torch_neuronx_emu.async_load(t, enable_async_load=False)
    torch_neuronx_emu.lazy_load(t)
    u = _copy(t)   # saved and loaded with the module
    assert load_settings(u) == {"lazy": True, "async": False}
    assert runtime().core(0).loaded_models + runtime().core(1).loaded_models == 0   # nothing loaded yet
    u(*inputs)
    assert last_call().core_index == 0
    with pytest.raises(ValueError, match="contains no Neuron-compiled graph"):
        torch_neuronx_emu.lazy_load(torch.nn.Linear(2, 2))
