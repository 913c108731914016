"""A corrupt saved model's error names the file torch.jit.load read it from (neuron_emu/runtime/origins.py), then
the instruction (index, op) and the field -- not just "model"."""
import inspect
import io

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.runtime import origins

from tests.fuzz_artifacts import _names_origin, embed, join, split, _seed


@pytest.fixture(scope="module")
def seed():
    model, inputs = zoo.mlp(in_features=32, hidden=(16,), out=4, batch=2)
    return _seed("mlp", model, inputs)


def _corrupt_pt(seed) -> bytes:
    pre, header, data = split(seed.blob)
    header["outputs"][0]["shape"] = [2, 3]     # the program's IoOut writes 8 elements
    return embed(seed, join(pre, header, data))


def _error_of(load, inputs) -> str:
    """The error of loading and calling: torch.jit.load places the program on a core at once (the default load),
    so a corrupt program fails there; a lazy one fails at its first call, inside TorchScript."""
    with pytest.raises(RuntimeError) as e:
        load()(*inputs)
    return f"{type(e.value).__name__}: {e.value}"


def test_error_names_the_file(seed, tmp_path):
    path = tmp_path / "downloaded.pt"
    path.write_bytes(_corrupt_pt(seed))
    msg = _error_of(lambda: torch.jit.load(str(path)), seed.inputs)
    assert (f"ArtifactError: {path}: invalid program: instruction 8 (IoOut): numel 8 but the header's output 0 "
            f"has 6 elements") in msg
    # a pathlib.Path names it too
    assert f"ArtifactError: {path}: " in _error_of(lambda: torch.jit.load(path), seed.inputs)


def test_error_names_an_in_memory_source(seed):
    assert "ArtifactError: <BytesIO passed to torch.jit.load>: invalid program: instruction 8 (IoOut)" in \
        _error_of(lambda: torch.jit.load(io.BytesIO(_corrupt_pt(seed))), seed.inputs)


def test_error_names_the_submodule(seed, tmp_path):
    # a model that holds a traced (corrupt) part: the error says which buffer of the file
    traced = inspect.unwrap(torch.jit.load)(  # TorchScript's own load: builds the outer model without placing it
        io.BytesIO(_corrupt_pt(seed)))

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = traced

        def forward(self, x):
            return self.encoder(x) + 1

    outer = torch.jit.script(Outer())
    path = tmp_path / "outer.pt"
    torch.jit.save(outer, str(path))
    msg = _error_of(lambda: torch.jit.load(str(path)), seed.inputs)
    assert f"ArtifactError: {path} (submodule encoder): invalid program" in msg


def test_traced_in_process_is_named_model(seed):
    t = torch.frombuffer(bytearray(seed.blob), dtype=torch.uint8)
    assert origins.origin(t) == "model"


def test_describe_source():
    assert origins.describe_source("a/b.pt") == "a/b.pt"
    assert origins.describe_source(io.BytesIO()) == "<BytesIO passed to torch.jit.load>"


@pytest.mark.parametrize("text,ok", [
    ("ArtifactError: fuzz: invalid program: instruction 3 (MatMul): MatMul: M = -1 outside [0, 2147483647]", True),
    ("ArtifactError: model: section 'deps' missing", False),          # names another origin
    ("RuntimeError: unknown op", False),                              # not an ArtifactError
    ("RuntimeError: Input tensor 0 has shape [2] and dtype torch.float32, but", True),   # the runtime's check
])
def test_fuzzer_requires_the_origin(text, ok):
    assert _names_origin(text, "fuzz") is ok
