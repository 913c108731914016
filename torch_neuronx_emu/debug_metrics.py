"""Mirror of `torch_xla.debug.metrics` (imported as `met`) for the emulated lazy device."""
from __future__ import annotations

from typing import List, Optional

from neuron_emu.lazy import metrics as _m
from neuron_emu.lazy import recompile as _r

counter_names = _m.counter_names
counter_value = _m.counter_value
metric_names = _m.metric_names
metric_data = _m.metric_data
clear_counters = _m.clear_counters
clear_metrics = _m.clear_metrics
executed_fallback_ops = _m.executed_fallback_ops

_SHORT_COUNTERS = ["CachedCompile", "MarkStep", "DynamoSyncInputExecuteTime"]
_SHORT_METRICS = ["CompileTime", "ExecuteTime", "ExecuteReplicatedTime", "TransferToDeviceTime",
                  "TransferFromDeviceTime"]


def clear_all() -> None:
    _m.clear_counters()
    _m.clear_metrics()
    _r.recompiles.clear()
    _r.graph_cuts.clear()


def metrics_report() -> str:
    """Every metric and counter in torch_xla's format, then why each graph was compiled and where graphs were cut
    before a mark_step (the emulator's addition)."""
    return _m.report() + _r.report()


def short_metrics_report(counter_names: Optional[List[str]] = None, metric_names: Optional[List[str]] = None) -> str:
    return _m.report(counter_names or _SHORT_COUNTERS, metric_names or _SHORT_METRICS)


def recompile_report() -> str:
    """Why each graph was compiled (changed input shape/dtype, op sequence diff, the cut's source line)."""
    return _r.report()
