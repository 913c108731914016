"""The profile timeline (Report.to_perfetto) as a real consumer of the trace-event format reads it: Chrome DevTools'
trace engine, the performance panel's own parser (npm `@paulirish/trace_engine`, pinned in tests/trace_parser/ and
installed there by scripts/setup.sh; tests/trace_parser/parse_trace.mjs prints what it parsed). Perfetto's
trace processor would do too, but its Python package downloads the binary at first use, which offline CI cannot.

Oracles: the Report (latency, per-engine busy time, its timeline's instruction list) for what the parser must find,
and the user's source files (transformers' BERT) for the source line each span names. A span the parser drops (one
that overlaps its track's previous span without nesting in it) or a trace it cannot read fails the checks."""
import json
import linecache
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import torch_neuron_emu
import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.isa import ENGINE_NAMES

PARSER = Path(__file__).parent / "trace_parser"
GRID_US = 2.0 ** -16          # the exporter's time grid (neuron_emu/perfetto.py): each span is exact to half of it


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        reason = "node (Node.js >= 20) not found: the trace parser is Chrome DevTools' trace engine, an npm package"
    elif not (PARSER / "node_modules/@paulirish/trace_engine/package.json").exists():
        reason = "Chrome DevTools' trace engine is not installed: run scripts/setup.sh (npm ci in tests/trace_parser)"
    else:
        return node
    if os.environ.get("NEMU_REQUIRE_TRACE_PARSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def parse(path) -> dict:
    done = subprocess.run([_node(), str(PARSER / "parse_trace.mjs"), str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _tracks(parsed) -> dict:
    return {(p["pid"], t["name"]): t for p in parsed["processes"] for t in p["threads"]}


@pytest.fixture(scope="module")
def bert_tiny():
    return zoo.bert("tiny", seq=32, batch=2)


@pytest.fixture(scope="module", params=["inf2-2cores", "inf1"])
def profiled(request, bert_tiny, tmp_path_factory):
    model, inputs = bert_tiny
    if request.param == "inf1":
        r = torch_neuron_emu.profile(model, *inputs)
    else:
        r = torch_neuronx_emu.profile(model, *inputs, num_cores=2)
    path = tmp_path_factory.mktemp("trace") / f"{request.param}.json"
    r.to_perfetto(str(path))
    return r, path, parse(path)


def _expected_spans(r):
    """Per track, the spans the Report's timeline holds for one core: main and aux engine parts, spills, host copies."""
    n = {name: 0 for name in ENGINE_NAMES}
    spill = host = 0
    for tl in r.timeline["programs"]:
        for i in range(len(tl["op"])):
            n[ENGINE_NAMES[int(tl["engine"][i])]] += 1
            if int(tl["aux_engine"][i]) >= 0:
                n[ENGINE_NAMES[int(tl["aux_engine"][i])]] += 1
        spill += len(tl["spills"]["start_ns"])
        host += (tl["memory"]["host_in_ns"] > 0) + (tl["memory"]["host_out_ns"] > 0)
    return n, spill, host


def test_parser_reads_one_track_per_engine_per_core(profiled):
    r, _, parsed = profiled
    assert parsed["generic"] is True          # read as a generic trace, not a browser's
    assert sorted(p["pid"] for p in parsed["processes"]) == list(range(r.num_cores))
    engines = [n for n in ENGINE_NAMES[:-1] if r.core == "NeuronCore-v2" or n != "GpSimdE"]   # v1 has no GpSimdE
    for p in parsed["processes"]:
        assert p["name"] == f"NeuronCore {p['pid']} ({r.core}, {r.instance_type})"
        names = [t["name"] for t in p["threads"]]
        dma = [n for n in names if n.startswith("DMA queues")]
        assert sorted(set(names) - set(dma)) == sorted(engines + ["Host link (PCIe)"]) and len(dma) == 2


def test_parser_keeps_every_span_and_busy_time_matches_the_report(profiled):
    r, _, parsed = profiled
    n, spill, host = _expected_spans(r)
    tracks = _tracks(parsed)
    for pid in range(r.num_cores):
        for t in (t for (p, _), t in tracks.items() if p == pid):
            # DevTools places every span in the track's tree (none overlapped its predecessor), and on an engine
            # track nothing nests: one instruction at a time (a zero-length span may sit inside a neighbour)
            assert len(t["events"]) == t["given"], t["name"]
            assert all(e["depth"] == 0 for e in t["events"] if e["dur"] > 0), t["name"]
        for name in ENGINE_NAMES[:-1]:
            if (pid, name) in tracks:
                ev = tracks[(pid, name)]["events"]
                assert len(ev) == n[name], name
                busy_us = sum(e["dur"] for e in ev)
                assert busy_us == pytest.approx(r.engines[name].busy_ms * 1e3, rel=1e-9, abs=len(ev) * GRID_US), name
            else:
                assert n[name] == 0 and r.engines[name].busy_ms == 0
        dma = tracks[(pid, "DMA queues (instructions)")]["events"] + \
            tracks[(pid, "DMA queues (SBUF spill/stream)")]["events"]
        assert len(dma) == n["DMA"] + spill
        assert sum(e["dur"] for e in dma) == pytest.approx(r.engines["DMA"].busy_ms * 1e3, rel=1e-9,
                                                           abs=len(dma) * GRID_US)
        assert len(tracks[(pid, "Host link (PCIe)")]["events"]) == host


def test_parser_spans_lie_within_the_latency(profiled):
    r, _, parsed = profiled
    latency_us = r.latency_ms * 1e3
    spans = [e for p in parsed["processes"] for t in p["threads"] for e in t["events"]]
    assert all(e["ts"] >= 0 and e["ts"] + e["dur"] <= latency_us + GRID_US for e in spans)
    # the call ends when its outputs reach the host: the last span ends at the latency
    assert parsed["bounds"]["max"] == pytest.approx(latency_us, abs=GRID_US)
    host = [e for p in parsed["processes"] for t in p["threads"] if t["name"] == "Host link (PCIe)"
            for e in t["events"]]
    assert {e["name"] for e in host} == {"copy inputs to device", "copy outputs to host"}
    device_us = r.device_ms * 1e3
    for p in parsed["processes"]:
        ins = next(e for t in p["threads"] if t["name"] == "Host link (PCIe)" for e in t["events"]
                   if e["name"] == "copy inputs to device")
        outs = next(e for t in p["threads"] if t["name"] == "Host link (PCIe)" for e in t["events"]
                    if e["name"] == "copy outputs to host")
        assert ins["ts"] == 0 and outs["ts"] + outs["dur"] == pytest.approx(latency_us, abs=GRID_US)
        assert outs["ts"] - (ins["ts"] + ins["dur"]) == pytest.approx(device_us, abs=2 * GRID_US)


# the ATen op each span is named after, and what the user's line that produced it calls
CALLS = {"aten::addmm": r"self\.(query|key|value|dense)\(", "aten::bmm": r"torch\.matmul\(",
         "aten::_softmax": r"softmax\(", "aten::native_layer_norm": r"LayerNorm\(|self\.\w*norm\w*\("}
ENGINE_OF = {"aten::addmm": "TensorE", "aten::bmm": "TensorE", "aten::_softmax": "VectorE",
             "aten::native_layer_norm": "VectorE", "aten::gelu": "ScalarE"}


def test_parser_names_spans_after_the_aten_op_and_user_line(profiled):
    r, _, parsed = profiled
    by_track = {}
    for p in parsed["processes"]:
        for t in p["threads"]:
            for e in t["events"]:
                by_track.setdefault(e["name"], set()).add(t["name"])
                src = e["args"].get("source")
                if e["name"] in CALLS and src and "modeling_bert.py" in src:
                    path, line = re.match(r"(.+):(\d+) in \w+$", src).groups()
                    assert re.search(CALLS[e["name"]], linecache.getline(path, int(line))), (e["name"], src)
    for op, engine in ENGINE_OF.items():
        assert engine in by_track.get(op, ()), (op, by_track.get(op))
    assert "ScalarE" in by_track["aten::_softmax"]      # the exp pass of softmax runs on ScalarE
    sources = [e["args"].get("source", "") for p in parsed["processes"] for t in p["threads"] for e in t["events"]
               if e["name"] == "aten::addmm"]
    assert sources and all("modeling_bert.py:" in s for s in sources)


def test_parser_rejects_broken_traces(profiled, tmp_path):
    """The checks above can fail: a truncated file is refused, unknown phases yield no spans, and a span moved to
    overlap its neighbour is dropped by the parser (what a rounding error at a span boundary used to cause)."""
    r, path, _ = profiled
    text = path.read_text()
    broken = tmp_path / "truncated.json"
    broken.write_text(text[: len(text) // 2])
    done = subprocess.run([_node(), str(PARSER / "parse_trace.mjs"), str(broken)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "JSON" in done.stderr

    doc = json.loads(text)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            e["ph"] = "x"
    unknown = tmp_path / "unknown_phase.json"
    unknown.write_text(json.dumps(doc))
    assert not any(t["events"] for p in parse(unknown)["processes"] for t in p["threads"])

    doc = json.loads(text)
    spans = sorted((e for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == 0 and e["tid"] == 0),
                   key=lambda e: e["ts"])
    first, second = spans[0], spans[1]
    first["dur"] = second["ts"] - first["ts"] + second["dur"] / 2      # now ends inside the next one
    overlap = tmp_path / "overlap.json"
    overlap.write_text(json.dumps(doc))
    tensor = _tracks(parse(overlap))[(0, "TensorE")]
    assert tensor["given"] == len(spans) and len(tensor["events"]) == len(spans) - 1
