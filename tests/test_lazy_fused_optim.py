"""Fused optimizers on the lazy device against CPU eager: Adam/AdamW(fused=True) are recorded on the device (one step
graph, compiled once even with a learning rate that changes every step); other fused optimizers run their CPU kernel
as a counted fallback, on contiguous copies of the device values (a Linear's weight gradient is a transposed view)."""
import copy

import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm

from lazy_helpers import dev  # noqa: F401


def _train(model, opt, sched, batches, on_dev):
    for x in batches:
        opt.zero_grad()
        model(x.to(xm.xla_device()) if on_dev else x).pow(2).mean().backward()
        opt.step()
        sched.step()
        if on_dev:
            xm.mark_step()


@pytest.mark.parametrize("make", [
    lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1, fused=True),
    lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True, fused=True),
], ids=["adamw", "adam-amsgrad-maximize"])
def test_fused_adam_on_device_matches_eager_and_compiles_once(dev, make):
    torch.manual_seed(0)
    cpu = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    on_dev = copy.deepcopy(cpu).to(dev)
    batches = [torch.randn(4, 8) for _ in range(8)]
    for model, flag in ((cpu, False), (on_dev, True)):
        opt = make(model.parameters())
        _train(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s)), batches, flag)
    for a, b in zip(on_dev.parameters(), cpu.parameters()):
        # the bias corrections are computed in fp32 on the device, in double by the CPU kernel
        torch.testing.assert_close(a.detach().cpu(), b.detach(), rtol=1e-5, atol=1e-6)
    assert met.executed_fallback_ops() == []
    assert met.counter_value("UncachedCompile") <= 2


def test_fused_sgd_falls_back_with_contiguous_values(dev):
    torch.manual_seed(0)
    cpu = torch.nn.Linear(3, 2)
    on_dev = copy.deepcopy(cpu).to(dev)
    batches = [torch.randn(4, 3) for _ in range(3)]
    for model, flag in ((cpu, False), (on_dev, True)):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=True)
        _train(model, opt, torch.optim.lr_scheduler.StepLR(opt, 1), batches, flag)
    torch.testing.assert_close(on_dev.weight.detach().cpu(), cpu.weight.detach(), rtol=1e-6, atol=1e-7)
    assert "aten::_fused_sgd" in met.executed_fallback_ops()


@pytest.mark.parametrize("fused", [False, True])
def test_grad_scaler_on_the_device(dev, fused):
    # torch.amp.GradScaler('xla'): _amp_update_scale_ writes the scale and the growth tracker and returns the scale
    # alone (both were returned: "Unable to cast (tensor, tensor) to Tensor"); a step with an inf gradient is skipped
    # and the scale backs off, as on CPU
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    dev_model = copy.deepcopy(model).to(dev)
    runs = [(m, torch.optim.Adam(m.parameters(), lr=0.1, fused=fused), torch.amp.GradScaler(d, init_scale=256.0), on)
            for m, d, on in ((model, "cpu", None), (dev_model, "xla", dev))]
    for step in range(3):
        x = torch.randn(3, 4)
        if step == 1:
            x[0, 0] = float("inf")
        for m, opt, scaler, on in runs:
            opt.zero_grad()
            scaler.scale(m(x.to(on) if on else x).sum()).backward()
            scaler.step(opt)
            scaler.update()
        xm.mark_step()
    torch.testing.assert_close(dev_model.weight.cpu(), model.weight.detach(), rtol=1e-5, atol=1e-6)
    assert runs[1][2].get_scale() == runs[0][2].get_scale() == 256.0 * 0.5
