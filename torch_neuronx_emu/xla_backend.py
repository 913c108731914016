"""Mirror of `torch_xla.distributed.xla_backend`: importing it registers torch.distributed's "xla" backend and the
`xla://` init method, as the SDK's training samples (and transformers under torchrun) expect
(`dist.init_process_group("xla")`). neuron-emu runs one process, so the group is a world of one: each collective
is what it computes for one rank (all-reduce and broadcast leave the tensor as it is, gathers and scatters copy).
A larger world (torchrun with more than one process) is refused by name."""
from __future__ import annotations

import datetime
import importlib

import torch
import torch.distributed as dist
from torch._C._distributed_c10d import _create_work_from_future
from torch.futures import Future

MULTI_PROCESS = ("neuron-emu runs one process: a torch.distributed world of {n} processes (torchrun, "
                 "xmp.spawn with nprocs > 1) is not emulated; run the script as one process (world size 1)")


def _done(result):
    f = Future()
    f.set_result(result)
    return _create_work_from_future(f)


# What each collective computes for one rank, as methods (pybind's trampoline finds them by name)
def _unchanged(self, tensors, opts=None):          # a sum/avg/min/max or broadcast over one rank: the tensor itself
    return _done(tensors)


def _single(self, output, input, *split_sizes_and_opts):   # the whole input is this rank's share
    output.copy_(input.reshape(output.shape))
    return _done(output)


def _coalesced(self, outputs, inputs, opts=None):
    for o, i in zip(outputs, inputs):
        o.copy_(i.reshape(o.shape))
    return _done(outputs)


def _into_lists(self, output_lists, inputs, opts=None):   # gathers: each output list has this rank's slot only
    _coalesced(self, [o[0] for o in output_lists], inputs)
    return _done(output_lists)


def _from_lists(self, outputs, input_lists, opts=None):   # scatters: each input list has this rank's slot only
    return _coalesced(self, outputs, [i[0] for i in input_lists])


class ProcessGroupXla(dist.ProcessGroup):
    """torch.distributed on the emulated device for a world of one process (rank 0)."""

    def __init__(self, prefix_store=None, rank: int = 0, size: int = 1, timeout=None):
        if size != 1:
            raise NotImplementedError(MULTI_PROCESS.format(n=size))
        super().__init__(rank, size)

    def getBackendName(self):
        return "xla"

    def barrier(self, opts=None):
        return _done(None)

    allreduce = allreduce_coalesced = broadcast = reduce = _unchanged
    all_gather_single = reduce_scatter_single = all_to_all_single = _single
    all_gather_single_coalesced = reduce_scatter_single_coalesced = alltoall = _coalesced
    allgather = gather = _into_lists
    reduce_scatter = scatter = _from_lists


def _create(prefix_store, rank, size, timeout):
    return ProcessGroupXla(prefix_store, rank, size, timeout)


def _rendezvous(url, timeout=datetime.timedelta(minutes=30), **kwargs):   # `xla://`: this process is the world
    yield dist.HashStore(), 0, 1


def _register() -> None:
    if not dist.is_available():
        return
    if "xla" not in dist.Backend.backend_list:
        dist.Backend.register_backend("xla", _create, devices=["xla", torch._C._get_privateuse1_backend_name()])
    rdzv = importlib.import_module("torch.distributed.rendezvous")   # the module (`dist.rendezvous` is a function)
    if "xla" not in rdzv._rendezvous_handlers:
        rdzv.register_rendezvous_handler("xla", _rendezvous)


_register()
