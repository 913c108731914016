"""When torch.jit.load puts a trace on a NeuronCore (neuron-api.md 2.4): by default at torch.jit.load, with
lazy_load at the first forward, with async_load on a background thread that the first forward waits for. The
settings travel through torch.jit.save."""
import io
import threading

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.runtime import last_call, runtime
from neuron_emu.runtime import placement as runtime_mod
from torch_neuronx_emu import loading


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(runtime_mod, "_runtimes", {})
    for var in ("NEURON_EMU_INSTANCE_TYPE", "NEURON_RT_VISIBLE_CORES", "NEURON_RT_NUM_CORES"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def mlp():
    model, inputs = zoo.mlp(in_features=32, hidden=(64,), out=8, batch=2)
    return model, inputs, torch_neuronx_emu.trace(model, inputs)


def _saved(traced, lazy=False, background=False) -> bytes:
    t = _load(_save(traced))
    torch_neuronx_emu.lazy_load(t, lazy)
    torch_neuronx_emu.async_load(t, background)
    return _save(t)


def _save(m) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(m, buf)
    return buf.getvalue()


def _load(data: bytes):
    return torch.jit.load(io.BytesIO(data))


def _loaded() -> list:
    return [c.loaded_models for c in runtime().cores]


def test_default_loads_at_torch_jit_load_on_the_least_used_core(fresh, mlp):
    model, inputs, traced = mlp
    data = _saved(traced)
    a = _load(data)
    assert _loaded() == [1, 0]          # loaded before any forward
    b = _load(data)
    assert _loaded() == [1, 1]          # the next load goes to the least-used core
    b(*inputs)
    assert last_call().core_index == 1
    torch.testing.assert_close(a(*inputs), model(*inputs).detach(), rtol=1e-5, atol=1e-5)


def test_lazy_load_waits_for_the_first_forward(fresh, mlp):
    _, inputs, traced = mlp
    u = _load(_saved(traced, lazy=True))
    assert _loaded() == [0, 0]
    u(*inputs)
    assert _loaded() == [1, 0]


def test_async_load_runs_in_the_background_and_forward_uses_it(fresh, mlp, monkeypatch):
    model, inputs, traced = mlp
    data = _saved(traced, background=True)
    gate, seen = threading.Event(), []
    real = runtime_mod.model_for

    def held(blob):   # the background load, held until the test lets it go
        seen.append(threading.current_thread().name)
        assert gate.wait(30)
        return real(blob)

    monkeypatch.setattr(runtime_mod, "model_for", held)
    u = _load(data)   # returns while the load is still held
    pending = loading.pending_load(u.neff)
    assert pending is not None and not pending.done()
    assert _loaded() == [0, 0]
    gate.set()
    pending.result(timeout=30)
    assert seen and seen[0].startswith("neuron-async-load") and _loaded() == [1, 0]
    torch.testing.assert_close(u(*inputs), model(*inputs).detach(), rtol=1e-5, atol=1e-5)
    assert _loaded() == [1, 0]          # the forward used the background load, no second one


def test_lazy_wins_over_async_and_contexts_place_instead(fresh, mlp):
    _, inputs, traced = mlp
    _load(_saved(traced, lazy=True, background=True))
    assert _loaded() == [0, 0]
    with torch_neuronx_emu.neuron_cores_context(start_nc=1):
        v = _load(_saved(traced))
    assert _loaded() == [0, 1]          # placed by the context only, not also by the default load
    v(*inputs)
    assert last_call().core_index == 1
