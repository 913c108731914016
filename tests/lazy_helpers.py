"""Shared setup of the lazy-device tests: a private compile cache directory and fresh caches and metrics."""
import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm
from neuron_emu.lazy import executor, recompile


@pytest.fixture
def dev(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURON_COMPILE_CACHE_URL", str(tmp_path / "cache"))
    monkeypatch.delenv("NEURON_CC_FLAGS", raising=False)
    xm.mark_step(wait=True)  # nothing of an earlier test stays pending or running
    executor.clear_cache()
    met.clear_all()
    recompile.clear()       # no graph of an earlier test is 'the nearest cached graph'
    return xm.xla_device()


def train_losses(model, opt, batches, loss_fn, dev=None, sched=None):
    """The losses of a plain training loop: on `dev` (batches moved there, xm.optimizer_step, a mark_step per
    step) or, with `dev` None, in CPU eager (the oracle)."""
    losses = []
    for x, y in batches:
        if dev is not None:
            x, y = x.to(dev), y.to(dev)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        xm.optimizer_step(opt) if dev is not None else opt.step()
        if sched is not None:
            sched.step()
        if dev is not None:
            xm.mark_step()
        losses.append(loss.detach())
    return torch.stack([l.cpu() for l in losses])
