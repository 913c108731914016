"""Counters and metrics of the lazy device, in torch_xla's model (`torch_xla/debug/metrics.py` + csrc metrics):
a counter is a named integer; a metric keeps its total sample count, accumulator and the most recent samples
(time, value). Times are recorded in nanoseconds and printed in XLA's `09s969ms486.408us` format."""
from __future__ import annotations

import math
import threading
import time
from typing import Dict, List, Optional, Tuple

from neuron_emu.lazy import device_queue

_MAX_SAMPLES = 1024          # torch_xla keeps a bounded window of recent samples per metric
_PERCENTILES = (0.01, 0.05, 0.10, 0.20, 0.50, 0.80, 0.90, 0.95, 0.99)
TIME_METRICS = {"CompileTime", "ExecuteTime", "TransferToDeviceTime", "TransferFromDeviceTime"}

_lock = threading.Lock()
_counters: Dict[str, int] = {}
_metrics: Dict[str, "Metric"] = {}


class Metric:
    __slots__ = ("total", "acc", "samples", "is_time")

    def __init__(self, is_time: bool):
        self.total = 0
        self.acc = 0.0
        self.samples: List[Tuple[float, float]] = []
        self.is_time = is_time

    def add(self, value: float) -> None:
        self.total += 1
        self.acc += value
        self.samples.append((time.time(), value))
        if len(self.samples) > _MAX_SAMPLES:
            del self.samples[: len(self.samples) - _MAX_SAMPLES]


def counter_add(name: str, n: int = 1) -> None:
    with _lock:
        _counters[name] = _counters.get(name, 0) + n


def metric_add(name: str, value: float) -> None:
    with _lock:
        m = _metrics.get(name)
        if m is None:
            m = _metrics[name] = Metric(name in TIME_METRICS or name.endswith("Time"))
        m.add(value)


class timed:
    """`with timed("CompileTime"):` records the block's wall time in nanoseconds."""
    __slots__ = ("name", "t0")

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.t0 = time.perf_counter_ns()
        return self

    def __exit__(self, *exc):
        metric_add(self.name, float(time.perf_counter_ns() - self.t0))
        return False


def counter_names() -> List[str]:
    device_queue.settle()
    with _lock:
        return [k for k, v in _counters.items() if v]


def counter_value(name: str) -> Optional[int]:
    device_queue.settle()
    with _lock:
        return _counters.get(name)


def metric_names() -> List[str]:
    device_queue.settle()
    with _lock:
        return list(_metrics)


def metric_data(name: str):
    """(TOTAL_SAMPLES, ACCUMULATOR, SAMPLES[(time, value)]) as torch_xla returns, or None for an unknown name."""
    device_queue.settle()
    with _lock:
        m = _metrics.get(name)
        return None if m is None else (m.total, m.acc, list(m.samples))


def clear_counters() -> None:
    device_queue.settle()
    with _lock:
        _counters.clear()


def clear_metrics() -> None:
    device_queue.settle()
    with _lock:
        _metrics.clear()


def executed_fallback_ops() -> List[str]:
    """The ops that ran on CPU for lack of a lowering (their `aten::` counters)."""
    with _lock:
        return sorted(k for k, v in _counters.items() if k.startswith("aten::") and v)


def format_time(ns: float) -> str:
    """XLA's MetricFnTime: leading unit zero-padded to its width, then every smaller unit, e.g. 09s969ms486.408us."""
    parts = (("d", 86400e9, 2, 0), ("h", 3600e9, 2, 0), ("m", 60e9, 2, 0), ("s", 1e9, 2, 0), ("ms", 1e6, 3, 0),
             ("us", 1e3, 7, 3))
    out, started = [], False
    for i, (suffix, scale, width, prec) in enumerate(parts):
        c = ns / scale
        last = i == len(parts) - 1
        if c >= 1.0 or started or last:
            if last:
                out.append(f"{c:0{width}.{prec}f}{suffix}")
            else:
                whole = math.floor(c)
                out.append(f"{whole:0{width}d}{suffix}")
                ns -= whole * scale
            started = True
    return "".join(out)


def _fmt(m: Metric, v: float) -> str:
    return format_time(v) if m.is_time else f"{v:.2f}"


def _metric_text(name: str, m: Metric) -> str:
    vals = sorted(v for _, v in m.samples)
    lines = [f"Metric: {name}", f"  TotalSamples: {m.total}", f"  Accumulator: {_fmt(m, m.acc)}"]
    if len(m.samples) > 1:
        span = m.samples[-1][0] - m.samples[0][0]
        if span > 0:
            lines.append(f"  ValueRate: {_fmt(m, sum(vals) / span)} / second")
            lines.append(f"  Rate: {len(vals) / span:.6g} / second")
    if vals:
        pct = "; ".join(f"{int(p * 100)}%={_fmt(m, vals[min(len(vals) - 1, int(p * len(vals)))])}" for p in _PERCENTILES)
        lines.append(f"  Percentiles: {pct}")
    return "\n".join(lines) + "\n"


def report(counter_names_: Optional[List[str]] = None, metric_names_: Optional[List[str]] = None) -> str:
    """The metrics and counters in torch_xla's text format; restricted to the given names when set."""
    device_queue.settle()
    with _lock:
        ms = [(k, _metrics[k]) for k in (metric_names_ if metric_names_ is not None else _metrics) if k in _metrics]
        cs = [(k, _counters[k]) for k in (counter_names_ if counter_names_ is not None else _counters)
              if _counters.get(k)]
    text = "".join(_metric_text(k, m) for k, m in ms)
    text += "".join(f"Counter: {k}\n  Value: {v}\n" for k, v in cs)
    return text
