"""The Perfetto timeline loaded by Perfetto's own trace processor (the engine behind ui.perfetto.dev), through the
`perfetto` PyPI package's TraceProcessor, and queried with SQL: every "X" event becomes a slice on its engine's
thread, inside its NeuronCore's process, with its name, start and duration.

The package does not ship the trace_processor_shell binary: on first use it downloads it from
commondatastorage.googleapis.com (perfetto.prebuilts.perfetto_prebuilts.download_or_get_cached), which a machine
without general internet access cannot reach. The test then skips, saying so; point PERFETTO_TRACE_PROCESSOR at a
trace_processor_shell to run it offline. test_profile.py::test_perfetto_trace checks the trace-event format itself
without a parser binary."""
import json
import os

import pytest

import torch_neuronx_emu
from neuron_emu import zoo

tp_api = pytest.importorskip("perfetto.trace_processor")


def trace_processor(path):
    cfg = tp_api.TraceProcessorConfig(bin_path=os.environ.get("PERFETTO_TRACE_PROCESSOR") or None,
                                      load_timeout=60)
    try:
        return tp_api.TraceProcessor(trace=path, config=cfg)
    except Exception as e:  # the binary could not be downloaded (offline) or started
        pytest.skip(f"Perfetto trace_processor_shell unavailable ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                    "set PERFETTO_TRACE_PROCESSOR to a local binary")


def test_trace_processor_reads_the_timeline(tmp_path):
    probe = tmp_path / "probe.json"     # find out first (cheaply) whether the parser can run here
    probe.write_text(json.dumps({"traceEvents": []}))
    trace_processor(str(probe)).close()
    model, inputs = zoo.mlp(in_features=256, hidden=(512,), out=64, batch=16)
    r = torch_neuronx_emu.profile(torch_neuronx_emu.trace(model, inputs), *inputs, num_cores=2)
    path = str(tmp_path / "t.json")
    r.to_perfetto(path)
    spans = [e for e in json.load(open(path))["traceEvents"] if e["ph"] == "X"]
    tp = trace_processor(path)
    try:
        rows = list(tp.query(
            "select s.name as name, s.ts as ts, s.dur as dur, t.name as thread, p.name as process "
            "from slice s join thread_track tt on s.track_id = tt.id join thread t on tt.utid = t.utid "
            "join process p on t.upid = p.upid"))
    finally:
        tp.close()
    assert len(rows) == len(spans)
    # the trace processor keeps times in ns; the JSON has us
    got = sorted((x.process, x.name, x.ts, x.dur) for x in rows)
    want = sorted((f"NeuronCore {e['pid']} ({r.core}, {r.instance_type})", e["name"], e["ts"] * 1e3, e["dur"] * 1e3)
                  for e in spans)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for g, w in zip(got, want):
        assert abs(g[2] - w[2]) <= 1 and abs(g[3] - w[3]) <= 1, (g, w)
        assert 0 <= g[2] and g[2] + g[3] <= r.latency_ms * 1e6 + 1
    names = {(x.thread, x.name) for x in rows}
    assert ("TensorE", "aten::addmm") in names and ("Host link (PCIe)", "copy inputs to device") in names
