"""A saved model is untrusted input: each root cause the artifact fuzzer found (tests/fuzz_artifacts.py) is
refused at load with an ArtifactError naming the field -- never a heap overflow, a wrapped bound, a huge
allocation or a raw KeyError/TypeError."""
import json
import struct

import numpy as np
import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.compiler import artifact
from neuron_emu.runtime.model import LoadedModel

from tests.fuzz_artifacts import join, split


@pytest.fixture(scope="module")
def mlp_blob():
    model, inputs = zoo.mlp(in_features=32, hidden=(16,), out=4, batch=2)
    return bytes(torch_neuronx_emu.trace(model, inputs).neff.numpy()), inputs


def _load(blob: bytes):
    return LoadedModel(torch.frombuffer(bytearray(blob), dtype=torch.uint8), origin="m.pt")


def _edit_header(blob: bytes, fn) -> bytes:
    pre, header, data = split(blob)
    fn(header)
    return join(pre, header, data)


def _edit_section(blob: bytes, name: str, fn) -> bytes:
    pre, header, data = split(blob)
    s = header["sections"][name]
    d = bytearray(data)
    arr = np.frombuffer(d, dtype=np.int64, count=s["nbytes"] // 8, offset=s["offset"]).reshape(s["shape"]).copy()
    fn(arr)
    d[s["offset"]:s["offset"] + s["nbytes"]] = arr.tobytes()
    return join(pre, header, bytes(d))


def test_unmodified_loads_and_runs(mlp_blob):
    blob, inputs = mlp_blob
    m = _load(blob)
    assert m(list(inputs))[0].shape == (2, 4)


@pytest.mark.parametrize("kind,shape,match", [
    ("outputs", [2, 3], "IoOut.*numel 8 but the header's output 0 has 6 elements"),   # was a heap overflow WRITE
    ("outputs", [2, 5], "numel 8 but the header's output 0 has 10"),
    ("inputs", [2, 16], "IoIn.*numel 64 but the header's input 0 has 32 elements"),   # was an overflowing READ
])
def test_header_io_shape_must_match_the_program(mlp_blob, kind, shape, match):
    bad = _edit_header(mlp_blob[0], lambda h: h[kind][0].__setitem__("shape", shape))
    with pytest.raises(artifact.ArtifactError, match=match):
        _load(bad)


def test_header_io_dtype_must_match_the_program(mlp_blob):
    bad = _edit_header(mlp_blob[0], lambda h: h["outputs"][0].__setitem__("dtype", "float64"))
    with pytest.raises(artifact.ArtifactError, match="io_dtype 0 but the header's output 0 has io dtype 1"):
        _load(bad)


def test_every_io_has_exactly_one_transfer(mlp_blob):
    blob = mlp_blob[0]
    bad = _edit_header(blob, lambda h: h["outputs"].append(dict(h["outputs"][0])))
    with pytest.raises(artifact.ArtifactError, match="output 1 has no IoOut"):
        _load(bad)

    def dup_out(rows):  # the IoIn now also claims to be output 0's IoOut... with the IoIn's numel
        io_out = np.nonzero(rows[:, 0] == 53)[0][0]
        rows[0] = rows[io_out]
    with pytest.raises(artifact.ArtifactError, match="already transferred|not earlier|reads|input 0 has no IoIn"):
        _load(_edit_section(blob, "instrs", dup_out))


@pytest.mark.parametrize("edit,match", [
    (lambda h: h["outputs"][0].__setitem__("dtype", "Tensor"), r"outputs\[0\]: dtype 'Tensor' is not one of"),
    (lambda h: h["inputs"][0].__setitem__("dtype", None), r"inputs\[0\]: dtype None"),
    (lambda h: h["inputs"][0].__setitem__("shape", [2, -32]), r"inputs\[0\]: shape must be a list of non-negative"),
    (lambda h: h["inputs"][0].__setitem__("shape", 7), r"inputs\[0\]: shape must be a list"),
    (lambda h: h["inputs"][0].__setitem__("shape", [2**40, 2**40]), "more than 2\\^62 elements"),
    (lambda h: h["inputs"][0].__delitem__("dtype"), r"inputs\[0\]: dtype None"),
    (lambda h: h.__setitem__("outputs", 3), "'outputs' must be a list"),
    (lambda h: h.__setitem__("arena_floats", "big"), "'arena_floats' must be an integer"),
    (lambda h: h.__setitem__("arena_floats", 2**64), "'arena_floats' must be an integer in"),
    (lambda h: h.__setitem__("core_generation", [2]), "'core_generation' must be an integer"),
    (lambda h: h["sections"]["deps"].__delitem__("offset"), "section 'deps': field 'offset'"),
    (lambda h: h["sections"]["instrs"].__setitem__("shape", [1, 2**62]), "section 'instrs'.*out of bounds|2\\^62"),
    (lambda h: h["sections"].__setitem__("instrs", 5), "section 'instrs': entry must be an object"),
    (lambda h: h.__setitem__("ops", {"x": "MatMul"}), "'ops' must map"),
    (lambda h: h.__setitem__("source_ops", 1), "'source_ops'"),
])
def test_header_fields_are_validated(mlp_blob, edit, match):
    with pytest.raises(artifact.ArtifactError, match=match):
        _load(_edit_header(mlp_blob[0], edit))


def test_non_object_header(mlp_blob):
    pre, _, data = split(mlp_blob[0])
    with pytest.raises(artifact.ArtifactError, match="header is a JSON list"):
        _load(join(pre, b"[1, 2]", data))
    with pytest.raises(artifact.ArtifactError, match="corrupt header"):
        _load(join(pre, b"[" * 100000, data))


def test_huge_arena_is_refused_by_name(mlp_blob, monkeypatch):
    with pytest.raises(artifact.ArtifactError, match="arena_floats: .* exceed the arena limit"):
        _load(_edit_header(mlp_blob[0], lambda h: h.__setitem__("arena_floats", 2**60)))
    monkeypatch.setenv("NEMU_MAX_ARENA_BYTES", "16")
    with pytest.raises(artifact.ArtifactError, match="arena_floats: .*NEMU_MAX_ARENA_BYTES"):
        _load(mlp_blob[0])


def test_oversized_arena_allocates_only_what_buffers_need(mlp_blob, monkeypatch):
    # 2^30 floats declared, 4 GiB if believed: loads (below the limit) but allocates only the buffers' extent
    monkeypatch.setenv("NEMU_MAX_ARENA_BYTES", str(1 << 33))
    m = _load(_edit_header(mlp_blob[0], lambda h: h.__setitem__("arena_floats", 2**30)))
    assert m(list(mlp_blob[1]))[0].shape == (2, 4)


def test_bad_arena_limit_env(mlp_blob, monkeypatch):
    monkeypatch.setenv("NEMU_MAX_ARENA_BYTES", "lots")
    with pytest.raises(artifact.ArtifactError, match="NEMU_MAX_ARENA_BYTES must be a positive number"):
        _load(mlp_blob[0])


def test_buffer_offset_overflow(mlp_blob):
    def edit(b):
        b[np.nonzero(b[:, 1] == 0)[0][0], 2] = 2**63 - 1
    with pytest.raises(artifact.ArtifactError, match="arena_offset/numel .* outside the arena"):
        _load(_edit_section(mlp_blob[0], "buffers", edit))


def test_buffer_kind(mlp_blob):
    with pytest.raises(artifact.ArtifactError, match=r"buffers\[0\]: kind 4294967296"):
        _load(_edit_section(mlp_blob[0], "buffers", lambda b: b.__setitem__((0, 1), 2**32)))


def test_dependency_range_overflow(mlp_blob):
    def edit(rows):
        rows[-1, 61], rows[-1, 62] = 1, 2**63 - 1
    with pytest.raises(artifact.ArtifactError, match="dep_begin/dep_count .* outside the dependency table"):
        _load(_edit_section(mlp_blob[0], "instrs", edit))


def test_view_stride_overflow():
    # a view whose reach (shape-1)*stride wraps int64 is refused, not a pointer past the buffer
    from neuron_emu import _C
    from neuron_emu.isa import Op, encode_program, view_layout
    from neuron_emu.kernels._run import spec
    from tests.isa_util import instr
    ins = instr(Op.DmaCopy, [0, 1], view_layout([5], [(0, [2**61]), (0, [1])]), elem_bytes=4)
    rows, deps = encode_program([ins])
    with pytest.raises(ValueError, match="DmaCopy operand 0: view extent overflows int64"):
        _C.Program(spec(2), rows, deps, np.array([8, 8], np.int64), np.array([0, 0], np.int32),
                   np.array([0, 8], np.int64), [], 16, [], [])


def test_wide_words_do_not_wrap(mlp_blob):
    # an operand id of 2^32 + 1 is not buffer 1
    with pytest.raises(artifact.ArtifactError, match=r"instruction \d+ \(\w+\): word 3 \(operand 0\) = 4294967297 is not a 32-bit value"):
        _load(_edit_section(mlp_blob[0], "instrs", lambda r: r.__setitem__((0, 3), 2**32 + 1)))


def test_huge_instruction_costs_saturate(mlp_blob):
    # fuzz seed 205 case 176: an instruction whose modelled cost is ~2^63 bytes overflowed the per-engine sums
    # (signed overflow, seen only under UBSan: tests/run_sanitized.sh runs this file); it must load and run, or be
    # refused by name
    blob, inputs = mlp_blob

    def edit(r):
        r[2, 22], r[2, 55], r[2, 9], r[2, 26] = -7827570802015981036, 2**32, 2**63 - 1, 2**61
    try:
        out = _load(_edit_section(blob, "instrs", edit))(list(inputs))
    except artifact.ArtifactError as e:
        assert str(e).startswith("m.pt: ")
    else:
        assert out[0].shape == (2, 4)
