"""Mirror of `torch_xla.distributed.spmd` (imported as `xs`): importable, as libraries import it whenever torch_xla
is present (transformers' Trainer does), but sharding is not emulated: each entry point says so."""
from __future__ import annotations


def unsupported(what: str):
    """The error of every SPMD entry point (`what`: its torch_xla name)."""
    raise NotImplementedError(f"{what}: SPMD sharding over NeuronCores is not emulated (neuron-emu runs one "
                              f"process whose tensors live on one device each, xm.xla_device(n))")


class Mesh:
    def __init__(self, *args, **kwargs):
        unsupported("torch_xla.distributed.spmd.Mesh")


def set_global_mesh(mesh) -> None:
    unsupported("torch_xla.distributed.spmd.set_global_mesh")


def get_global_mesh():
    return None


def mark_sharding(*args, **kwargs):
    unsupported("torch_xla.distributed.spmd.mark_sharding")
