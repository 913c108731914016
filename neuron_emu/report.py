"""Per-engine and cost report for one execution (CallSummary) on a set of instance types.

Throughput assumes one copy of the model per NeuronCore (data parallel, as DataParallel does) and
the emulated single-call latency per core; cost per 1M inferences = price/hour / inferences per hour."""
from __future__ import annotations

from typing import Iterable, List

from neuron_emu.hardware import INSTANCES
from neuron_emu.runtime.model import CallSummary


def engine_table(s: CallSummary) -> str:
    lines = [f"  {s.core}: latency {s.latency_s * 1e3:.3f} ms (bottleneck: {s.bottleneck})",
             f"  {'engine':8s} {'busy ms':>10s} {'util':>6s} {'instr':>8s} {'GFLOP':>9s} {'MB moved':>9s}"]
    for name, e in s.engines.items():
        lines.append(f"  {name:8s} {e.busy_s * 1e3:10.3f} {e.utilization * 100:5.1f}% {e.instructions:8d} "
                     f"{e.flops / 1e9:9.3f} {e.bytes / 1e6:9.2f}")
    return "\n".join(lines)


def cost_rows(s: CallSummary, instances: Iterable[str], batch: int = 1) -> List[dict]:
    rows = []
    for name in instances:
        inst = INSTANCES[name]
        per_s = inst.neuron_cores * batch / s.latency_s
        rows.append({"instance": name, "cores": inst.neuron_cores, "usd_per_hour": inst.usd_per_hour,
                     "inferences_per_s": per_s, "usd_per_1m": inst.usd_per_hour / (per_s * 3600) * 1e6})
    return rows


def cost_table(s: CallSummary, instances: Iterable[str], batch: int = 1) -> str:
    lines = [f"  {'instance':14s} {'cores':>5s} {'$/h':>7s} {'inf/s':>10s} {'$ per 1M inf':>13s}"]
    for r in cost_rows(s, instances, batch):
        lines.append(f"  {r['instance']:14s} {r['cores']:5d} {r['usd_per_hour']:7.3f} {r['inferences_per_s']:10.0f} "
                     f"{r['usd_per_1m']:13.4f}")
    return "\n".join(lines)
