"""The model size limit Inf1 users hit: a compiled subgraph's constants must fit the NeuronCore-v1's slice of the
chip DRAM (2 GB of the 8 GB shared by 4 cores [hardware.py NEURONCORE_V1]); past it, torch-neuron needs
`separate_weights=True` (docs/reference/neuron-api.md 1.1: "for models with >1.9 GB constants") or a
pipeline over several cores. Checked at trace time, naming the size and the limit."""
from __future__ import annotations

from neuron_emu.hardware import NEURONCORE_V1


class ModelSizeError(RuntimeError):
    pass


def weight_bytes(compiled) -> int:
    """Bytes of the constants the compiled program carries, counted as fp32 (4 bytes each) as the GraphDef neuron-cc
    receives holds them, even where our artifact stores a matmul weight cast to 16 bits."""
    from neuron_emu.compiler import artifact

    meta, sections = artifact.deserialize(compiled.blob)
    return int(sum(4 * a.size for name, a in sections.items() if name.startswith("const.")))


def check_model_size(compiled, separate_weights: bool, cores: int = 1, limit: int = None) -> int:
    limit = NEURONCORE_V1.device_mem_bytes * cores if limit is None else limit
    size = weight_bytes(compiled)
    if size > limit and not separate_weights:
        raise ModelSizeError(
            f"the model's constants are {size / 1e9:.2f} GB, over the {limit / 1e9:.2f} GB of device memory "
            f"{'a NeuronCore-v1' if cores == 1 else f'{cores} NeuronCore-v1'} holds (each core owns a 2 GB slice of "
            "the Inferentia chip's 8 GB); trace with separate_weights=True or split the model with "
            "compiler_args=['--neuroncore-pipeline-cores', 'N']")
    return size
