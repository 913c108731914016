"""The artifact format: round trip, and corrupt files raise clear errors (never crash)."""
import numpy as np
import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.compiler import artifact
from neuron_emu.runtime.model import LoadedModel


def _blob():
    model, inputs = zoo.mlp(batch=2)
    traced = torch_neuronx_emu.trace(model, inputs)
    return traced.neff.clone(), inputs


def test_round_trip_header():
    blob, _ = _blob()
    header, sections = artifact.deserialize(blob)
    assert header["format_version"] == artifact.FORMAT_VERSION
    assert sections["instrs"].shape[1] == 64
    assert header["inputs"][0]["shape"] == [2, 784]


@pytest.mark.parametrize("corrupt,match", [
    (lambda b: b.__setitem__(slice(0, 8), 0), "bad magic"),
    (lambda b: b.__setitem__(slice(8, 12), torch.tensor([9, 0, 0, 0], dtype=torch.uint8)), "format version 9"),
    (lambda b: b.resize_(100), "runs past the end|truncated|out of bounds"),
])
def test_corrupt_artifacts(corrupt, match):
    blob, _ = _blob()
    corrupt(blob)
    with pytest.raises(artifact.ArtifactError, match=match):
        LoadedModel(blob)


def test_instruction_out_of_bounds_is_rejected():
    blob, _ = _blob()
    header, sections = artifact.deserialize(blob)
    instrs = sections["instrs"]           # a view into blob
    mm = np.nonzero(instrs[:, 0] == 1)[0][0]
    instrs[mm, 9 + 1] = 10_000            # MatMul M far beyond the buffers
    with pytest.raises(artifact.ArtifactError, match="invalid program: instruction"):
        LoadedModel(blob)
