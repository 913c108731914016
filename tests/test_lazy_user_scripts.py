"""Scripts written the way the torch_xla / Neuron training tutorials write them, on the lazy device against CPU
eager: each test is a user-visible behaviour a tutorial relies on and no other lazy test covers."""
import copy

import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm

from lazy_helpers import dev  # noqa: F401


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


def _losses(model, opt, sched, batches, dev=None):
    out = []
    for x, y in batches:
        if dev is not None:
            x, y = x.to(dev), y.to(dev)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        if dev is not None:
            xm.mark_step()
        out.append(loss.detach())
    return torch.stack([l.cpu() for l in out])


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "single-tensor"])
def test_sgd_with_a_scheduler_compiles_its_step_once(dev, foreach):
    # SGD applies lr as `add_(grad, alpha=-lr)`, a Scalar argument: torch_xla makes it device data (not 0 or 1),
    # so OneCycleLR changing lr every step must not recompile every step
    torch.manual_seed(0)
    cpu_model = _mlp()
    dev_model = copy.deepcopy(cpu_model).to(dev)
    batches = [(torch.randn(8, 16), torch.randn(8, 4)) for _ in range(8)]

    def run(model, d):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=foreach)
        return _losses(model, opt, torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=8), batches, d)
    want = run(cpu_model, None)
    got = run(dev_model, dev)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for p_dev, p_cpu in zip(dev_model.parameters(), cpu_model.parameters()):
        torch.testing.assert_close(p_dev.cpu(), p_cpu.detach(), rtol=1e-4, atol=1e-5)
    assert met.counter_value("UncachedCompile") <= 2


def test_add_with_a_float_alpha_matches_eager(dev):
    a, b = torch.randn(5, 3), torch.randn(3)
    for alpha in (0.3, -1.0, 2):
        torch.testing.assert_close(torch.add(a.to(dev), b.to(dev), alpha=alpha).cpu(), torch.add(a, b, alpha=alpha))
        torch.testing.assert_close(torch.sub(a.to(dev), b.to(dev), alpha=alpha).cpu(), torch.sub(a, b, alpha=alpha))
    x = a.double().to(dev)
    x.add_(b.double().to(dev), alpha=0.7)
    torch.testing.assert_close(x.cpu(), a.double().add(b.double(), alpha=0.7))
    h = a.bfloat16().to(dev)
    torch.testing.assert_close(h.add(b.bfloat16().to(dev), alpha=0.3).cpu(), a.bfloat16().add(b.bfloat16(), alpha=0.3))
