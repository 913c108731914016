"""torch's `_foreach_*` ops on the lazy device (foreach.py) against CPU eager, and optimizers taking their
multi-tensor path there: same losses as eager's single-tensor path, and an Adam learning rate that changes every
step (its scalars become device data) does not recompile."""
import copy

import pytest
import torch

import torch_neuronx_emu.debug_metrics as met

from lazy_helpers import dev, train_losses  # noqa: F401


def _lists(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    return [[torch.rand(s, generator=g) + 0.5 for s in shapes] for _ in range(3)]


# (name, function of three tensor lists, returning what to compare): in-place ops return their first list
CASES = {
    "add_List_alpha": lambda a, b, c: (torch._foreach_add_(a, b, alpha=0.5), a)[1],
    "mul_Scalar": lambda a, b, c: (torch._foreach_mul_(a, 0.9), a)[1],
    "mul_functional": lambda a, b, c: torch._foreach_mul(a, 3.0),
    "div_ScalarList": lambda a, b, c: (torch._foreach_div_(a, [2.0, 3.0, 4.0]), a)[1],
    "lerp_Scalar": lambda a, b, c: (torch._foreach_lerp_(a, b, 0.3), a)[1],
    "addcmul_Scalar": lambda a, b, c: (torch._foreach_addcmul_(a, b, c, value=0.7), a)[1],
    "addcdiv_ScalarList": lambda a, b, c: (torch._foreach_addcdiv_(a, b, c, [-0.1, 0.2, -0.3]), a)[1],
    "sqrt": lambda a, b, c: torch._foreach_sqrt(a),
    "pow_ScalarAndTensor": lambda a, b, c: torch._foreach_pow(2.0, a),
    "maximum_List": lambda a, b, c: torch._foreach_maximum(a, b),
    "maximum_List_inplace": lambda a, b, c: (torch._foreach_maximum_(a, b), a)[1],
    "zero_": lambda a, b, c: (torch._foreach_zero_(a), a)[1],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_foreach_op_matches_cpu(dev, case):
    fn = CASES[case]
    cpu = _lists()
    want = fn(*cpu)
    lazy = [[t.to(dev) for t in lst] for lst in _lists()]
    got = fn(*lazy)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.cpu(), w, rtol=1e-6, atol=1e-7)
    assert met.executed_fallback_ops() == []


def test_views_in_a_foreach_list_are_written_through(dev):
    base = torch.zeros(4, 3)
    lazy = base.to(dev)
    rows = list(lazy.unbind(0))
    torch._foreach_add_(rows, [torch.full((3,), float(i)).to(dev) for i in range(4)])
    torch.testing.assert_close(lazy.cpu(), torch.arange(4.0).unsqueeze(1).expand(4, 3))


def test_optimizers_default_to_foreach_on_the_device(dev):
    from torch.optim.optimizer import _default_to_fused_or_foreach
    params = [torch.nn.Parameter(torch.zeros(3).to(dev))]
    assert _default_to_fused_or_foreach(params, False, False) == (False, True)


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


@pytest.mark.parametrize("make_opt,scheduled", [
    (lambda p: torch.optim.AdamW(p, lr=1e-2, foreach=True), True),
    (lambda p: torch.optim.Adam(p, lr=1e-2, foreach=True, amsgrad=True), True),
    (lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, foreach=True), True),
], ids=["adamw", "adam-amsgrad", "sgd-nesterov"])
def test_foreach_optimizer_matches_eager_and_compiles_at_most_twice(dev, make_opt, scheduled):
    torch.manual_seed(0)
    cpu_model = _mlp()
    dev_model = copy.deepcopy(cpu_model).to(dev)
    batches = [(torch.randn(8, 16), torch.randn(8, 4)) for _ in range(8)]

    def train(model, on_dev):
        opt = make_opt(model.parameters())
        if not on_dev:   # CPU: torch's single-tensor path, the oracle
            for g in opt.param_groups:
                g["foreach"] = False
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step) if scheduled else 1.0)
        return train_losses(model, opt, batches, torch.nn.functional.mse_loss, dev if on_dev else None, sched)
    want = train(cpu_model, False)
    got = train(dev_model, True)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert met.counter_value("UncachedCompile") <= 2
    assert met.executed_fallback_ops() == []
