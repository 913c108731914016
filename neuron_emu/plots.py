"""PNG plots of Reports (matplotlib, an optional dependency): engine utilization over one call, and Inf1 vs Inf2
latency / throughput / cost bars."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from neuron_emu.isa import ENGINE_NAMES


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib, which is not installed: pip install matplotlib "
                          "(Report.to_markdown(), to_json() and to_perfetto() work without it)") from None
    return plt


def utilization_series(report, bins: int = 200):
    """(bin centres in ms, {engine: busy fraction per bin}) over one call's device time."""
    total = sum(t["memory"]["device_ns"] for t in report.timeline["programs"]) or 1.0
    edges = np.linspace(0.0, total, bins + 1)
    busy = {n: np.zeros(bins) for n in ENGINE_NAMES}
    offset = 0.0
    for tl in report.timeline["programs"]:
        spans = [(int(tl["engine"][i]), tl["start_ns"][i], tl["main_end_ns"][i]) for i in range(len(tl["op"]))]
        spans += [(int(tl["aux_engine"][i]), tl["aux_start_ns"][i], tl["aux_end_ns"][i])
                  for i in range(len(tl["op"])) if tl["aux_engine"][i] >= 0]
        spans += [(ENGINE_NAMES.index("DMA"), s, e)   # a spill's bandwidth share, not its overlapped latency
                  for s, e in zip(tl["spills"]["start_ns"], tl["spills"]["busy_end_ns"])]
        for e, s, t in spans:
            s, t = s + offset, t + offset
            overlap = np.clip(np.minimum(edges[1:], t) - np.maximum(edges[:-1], s), 0.0, None)
            busy[ENGINE_NAMES[e]] += overlap
        offset += tl["memory"]["device_ns"]
    width = edges[1] - edges[0]
    return (edges[:-1] + width / 2) * 1e-6, {n: np.minimum(v / width, 1.0) for n, v in busy.items()}


def plot_utilization(report, path: str) -> str:
    plt = _pyplot()
    t, util = utilization_series(report)
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, u in util.items():
        if u.any():
            ax.plot(t, u * 100, label=name)
    ax.set_xlabel("device time (ms)")
    ax.set_ylabel("utilization (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"{report.model} on {report.instance_type}: {report.latency_ms:.2f} ms per call")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_comparison(rows: Sequence[Dict], path: str) -> str:
    """Bars of latency, throughput and cost per inference; rows: {"label", "latency_ms", "throughput_per_s",
    "cost_per_inference_usd", "instance_type"}."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    labels = [r["label"] for r in rows]
    colors = ["tab:blue" if r["instance_type"].startswith("inf1") else "tab:orange" for r in rows]
    for ax, key, title in zip(axes, ("latency_ms", "throughput_per_s", "cost_per_inference_usd"),
                              ("latency (ms)", "throughput (inferences/s)", "cost per inference (USD)")):
        ax.bar(range(len(rows)), [r[key] for r in rows], color=colors)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
