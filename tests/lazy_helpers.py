"""Shared setup of the lazy-device tests: a private compile cache directory and fresh caches and metrics."""
import pytest

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
