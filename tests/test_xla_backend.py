"""`torch_xla.distributed.xla_backend`: `dist.init_process_group("xla")` (the SDK's training samples; transformers
under torchrun) gives a world of one process, whose collectives compute what they compute for one rank."""
import pytest
import torch
import torch.distributed as dist

from lazy_helpers import dev  # noqa: F401  (fixture)


@pytest.fixture
def world(dev):
    import torch_neuronx_emu.xla_backend as xbn
    dist.init_process_group("xla", init_method="xla://")
    yield xbn
    dist.destroy_process_group()


def test_world_of_one_collectives(world, dev):
    assert isinstance(dist.group.WORLD, world.ProcessGroupXla)
    assert (dist.get_world_size(), dist.get_rank(), dist.get_backend()) == (1, 0, "xla")
    x = torch.randn(4, 3)
    t = x.to(dev)
    dist.all_reduce(t)               # a sum over one rank
    dist.broadcast(t, 0)
    out = torch.zeros(4, 3).to(dev)
    dist.all_gather_into_tensor(out, (x * 2).to(dev))
    outs = [torch.zeros(4, 3).to(dev)]
    dist.all_gather(outs, (x * 3).to(dev))
    rs = torch.zeros(4, 3).to(dev)
    dist.reduce_scatter_tensor(rs, (x * 4).to(dev))
    dist.barrier()
    for got, want in ((t, x), (out, x * 2), (outs[0], x * 3), (rs, x * 4)):
        torch.testing.assert_close(got.cpu(), want, rtol=0, atol=0)


def test_larger_world_is_refused_by_name(dev):
    import torch_neuronx_emu.xla_backend as xbn
    with pytest.raises(NotImplementedError, match="world of 2 processes .* not emulated"):
        xbn.ProcessGroupXla(None, 0, 2)
