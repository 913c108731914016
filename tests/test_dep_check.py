"""The dependency checker (csrc/dep_check.cpp): every memory hazard between instructions (on arena
ranges, so across buffers that share memory) must be ordered by a dependency path. A missing
dependency never changes results, only silently shortens the reported latency, so the suite runs
with the checker on (conftest.py) and these tests show it catches what it should."""
import numpy as np
import pytest
import torch

from neuron_emu import zoo
from neuron_emu.compiler import artifact, compile_graph
from neuron_emu.compiler.builder import CONSTANT, INTERMEDIATE
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.memory import plan_memory
from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.isa import Op
from neuron_emu.runtime.model import LoadedModel, last_call

DEP_BEGIN, DEP_COUNT = 61, 62  # instruction row words (csrc/isa.h)


def _compile(model, inputs):
    with torch.no_grad():
        graph, _ = capture(model, inputs)
    return compile_graph(graph, parse_compiler_args(None)).blob


def _decode(blob):
    header, sec = artifact.deserialize(blob)
    rows = sec["instrs"].copy()
    deps = [sec["deps"][r[DEP_BEGIN]:r[DEP_BEGIN] + r[DEP_COUNT]].tolist() for r in rows]
    return header, sec, rows, deps


def _encode(header, sec, rows, deps):
    """The artifact with each instruction's dependency list replaced."""
    rows = rows.copy()
    flat, pos = [], 0
    for i, d in enumerate(deps):
        rows[i, DEP_BEGIN], rows[i, DEP_COUNT] = pos, len(d)
        flat += d
        pos += len(d)
    sections = dict(sec, instrs=rows, deps=np.asarray(flat, dtype=np.int64))
    meta = {k: v for k, v in header.items() if k not in ("sections", "format", "format_version")}
    return artifact.serialize(meta, sections)


def _operands(row):
    """(reads, writes) buffer ids of an instruction row: today's rule, as operand_is_written in csrc/dep_check.h."""
    ops = [int(b) for b in row[3:3 + row[2]]]
    if int(row[0]) in (int(Op.DmaLoad), int(Op.IoOut)):
        return ops, []
    return ops[:-1], ops[-1:]


def _implied(deps, j, k):
    """Whether k is an ancestor of j through a path other than the direct edge k -> j."""
    stack, seen = [d for d in deps[j] if d != k], set()
    while stack:
        d = stack.pop()
        if d == k:
            return True
        if d > k and d not in seen:
            seen.add(d)
            stack.extend(deps[d])
    return False


def _drop(deps, j, k):
    out = [list(d) for d in deps]
    out[j].remove(k)
    return out


def _load(blob, monkeypatch, check):
    monkeypatch.setenv("NEMU_CHECK_DEPS", "1" if check else "0")
    return LoadedModel(blob)


def _run(m, inputs):
    outs = m(list(inputs))
    return outs, last_call().latency_s


@pytest.mark.parametrize("name", ["resnet_small", "bert_tiny"])
def test_zoo_programs_pass_the_checker(name, monkeypatch):
    model, inputs = zoo.TINY_BUILDERS[name]()
    _load(_compile(model, inputs), monkeypatch, check=True)  # raises ArtifactError on an unordered hazard


def test_dropped_dependency_is_caught(monkeypatch):
    model, inputs = zoo.TINY_BUILDERS["resnet_small"]()
    blob = _compile(model, inputs)
    header, sec, rows, deps = _decode(blob)
    buffers = sec["buffers"]
    # a read-after-write edge on an intermediate buffer that no other path implies
    cands = [(j, k) for j in range(len(rows)) for k in deps[j]
             if set(_operands(rows[j])[0]) & {b for b in _operands(rows[k])[1] if buffers[b][1] == INTERMEDIATE}
             and not _implied(deps, j, k)]
    assert cands, "no dependency edge that only a direct edge provides"
    j, k = cands[len(cands) // 2]
    broken = _encode(header, sec, rows, _drop(deps, j, k))

    with pytest.raises(artifact.ArtifactError) as e:
        _load(broken, monkeypatch, check=True)
    msg = str(e.value)
    assert f"instruction {j} (" in msg and f"instruction {k} (" in msg and "RAW" in msg and "arena [" in msg

    ref_out, ref_lat = _run(_load(blob, monkeypatch, check=False), inputs)
    out, lat = _run(_load(broken, monkeypatch, check=False), inputs)
    for a, b in zip(ref_out, out):
        assert torch.equal(a, b)
    assert lat <= ref_lat


class _TwoBranches(torch.nn.Module):
    # t's arena range is freed after u reads it and reused by exp(z), which no data edge orders after u
    def forward(self, x, z):
        t = x * 2.0
        u = t + 1.0
        v = torch.exp(z)
        return u, v


def test_dropped_memory_reuse_hazard_is_caught(monkeypatch):
    inputs = (torch.randn(64, 64), torch.randn(64, 64))
    blob = _compile(_TwoBranches(), inputs)
    header, sec, rows, deps = _decode(blob)
    buffers = sec["buffers"]

    def arena(b):
        numel, kind, off = (int(v) for v in buffers[b])
        return (off, off + numel) if kind == INTERMEDIATE and numel else None

    def overlap(i, k):  # buffers of i and k that share arena space but are different buffers
        for a in sum(_operands(rows[i]), []):
            for b in sum(_operands(rows[k]), []):
                ra, rb = arena(a), arena(b)
                if a != b and ra and rb and ra[0] < rb[1] and rb[0] < ra[1]:
                    return a, b
        return None

    cands = [(j, k) for j in range(len(rows)) for k in deps[j]
             if overlap(j, k) and not set(sum(_operands(rows[j]), [])) & set(sum(_operands(rows[k]), []))
             and not _implied(deps, j, k)]
    assert cands, "the planner reused no arena range across independent instructions"
    j, k = cands[0]
    with pytest.raises(artifact.ArtifactError) as e:
        _load(_encode(header, sec, rows, _drop(deps, j, k)), monkeypatch, check=True)
    msg = str(e.value)
    a, b = overlap(j, k)
    assert f"instruction {j} (" in msg and f"instruction {k} (" in msg
    assert ("WAR" in msg or "WAW" in msg) and f"buffer {a}" in msg and f"buffer {b}" in msg


def test_reuse_hazards_are_exact_frontiers():
    # buffer 0 is written once and read by 20 instructions, then freed; buffer 1 reuses its range.
    # Its writer must wait for all 20 readers (the old planner kept only the last 8 uses).
    n_read = 20
    reads = [[]] + [[0] for _ in range(n_read)] + [[]]
    writes = [[0]] + [[2 + r] for r in range(n_read)] + [[1]]
    numel = [64, 64] + [16] * n_read
    kinds = [INTERMEDIATE] * len(numel)
    offsets, _top, extra = plan_memory(numel, kinds, reads, writes)
    assert offsets[1] == offsets[0]
    assert extra[n_read + 1] >= set(range(1, n_read + 1))
    # with no readers since its last write, the frontier is that writer alone
    offsets, _top, extra = plan_memory([64, 64], [INTERMEDIATE] * 2, [[], [], []], [[0], [0], [1]])
    assert offsets[1] == offsets[0] and extra[2] == {1}


def test_constants_are_never_hazards():
    offsets, top, extra = plan_memory([64, 64], [CONSTANT, INTERMEDIATE], [[0], [0]], [[1], [1]])
    assert top == 64 and not any(extra.values())
