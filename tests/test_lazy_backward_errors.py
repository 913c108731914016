"""An error raised by a device op inside autograd's backward is raised to the user as in eager, never aborts.

Raised inside a C++ backward node it used to abort the process (backward_errors.py says why), so each case runs in
a child process: an abort there fails the test instead of killing the run."""
import subprocess
import sys

_SCRIPT = r"""
import torch
import torch_neuronx_emu.xla_model as xm
dev = xm.xla_device()

# 1. AccumulateGrad writing into a gradient that is an expanded view (an error in eager too: its elements share
#    memory): raised when backward() returns
w = torch.ones(3, 3, device=dev, requires_grad=True)
w.grad = torch.zeros(3, device=dev).expand(3, 3)
try:
    (w * 2).sum().backward()
except RuntimeError as e:
    assert "aten::expand" in str(e) and "AccumulateGrad" in "".join(getattr(e, "__notes__", [])), e
    print("backward raised")

# 2. torch.autograd.grad: raised when it returns
x = torch.ones(3, 3, device=dev, requires_grad=True)
y = x * 3
y.register_hook(lambda g: (g[0].expand(3, 3).add_(1), g)[1])
try:
    torch.autograd.grad(y.sum(), x)
except RuntimeError as e:
    print("grad raised")
x + 1   # (nothing left pending for the next op)

# 3. the device works on: a normal step afterwards gives eager's numbers
v = torch.arange(4.0, device=dev, requires_grad=True)
(v * v).sum().backward()
xm.mark_step()
assert v.grad.cpu().tolist() == [0.0, 2.0, 4.0, 6.0], v.grad
print("ok")
"""


def test_backward_errors_are_raised_not_aborted():
    r = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["backward", "raised", "grad", "raised", "ok"], r.stdout + r.stderr


_HOOKS_SCRIPT = r"""
import torch
import torch_neuronx_emu.xla_model as xm
dev = xm.xla_device()


def boom(*args):
    raise ValueError("boom")


x = torch.ones(2, device=dev, requires_grad=True)
y = x * 2
y.register_hook(boom)                       # a tensor hook (the engine calls it inside the node)
x.register_post_accumulate_grad_hook(boom)  # after AccumulateGrad
m = torch.nn.Linear(2, 2).to(dev)
m.register_full_backward_hook(boom)          # through torch.utils.hooks.BackwardHook
for root in (lambda: y.sum(), lambda: x.sum(), lambda: m(torch.ones(1, 2, device=dev)).sum()):
    try:
        root().backward(retain_graph=True)
    except ValueError as e:
        print("raised", e)
c = torch.nn.Linear(2, 2)
c.register_full_backward_hook(boom)          # a CPU module's hook raises as in eager
try:
    c(torch.ones(1, 2, requires_grad=True)).sum().backward()
except ValueError as e:
    print("cpu", e)
print((x + 1).cpu().tolist())


def interrupt(grad):
    raise KeyboardInterrupt


z = torch.ones(2, device=dev, requires_grad=True)
w = z * 3
w.register_hook(interrupt)
try:
    w.sum().backward()
except KeyboardInterrupt:
    print("interrupted")
with torch.autograd.graph.saved_tensors_hooks(lambda t: t, boom):   # an unpack hook, run inside the node
    u = (z * z).sum()
try:
    u.backward()
except ValueError as e:
    print("unpack", e)
"""


def test_hook_errors_are_raised_not_aborted():
    # a Python hook (or a saved-tensor unpack hook) raising in a device tensor's backward aborted the process
    # ('terminate called without an active exception'), as a device op's error did
    r = subprocess.run([sys.executable, "-c", _HOOKS_SCRIPT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split("\n")[:7] == ["raised boom"] * 3 + ["cpu boom", "[2.0, 2.0]", "interrupted", "unpack boom"], \
        r.stdout + r.stderr
