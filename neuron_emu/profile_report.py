"""`Report`: what `profile()` answers — how fast one call is, where the time goes, what it costs.

All numbers come from the loaded program's modelled timeline (csrc/program.cpp, docs/cost-model.md): one call on
one NeuronCore is its device time plus the host link copies of the inputs and outputs. Throughput assumes one copy of
the model per NeuronCore (data parallel, as DataParallel does); cost per inference is the instance's on-demand price
over that throughput, per element of the batch (the seed table's footnote)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

ENGINES = ("TensorE", "VectorE", "ScalarE", "GpSimdE", "DMA")


@dataclass
class EngineReport:
    busy_ms: float
    utilization: float     # busy / device time of one call, in [0, 1]
    instructions: int
    flops: int
    bytes: int


@dataclass
class Report:
    model: str
    instance_type: str
    core: str                   # NeuronCore generation name
    num_cores: int
    batch: int
    latency_ms: float           # one call on one NeuronCore: host_in + device + host_out
    device_ms: float
    host_transfer_ms: float
    throughput_per_s: float     # num_cores * batch / latency
    cost_per_inference_usd: float
    usd_per_hour: float
    engines: Dict[str, EngineReport]
    bottleneck: str             # the busiest engine
    flops: int
    hbm_bytes: int              # device-memory traffic: weights, HBM copies, SBUF spills and streams
    spill_bytes: int
    host_bytes: int
    sbuf_peak_bytes: float
    instructions: int
    timeline: Optional[dict] = field(default=None, repr=False, compare=False)  # for to_perfetto / plot

    # -- views ---------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("timeline")
        return d

    def to_json(self, path: Optional[str] = None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    def to_markdown(self) -> str:
        lines = [
            f"### {self.model} on {self.instance_type} ({self.core}, batch {self.batch}, {self.num_cores} core(s))",
            "",
            "| latency (ms) | device (ms) | host transfer (ms) | throughput (inf/s) | cost per inference (USD) "
            "| bottleneck |",
            "|---:|---:|---:|---:|---:|---|",
            f"| {self.latency_ms:.3f} | {self.device_ms:.3f} | {self.host_transfer_ms:.3f} | "
            f"{self.throughput_per_s:.2f} | {self.cost_per_inference_usd:.3g} | {self.bottleneck} |",
            "",
            "| engine | busy (ms) | utilization | instructions | GFLOP | MB moved |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, e in self.engines.items():
            lines.append(f"| {name} | {e.busy_ms:.3f} | {e.utilization * 100:.1f}% | {e.instructions} | "
                         f"{e.flops / 1e9:.3f} | {e.bytes / 1e6:.2f} |")
        lines += ["", f"FLOPs {self.flops / 1e9:.2f} G; device-memory traffic {self.hbm_bytes / 2**20:.1f} MiB "
                      f"(SBUF spills/streams {self.spill_bytes / 2**20:.1f} MiB); SBUF peak "
                      f"{self.sbuf_peak_bytes / 2**20:.1f} MiB; host link {self.host_bytes / 2**20:.2f} MiB."]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def to_perfetto(self, path: str) -> dict:
        """Write the modelled timeline as Chrome trace-event JSON (opens in ui.perfetto.dev and chrome://tracing)."""
        from neuron_emu.perfetto import write_trace
        return write_trace(self, path)

    def plot(self, path: str) -> str:
        """PNG of engine utilization over the call (needs matplotlib)."""
        from neuron_emu.plots import plot_utilization
        return plot_utilization(self, path)
