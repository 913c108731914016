"""mark_step(wait=False), torch_xla's default: a cached step runs on the device's worker thread while Python goes
on; `.cpu()`/`.item()`/print and wait_device_ops wait for it; a failure surfaces at the next wait."""
import threading

import pytest
import torch

import torch_neuronx_emu.xla_model as xm
from neuron_emu.lazy import executor

from lazy_helpers import dev  # noqa: F401


def _cached_step(dev, w):
    """Compile a step x -> tanh(x @ w) + x once (mark_step with wait)."""
    x = torch.randn(4, 4).to(dev)
    y = (x @ w).tanh() + x
    xm.mark_step(wait=True)
    return y


def test_cached_step_returns_before_it_runs(dev, monkeypatch):
    w = torch.randn(4, 4).to(dev)
    y = _cached_step(dev, w)
    real = executor._execute
    started, go, log = threading.Event(), threading.Event(), []

    def slow(entry, inputs, dev):
        started.set()
        log.append(go.wait(20))      # True only if the main thread got here while the step was still running
        return real(entry, inputs, dev)
    monkeypatch.setattr(executor, "_execute", slow)
    y = (y @ w).tanh() + y
    xm.mark_step()                  # wait=False
    assert started.wait(20)
    go.set()
    xm.wait_device_ops()
    assert log == [True]


def test_chained_async_steps_match_eager(dev):
    w_cpu = torch.randn(4, 4) * 0.5
    w = w_cpu.to(dev)
    x_cpu = torch.randn(4, 4)
    y = x_cpu.to(dev)
    want = x_cpu
    for _ in range(6):              # each step reads the previous step's output, possibly not yet computed
        y = (y @ w).tanh() + y
        xm.mark_step()
        want = (want @ w_cpu).tanh() + want
    torch.testing.assert_close(y.cpu(), want, rtol=1e-5, atol=1e-5)


def test_async_failure_is_raised_at_the_next_wait(dev, monkeypatch):
    w = torch.randn(4, 4).to(dev)
    y = _cached_step(dev, w)

    def broken(entry, inputs, dev):
        raise ValueError("device fault")
    monkeypatch.setattr(executor, "_execute", broken)
    y = (y @ w).tanh() + y
    xm.mark_step()
    with pytest.raises(RuntimeError, match="asynchronously on the device failed: device fault"):
        y.cpu()
    with pytest.raises(RuntimeError, match="the asynchronous step computing it failed"):
        y.cpu()
    xm.wait_device_ops()            # reported once
