"""`neuron-emu monitor` (a neuron-monitor JSON stream) and `neuron-emu top` (a live text view of the same data)
of the processes running under `neuron-emu run` (neuron_emu/monitoring.py)."""
from __future__ import annotations

import json
import re
import sys
import time

from neuron_emu.monitoring import collect

CLEAR = "\x1b[H\x1b[2J"


def parse_period(text) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", str(text))
    if not m:
        raise SystemExit(f"neuron-emu monitor: period {text!r} is not a duration like 1s, 500ms or 2m")
    return float(m.group(1)) * {"ms": 1e-3, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]


def monitor_main(args) -> int:
    period = args.period
    if args.config_file:
        with open(args.config_file) as f:
            period = json.load(f).get("period", period)
    period_s = parse_period(period)
    n = 0
    while args.count is None or n < args.count:
        if n:
            time.sleep(period_s)
        print(json.dumps(collect()), flush=True)
        n += 1
    return 0


def _bar(pct: float, width: int = 20) -> str:
    k = int(round(max(0.0, min(100.0, pct)) / 100 * width))
    return "[" + "#" * k + "." * (width - k) + "]"


def render(doc: dict) -> str:
    hw = doc["neuron_hardware_info"]
    lines = [f"neuron-emu top - {doc['instance_info']['instance_type']} ({hw['neuron_device_count']} device(s) x "
             f"{hw['neuroncore_per_device_count']} NeuronCore-{hw['neuroncore_version']})", ""]
    if not doc["neuron_runtime_data"]:
        lines.append("No process is running under `neuron-emu run`.")
    for p in doc["neuron_runtime_data"]:
        r = p["report"]
        lines.append(f"Process {p['pid']} (tag {p['neuron_runtime_tag']})")
        lines.append(f"  NeuronCore Utilization")
        for core, c in sorted(r["neuroncore_counters"]["neuroncores_in_use"].items(), key=lambda kv: int(kv[0])):
            lines.append(f"    NC{core:>2s} {_bar(c['neuroncore_utilization'])} {c['neuroncore_utilization']:6.2f}%  "
                         f"{c['flops'] / 1e12:8.3f} TFLOP")
        ex = r["execution_stats"]
        lat = ex["latency_stats"]["total_latency"]
        lat_s = "idle" if lat is None else f"p50 {lat['p50'] * 1e3:.3f} ms  p99 {lat['p99'] * 1e3:.3f} ms"
        lines.append(f"  Executions {ex['execution_summary']['completed']}  latency {lat_s}")
        mem = r["memory_used"]["neuron_runtime_used_bytes"]
        lines.append(f"  Device memory {mem['neuron_device'] / 2**20:.1f} MiB in "
                     f"{len(r['memory_used']['loaded_models'])} loaded model(s)")
        lines.append("")
    return "\n".join(lines)


def top_main(args) -> int:
    period_s = parse_period(args.period)
    tty = sys.stdout.isatty()
    n = 0
    try:
        while args.iterations is None or n < args.iterations:
            if n:
                time.sleep(period_s)
            sys.stdout.write((CLEAR if tty else "") + render(collect()) + "\n")
            sys.stdout.flush()
            n += 1
    except KeyboardInterrupt:
        pass
    return 0
