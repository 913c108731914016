"""Several lazy devices: `xla_device(n)` is visible NeuronCore n. Its tensors report `neuron:n`, their graphs
compile per device and run on that core (the per-core counters show it), mark_step syncs every device with pending
work, `.to(other device)` copies through the host and an op mixing devices raises torch's error. The default
instance (inf2.xlarge) has two cores."""
import copy
import os
import subprocess
import sys

import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm
from neuron_emu.lazy import graph_cuts
from neuron_emu.lazy.record import Ref
from neuron_emu.runtime.placement import runtime_for

from lazy_helpers import dev  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _executions():
    return [c.counters().executions for c in runtime_for(2).cores]


@pytest.fixture
def devs(dev):
    if len(runtime_for(2).cores) < 2:
        pytest.skip("needs two visible NeuronCores")
    return xm.xla_device(0), xm.xla_device(1)


def test_supported_devices_are_the_visible_cores(dev):
    n = len(runtime_for(2).cores)
    assert xm.get_xla_supported_devices() == [f"neuron:{i}" for i in range(n)]
    assert xm.xla_device(n - 1) == torch.device("neuron", n - 1)
    with pytest.raises(RuntimeError, match=f"Invalid device index {n}"):
        xm.xla_device(n)


def test_two_devices_compute_independently_on_their_cores(devs):
    d0, d1 = devs
    a, b = torch.randn(6, 5), torch.randn(5, 3)
    x0, x1 = a.to(d0), a.to(d1)
    w1 = b.to(d1)
    y0 = torch.tanh(x0) * 2 + 1
    y1 = x1 @ w1 - 0.5
    assert (x0.device, y0.device, y1.device) == (d0, d0, d1)
    before = _executions()
    xm.mark_step(wait=True)          # syncs both devices' pending work
    assert type(y0._st.value) is not Ref and type(y1._st.value) is not Ref
    after = _executions()
    assert [after[0] - before[0], after[1] - before[1]] == [1, 1]
    torch.testing.assert_close(y0.cpu(), torch.tanh(a) * 2 + 1)
    torch.testing.assert_close(y1.cpu(), a @ b - 0.5)


def test_the_same_graph_on_two_devices_compiles_once_and_runs_on_each_core(devs):
    d0, d1 = devs
    a = torch.randn(4, 4)
    for d in (d0, d1):
        before = _executions()
        y = (a.to(d) * 3).relu().sum(0)
        xm.mark_step(wait=True)
        delta = [x - y_ for x, y_ in zip(_executions(), before)]
        assert delta[d.index] == 1 and sum(delta) == 1
        torch.testing.assert_close(y.cpu(), (a * 3).relu().sum(0))
    assert met.counter_value("UncachedCompile") == 1
    assert met.counter_value("CachedCompile") == 1


def test_transfer_between_devices(devs):
    d0, d1 = devs
    a = torch.randn(3, 4)
    y0 = a.to(d0) * 2                   # pending on device 0
    y1 = y0.to(d1)
    assert y1.device == d1
    z = y1 + torch.ones(3, 4).to(d1)
    torch.testing.assert_close(z.cpu(), a * 2 + 1)
    assert any("transfer to neuron:1" in c for c in graph_cuts())
    dst = torch.zeros(3, 4).to(d0)      # copy_ from another device's tensor
    dst.copy_(z)
    torch.testing.assert_close(dst.cpu(), a * 2 + 1)
    assert dst.device == d0


@pytest.mark.parametrize("op", [
    lambda x, y: x + y,
    lambda x, y: torch.mm(x, y),
    lambda x, y: x.add_(y),
    lambda x, y: torch.cat([x, y]),
    lambda x, y: torch.where(x > 0, x, y),
], ids=["add", "mm", "add_", "cat", "where"])
def test_ops_mixing_devices_raise_torchs_error(devs, op):
    d0, d1 = devs
    x, y = torch.randn(3, 3).to(d0), torch.randn(3, 3).to(d1)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, but found at least two "
                                           "devices, neuron:0 and neuron:1!"):
        op(x, y)


def test_factories_and_training_on_device_one(devs):
    _, d1 = devs
    assert torch.zeros(2, 3, device=d1).device == d1
    assert torch.rand(5, device=d1).device == d1
    torch.manual_seed(0)
    cpu_model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.ReLU(),
                                    torch.nn.Linear(16, 2))   # (layer norm: decompositions replayed on device 1)
    model = copy.deepcopy(cpu_model).to(d1)
    assert all(p.device == d1 for p in model.parameters())
    opt_cpu = torch.optim.SGD(cpu_model.parameters(), lr=0.1, momentum=0.9)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = _executions()
    for _ in range(4):
        x, y = torch.randn(4, 8), torch.randn(4, 2)
        for m, o, xx, yy in ((cpu_model, opt_cpu, x, y), (model, opt, x.to(d1), y.to(d1))):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(xx), yy).backward()
            o.step()
        xm.mark_step()
    xm.wait_device_ops()
    after = _executions()
    assert after[0] == before[0] and after[1] - before[1] == 4
    for p, q in zip(model.parameters(), cpu_model.parameters()):
        assert p.grad.device == d1
        torch.testing.assert_close(p.cpu(), q.detach(), rtol=1e-5, atol=1e-6)
    assert "device='neuron:1'" in repr(model[0].bias)


_VISIBLE_SCRIPT = """
import torch
import torch_neuronx_emu.xla_model as xm
from neuron_emu.runtime.placement import runtime_for
print(xm.get_xla_supported_devices())
d = xm.xla_device(2)
y = (torch.arange(6.0).to(d) * 2).sum()
xm.mark_step(wait=True)
print(y.device, float(y.cpu()))
print([(c.index, c.physical_index, c.counters().executions) for c in runtime_for(2).cores])
"""


def test_devices_are_the_cores_neuron_rt_visible_cores_names(tmp_path):
    env = dict(os.environ, NEURON_EMU_INSTANCE_TYPE="inf2.24xlarge", NEURON_RT_VISIBLE_CORES="2-4",
               NEURON_COMPILE_CACHE_URL=str(tmp_path / "cache"),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _VISIBLE_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "['neuron:0', 'neuron:1', 'neuron:2']"
    assert lines[1] == "neuron:2 30.0"
    assert lines[2] == "[(0, 2, 0), (1, 3, 0), (2, 4, 1)]"   # device 2 is instance core 4


def test_an_explicit_device_argument_wins_over_the_input_tensors(devs):
    # `zeros_like(x, device=d)`, `x.new_ones(n, device=d)`: the result is on d (it went to x's device); as a
    # string ('xla:1') too
    d0, d1 = devs
    x = torch.arange(3.0).to(d0)
    made = [torch.zeros_like(x, device=d1), x.new_ones(2, device="xla:1"), x.new_full((2,), 5.0, device=d1),
            torch.full_like(x, 2.0, device="xla:1"), torch.ones_like(x, device=d1, dtype=torch.int64)]
    assert [t.device for t in made] == [d1] * len(made)
    assert [t.cpu().tolist() for t in made] == [[0.0] * 3, [1.0] * 2, [5.0] * 2, [2.0] * 3, [1] * 3]
    assert (made[0] + made[3]).device == d1   # (usable together: no mixed-device error)
