"""A Report's modelled timeline as Chrome trace-event JSON (the "JSON Array/Object Format" that ui.perfetto.dev and
chrome://tracing load): one process per NeuronCore, one thread (track) per engine, plus the DMA queues (instruction
transfers, SBUF spills/streams) and the host link. Each instruction is a complete ("X") event named after the ATen
op it came from, with the ISA op, the user's source line and the cycles in `args`. Times are microseconds.
An engine does one thing at a time, so a track's spans never overlap; a DMA span is the transfer's share of the
DMA bandwidth (its completion latency, overlapped with other transfers, is in `args`).

With num_cores > 1 every core runs its own copy of the model (data parallel), so each core's tracks repeat the
same modelled call."""
from __future__ import annotations

import json
from typing import List

from neuron_emu.hardware import CORES
from neuron_emu.isa import ENGINE_NAMES

# track ids inside a core's process: the engines in ENGINE_NAMES order, then these
TRACK_SPILL = len(ENGINE_NAMES)
TRACK_HOST = len(ENGINE_NAMES) + 1
TRACK_NAMES = list(ENGINE_NAMES[:-1]) + ["DMA queues (instructions)", "DMA queues (SBUF spill/stream)", "Host link (PCIe)"]


# Times are written on a grid of 2^-16 us (15 fs): a start, a duration and their sum are then exact binary fractions,
# so a span that ends where the next one begins cannot overlap it by a rounding error. A consumer drops a span that
# overlaps its track's previous one without nesting inside it (Chrome DevTools' trace engine, TreeHelpers.treify).
_GRID_PER_US = 2.0 ** 16


def _us(ns: float) -> float:
    return round(ns * (_GRID_PER_US / 1e3)) / _GRID_PER_US


def _x(name, cat, pid, tid, start_ns, end_ns, args) -> dict:
    ts = _us(start_ns)
    return {"name": name, "cat": cat, "ph": "X", "pid": pid, "tid": tid, "ts": ts,
            "dur": max(_us(end_ns) - ts, 0.0), "args": args}


def trace_events(report) -> List[dict]:
    events: List[dict] = []
    engines = next(c.engines for c in CORES.values() if c.name == report.core)
    for core in range(report.num_cores):
        pid = core
        events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                       "args": {"name": f"NeuronCore {core} ({report.core}, {report.instance_type})"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": core}})
        for tid, tname in enumerate(TRACK_NAMES):
            if tid < TRACK_SPILL and ENGINE_NAMES[tid] not in engines:
                continue   # NeuronCore-v1 has no GpSimdE: no track for it
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": tname}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
        for tl in report.timeline["programs"]:
            mem = tl["memory"]
            base = tl["offset_ns"] + mem["host_in_ns"]   # device time 0 = after the inputs crossed the host link
            if mem["host_in_ns"] > 0:
                events.append(_x("copy inputs to device", "host", pid, TRACK_HOST, tl["offset_ns"], base,
                                 {"bytes": int(mem["host_bytes"])}))
            if mem["host_out_ns"] > 0:
                end = base + mem["device_ns"]
                events.append(_x("copy outputs to host", "host", pid, TRACK_HOST, end, end + mem["host_out_ns"], {}))
            for i in range(len(tl["op"])):
                src = tl["source_op"][i] or tl["op_name"][i]
                args = {"isa_op": tl["op_name"][i], "instruction": i, "cycles": float(tl["cycles"][i])}
                if tl["source_where"][i]:
                    args["source"] = tl["source_where"][i]
                e = int(tl["engine"][i])
                events.append(_x(src, ENGINE_NAMES[e], pid, e, base + tl["start_ns"][i], base + tl["main_end_ns"][i], args))
                a = int(tl["aux_engine"][i])
                if a >= 0:
                    events.append(_x(src, ENGINE_NAMES[a], pid, a, base + tl["aux_start_ns"][i],
                                     base + tl["aux_end_ns"][i], dict(args, part="PSUM evacuation / ScalarE pass")))
            sp = tl["spills"]
            for k in range(len(sp["start_ns"])):
                kind = "spill/reload" if int(sp["kind"][k]) == 0 else "write-back"
                events.append(_x(f"SBUF {kind}", "DMA", pid, TRACK_SPILL, base + sp["start_ns"][k],
                                 base + sp["busy_end_ns"][k],
                                 {"bytes": int(sp["bytes"][k]), "for_instruction": int(sp["instr"][k]),
                                  "completes_at_us": _us(base + sp["end_ns"][k])}))
    return events


def write_trace(report, path: str) -> dict:
    trace = {"traceEvents": trace_events(report), "displayTimeUnit": "ns",
             "otherData": {"model": report.model, "instance_type": report.instance_type,
                           "latency_ms": report.latency_ms, "source": "neuron-emu modelled timeline"}}
    with open(path, "w") as f:
        json.dump(trace, f)
    return trace
