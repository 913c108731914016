"""The persistent compile cache: Neuron's layout and log lines, NEURON_CC_FLAGS' wrapper flags, corrupt entries
detected and recompiled, two processes sharing one directory."""
import logging
import os
import subprocess
import sys

import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm
from neuron_emu.compiler.options import EMULATED_NEURONX_CC_VERSION
from neuron_emu.lazy import executor

from lazy_helpers import dev  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _step(dev):
    x = torch.arange(6.0).reshape(2, 3).to(dev)
    y = (x * 3).softmax(-1)
    xm.mark_step()
    return y.cpu()


def _entries(cache):
    d = os.path.join(cache, f"neuronxcc-{EMULATED_NEURONX_CC_VERSION}")
    return [os.path.join(d, e) for e in sorted(os.listdir(d))] if os.path.isdir(d) else []


def test_disk_cache_hit_after_memory_cache_is_gone(dev, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    want = _step(dev)
    (entry,) = _entries(cache)
    assert os.path.basename(entry).startswith("MODULE_") and os.path.basename(entry).endswith("+d41d8cd9")
    assert sorted(os.listdir(entry)) == ["model.hlo.txt", "model.neff", "model.neff.sha256"]
    executor.clear_cache()
    with caplog.at_level(logging.INFO, logger="Neuron"):
        got = _step(dev)
    assert torch.equal(got, want)
    assert f"||NEURON_CC_WRAPPER||: Using a cached neff at {entry}/model.neff. Exiting with a successfully " \
           f"compiled graph." in caplog.messages
    assert met.counter_value("PersistentCacheHit") == 1
    assert met.metric_data("CompileTime")[0] == 1          # the second sync did not compile


def test_corrupt_entry_is_detected_and_recompiled(dev, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    want = _step(dev)
    (entry,) = _entries(cache)
    neff = os.path.join(entry, "model.neff")
    data = open(neff, "rb").read()
    with open(neff, "wb") as f:     # half-written file
        f.write(data[: len(data) // 2])
    executor.clear_cache()
    with caplog.at_level(logging.INFO, logger="Neuron"):
        got = _step(dev)
    assert torch.equal(got, want)
    assert any("is corrupt or incomplete" in m for m in caplog.messages)
    assert met.counter_value("CorruptCacheEntry") == 1
    assert met.metric_data("CompileTime")[0] == 2
    import hashlib
    fixed = open(neff, "rb").read()                         # rewritten whole (a new artifact uid, same size)
    assert len(fixed) == len(data)
    assert open(neff + ".sha256").read() == hashlib.sha256(fixed).hexdigest()


def test_wrapper_flags(dev, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURON_CC_FLAGS", "--no_cache")
    _step(dev)
    assert _entries(str(tmp_path / "cache")) == []
    other = tmp_path / "other"
    monkeypatch.setenv("NEURON_CC_FLAGS", f"--cache_dir={other} --auto-cast=none")
    executor.clear_cache()
    _step(dev)
    (entry,) = _entries(str(other))       # --cache_dir wins over NEURON_COMPILE_CACHE_URL
    assert not entry.endswith("+d41d8cd9")  # the compiler flags are part of the key


_SCRIPT = """
import torch, torch_neuronx_emu.xla_model as xm
dev = xm.xla_device()
for i in range(3):
    y = (torch.ones(64, 64).to(dev) @ torch.ones(64, 64).to(dev)).relu()
    xm.mark_step()
assert float(y.sum()) == 64 * 64 * 64
"""


@pytest.mark.slow  # two fresh interpreters importing torch: ~40 s on the shared 2-core CI machine
def test_two_processes_share_one_directory(tmp_path):
    env = dict(os.environ, NEURON_COMPILE_CACHE_URL=str(tmp_path / "shared"),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, "-c", _SCRIPT], env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    import hashlib
    entries = _entries(str(tmp_path / "shared"))
    assert len(entries) == 2                              # the step graph and the final sum
    for entry in entries:
        assert not [f for f in os.listdir(entry) if f.startswith(".tmp-")]
        data = open(os.path.join(entry, "model.neff"), "rb").read()
        assert open(os.path.join(entry, "model.neff.sha256")).read() == hashlib.sha256(data).hexdigest()
