"""Mirror of `torch_xla.distributed.spmd` (imported as `xs`): importable, as libraries import it whenever torch_xla
is present (transformers' Trainer does), but sharding is not emulated: each entry point says so."""
from __future__ import annotations


def _unsupported(what: str):
    raise NotImplementedError(f"torch_xla.distributed.spmd.{what}: SPMD sharding over NeuronCores is not emulated "
                              f"(neuron-emu runs one process whose tensors live on one device each)")


class Mesh:
    def __init__(self, *args, **kwargs):
        _unsupported("Mesh")


def set_global_mesh(mesh) -> None:
    _unsupported("set_global_mesh")


def get_global_mesh():
    return None


def mark_sharding(*args, **kwargs):
    _unsupported("mark_sharding")
