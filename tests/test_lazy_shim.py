"""torch_xla names for user scripts (installed by the launcher) and the MpDeviceLoader's step per batch."""
import sys

import pytest

import torch

import torch_neuronx_emu.debug_metrics as met
from neuron_emu.lazy.shim import install_torch_xla_aliases

from lazy_helpers import dev  # noqa: F401


def test_torch_xla_aliases(dev):
    install_torch_xla_aliases()
    install_torch_xla_aliases()   # idempotent
    import torch_xla
    import torch_xla.core.xla_model as xm
    import torch_xla.debug.metrics as xmet
    import torch_xla.distributed.parallel_loader as pl
    assert xm.xla_device() == torch_xla.device() == dev
    assert xm.xla_device_kind() == "NC_v2"
    y = torch.ones(2, device=torch_xla.device()) * 2  # noqa: F841
    torch_xla.sync()
    assert xmet.counter_value("MarkStep") == 1
    assert pl.MpDeviceLoader is sys.modules["torch_neuronx_emu.parallel_loader"].MpDeviceLoader
    # found as an installed package is (transformers' is_torch_xla_available raised ValueError: no __spec__)
    import importlib.util
    assert importlib.util.find_spec("torch_xla") is not None
    assert importlib.util.find_spec("torch_xla.core.xla_model") is not None
    assert torch_xla.__version__ == torch.__version__.split("+")[0]


def test_mp_device_loader_marks_a_step_per_batch(dev):
    from torch_neuronx_emu.parallel_loader import MpDeviceLoader
    data = [(torch.randn(2, 3), torch.randn(2)) for _ in range(4)]
    seen = []
    for x, y in MpDeviceLoader(data, dev):
        assert x.device == dev and y.device == dev
        seen.append(x.sum() + y.sum())
    assert met.counter_value("MarkStep") == 4
    torch.testing.assert_close(torch.stack([s.cpu() for s in seen]), torch.stack([x.sum() + y.sum() for x, y in data]))


def test_step_closures_run_after_the_step(dev):
    import torch_neuronx_emu.xla_model as xm
    out = []
    x = torch.ones(3).to(dev) * 4
    xm.add_step_closure(lambda t: out.append(t.cpu().tolist()), (x,))
    assert out == []
    xm.mark_step()
    assert out == [[4.0, 4.0, 4.0]]


def test_xla_device_name_as_the_neuron_training_guide_writes_it(dev):
    # `device = 'xla'` then model.to(device) / tensor.to(device) / factories (torch parses 'xla' as its own device
    # type, which fails without torch_xla's backend)
    install_torch_xla_aliases()
    torch.manual_seed(0)
    cpu_model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    model.load_state_dict(cpu_model.state_dict())
    model.to("xla")
    assert all(p.device == dev for p in model.parameters())
    x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
    losses = []
    for m, d in ((cpu_model, "cpu"), (model, "xla")):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        loss = torch.nn.functional.cross_entropy(m(x.to(d)), y.to(device=d))
        loss.backward()
        opt.step()
        losses.append(torch.nn.functional.cross_entropy(m(x.to(d)), y.to(d)).to("cpu"))
    torch.testing.assert_close(losses[1], losses[0])
    made = [torch.zeros(2, device="xla"), torch.arange(3, device="xla:0"), torch.randn(2, device=torch.device("xla")),
            torch.ones(2).new_zeros(3, device="xla"), torch.ones(2).to(torch.device("xla"), torch.float64)]
    assert all(t.device == dev for t in made) and made[-1].dtype == torch.float64
    assert torch.ones(2).to("cpu").device.type == "cpu" and torch.ones(2).to(torch.float16).dtype == torch.float16
    with torch.autocast("xla", dtype=torch.bfloat16):   # the guide's replacement for XLA_USE_BF16
        assert model(x.to("xla")).dtype == torch.bfloat16


def test_torch_xla_example_helpers(dev, capsys):
    # what torch_xla's MNIST/ResNet examples call around the step, for a world of one process
    install_torch_xla_aliases()
    import numpy as np
    import torch_xla.core.xla_model as xm
    import torch_xla.distributed.xla_multiprocessing as xmp
    import torch_xla.utils.utils as xu
    from torch_xla import runtime as xr
    assert (xr.world_size(), xr.global_ordinal(), xr.using_pjrt()) == (1, 0, True)
    assert xm.mesh_reduce("acc", 3.5, np.mean) == 3.5 and xm.rendezvous("init", b"x") == [b"x"]
    # a device tensor reaches reduce_fn as a CPU copy, as torch_xla exchanges it (np.mean refuses a device tensor)
    assert xm.mesh_reduce("loss", torch.tensor([1.0, 3.0]).to(dev), np.mean) == 2.0
    assert xm.mesh_reduce("loss", torch.tensor(1.5).to(dev), lambda xs: xs[0]).device.type == "cpu"
    assert list(xu.SampleGenerator(data=(1, 2), sample_count=3)) == [(1, 2)] * 3
    assert xmp.spawn(lambda index, a: (index, a), args=("flags",), nprocs=None) == (0, "flags")
    with pytest.raises(ValueError, match="nprocs"):
        xmp.spawn(lambda index: None, nprocs=8)
    xm.master_print("hello")
    assert capsys.readouterr().out == "hello\n"
    clock = iter([0.0, 2.0, 4.0, 6.0]).__next__
    tracker = xm.RateTracker(smooth_factor=0.5)
    tracker._clock = clock
    tracker._start = tracker._last = clock()   # t=0
    tracker.add(10)
    assert tracker.rate() == 5.0               # t=2: 10 samples in 2 s
    tracker.add(30)
    assert tracker.rate() == 0.5 * 15 + 0.5 * 5   # t=4: 15/s smoothed with the previous rate
    assert tracker.global_rate() == 40 / 6     # t=6
