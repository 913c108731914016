"""Custom C++ ops on the lazy (XLA) device: `torch.ops.<lib>.<op>` on device tensors records into the graph and runs
as the op's GpSimd instruction at mark_step (no CPU fallback); a training loop through the documented
autograd.Function matches CPU eager with torch.relu; loading another build of the library recompiles the graph."""
import copy
import os
import textwrap

import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm
from neuron_emu.lazy import executor
from torch_neuronx_emu.xla_impl import custom_op

from lazy_helpers import dev  # noqa: F401
from tests.test_custom_op import Relu  # the documented sample's my_ops.py

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "custom_op_src")


def _mlp(relu):
    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(16, 32), torch.nn.Linear(32, 4)

        def forward(self, x):
            return self.fc2(relu(self.fc1(x)))
    return MLP()


def test_training_with_the_documented_relu_on_the_device_matches_cpu(dev):
    custom_op.load("relu_tcm", [os.path.join(SRC, "relu_tcm.cpp")], [os.path.join(SRC, "shape.cpp")])
    torch.manual_seed(0)
    cpu = _mlp(torch.relu)
    ours = _mlp(Relu.apply)
    ours.load_state_dict(cpu.state_dict())
    ours = ours.to(dev)
    batches = [(torch.randn(8, 16), torch.randn(8, 4)) for _ in range(6)]
    opt_c, opt_d = torch.optim.SGD(cpu.parameters(), lr=0.05), torch.optim.SGD(ours.parameters(), lr=0.05)
    want, got = [], []
    for x, y in batches:
        opt_c.zero_grad()
        loss = torch.nn.functional.mse_loss(cpu(x), y)
        loss.backward()
        opt_c.step()
        want.append(loss.detach())
        opt_d.zero_grad()
        loss = torch.nn.functional.mse_loss(ours(x.to(dev)), y.to(dev))
        loss.backward()
        xm.optimizer_step(opt_d)
        xm.mark_step()
        got.append(loss.cpu())
    # fp32 matmul summation order differs (compiled kernels vs MKL): a few ulps per step
    torch.testing.assert_close(torch.stack(got), torch.stack(want), rtol=1e-4, atol=1e-5)
    for p, q in zip(ours.parameters(), cpu.parameters()):
        torch.testing.assert_close(p.cpu(), q.detach(), rtol=1e-4, atol=1e-5)
    ops = {str(n.func) for n in executor.last_graph.nodes}
    assert {"my_ops.relu_forward.default", "my_ops.relu_backward.default"} <= ops, ops
    assert met.executed_fallback_ops() == []
    assert met.counter_value("UncachedCompile") <= 2 and met.counter_value("CachedCompile") >= 4


def _plus(tmp_path, k):
    (tmp_path / f"plus{k}.cpp").write_text(textwrap.dedent(f"""
        #include <torch/torch.h>
        torch::Tensor plus(const torch::Tensor& x) {{ return torch::add(x, {k}.0); }}
    """))
    (tmp_path / "plus_shape.cpp").write_text(textwrap.dedent("""
        #include <torch/torch.h>
        #include "torchneuron/register.h"
        torch::Tensor s(torch::Tensor x) { return torch::zeros(x.sizes(), torch::kFloat); }
        NEURON_LIBRARY(swap_ops, m) { m.def("plus", &s, "plus"); }
    """))
    custom_op.load(f"plus{k}", [str(tmp_path / f"plus{k}.cpp")], [str(tmp_path / "plus_shape.cpp")])


def test_another_build_of_the_library_recompiles_the_graph(dev, tmp_path):
    x = torch.randn(4, 5)
    for k in (1, 2, 1):
        _plus(tmp_path, k)
        y = torch.ops.swap_ops.plus(x.to(dev) * 2)
        xm.mark_step()
        torch.testing.assert_close(y.cpu(), x * 2 + k, rtol=0, atol=0)
    # one graph per build; the first build's graph is reused when that build is loaded again
    assert met.counter_value("UncachedCompile") == 2 and met.counter_value("CachedCompile") == 1
    assert met.executed_fallback_ops() == []
