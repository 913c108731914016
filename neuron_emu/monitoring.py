"""neuron-monitor-compatible reports of the emulated runtime (docs/reference/neuron-api.md 5.1).

A process's report (`runtime_report`) is built from its Runtimes' per-core counters: `neuroncore_counters`
(utilization = modelled busy time over the period, FLOPs), `execution_stats` (completed executions, latency
percentiles in seconds of the modelled latency), `memory_used` (the loaded models' constants and arenas). A process
started by `neuron-emu run` publishes its report every period to NEURON_EMU_MONITOR_DIR (default
<tmp>/neuron-emu-monitor/<pid>.json); `neuron-emu monitor` and `top` read every live process's file and stream the
document neuron-monitor prints: {"neuron_runtime_data": [...], "system_data": ..., "instance_info": ...,
"neuron_hardware_info": ...}."""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from typing import Dict, List, Optional

import numpy as np

from neuron_emu.hardware import INSTANCES

PERCENTILES = (0, 1, 25, 50, 75, 99, 100)


def monitor_dir() -> str:
    return os.environ.get("NEURON_EMU_MONITOR_DIR") or os.path.join(tempfile.gettempdir(), "neuron-emu-monitor")


def _percentiles(values_s: List[float]):
    if not values_s:
        return None
    a = np.asarray(values_s)
    return {f"p{p}": float(np.percentile(a, p)) for p in PERCENTILES}


def _model_bytes(m) -> Dict[str, int]:
    consts = int(sum(a.nbytes for n, a in _sections(m) if n.startswith("const.")))
    return {"constants": consts, "model_code": int(m.blob.numel()) - consts,
            "tensors": int(m.header.get("arena_floats", 0)) * 4, "model_shared_scratchpad": 0, "runtime_memory": 0}


def _sections(m):
    from neuron_emu.compiler import artifact
    _, sec = artifact.deserialize(m.blob)
    return sec.items()


class _Period:
    """Counter snapshots, so utilization is over the last period as neuron-monitor reports it."""

    def __init__(self):
        self.last: Dict[tuple, tuple] = {}

    def delta(self, key, busy_s: float, flops: int, now: float):
        prev = self.last.get(key)
        self.last[key] = (busy_s, flops, now)
        if prev is None:
            return busy_s, flops, None
        return busy_s - prev[0], flops - prev[1], now - prev[2]


_period = _Period()


def runtime_report(period_s: Optional[float] = None) -> dict:
    """This process's `report` (neuroncore_counters, execution_stats, memory_used) over all its Runtimes."""
    from neuron_emu.runtime.placement import _all_runtimes

    now = time.monotonic()
    in_use, latencies, completed = {}, [], 0
    nc_mem, loaded = {}, []
    for rt in list(_all_runtimes):
        for core in rt.cores:
            c = core.counters()
            if c.executions == 0 and core.loaded_models == 0:
                continue
            busy = max((e.busy_s for e in c.engines.values()), default=0.0)  # engines overlap: the busiest one
            flops = sum(e.flops for e in c.engines.values())
            d_busy, d_flops, dt = _period.delta((id(rt), core.index), busy, flops, now)
            span = dt if dt else (period_s or c.total_latency_s or 1.0)
            in_use[str(core.index)] = {"neuroncore_utilization": min(100.0, 100.0 * d_busy / span) if span else 0.0,
                                       "flops": int(d_flops)}
            completed += c.executions
            latencies += [v * 1e-9 for v in list(core.recent_latency_ns)]
            mem = {"constants": 0, "model_code": 0, "model_shared_scratchpad": 0, "runtime_memory": 0, "tensors": 0}
            for m in core.models():
                b = _model_bytes(m)
                for k in mem:
                    mem[k] += b[k]
                loaded.append({"name": m.header.get("uid", "model"), "uuid": str(m.header.get("uid", "")),
                               "model_id": len(loaded) + 1, "is_running": False,
                               "subgraphs": {"sg_00": {"memory_used_bytes": {"host": 0, "neuron_device": sum(b.values())},
                                                       "neuroncore_index": core.index, "neuron_device_index":
                                                       core.physical_index // rt.instance.chip.cores}}})
            nc_mem[str(core.index)] = mem
    device = sum(sum(v.values()) for v in nc_mem.values())
    group = {"period": period_s or 0.0, "error": ""}
    return {
        "neuroncore_counters": dict(group, neuroncores_in_use=in_use),
        "execution_stats": dict(group, error_summary={k: 0 for k in ("generic", "numerical", "transient", "model",
                                                                   "runtime", "hardware")},
                                execution_summary={"completed": completed, "completed_with_err": 0,
                                                   "completed_with_num_err": 0, "timed_out": 0, "incorrect_input": 0,
                                                   "failed_to_queue": 0},
                                latency_stats={"total_latency": _percentiles(latencies),
                                               "device_latency": _percentiles(latencies)}),
        "memory_used": dict(group, neuron_runtime_used_bytes={
            "host": 0, "neuron_device": device,
            "usage_breakdown": {"host": {"application_memory": 0, "constants": 0, "dma_buffers": 0, "tensors": 0},
                                "neuroncore_memory_usage": nc_mem}}, loaded_models=loaded),
    }


def instance_type() -> str:
    return os.environ.get("NEURON_EMU_INSTANCE_TYPE") or "inf2.xlarge"


def document(runtime_data: List[dict]) -> dict:
    """The full neuron-monitor document around per-process entries."""
    inst = INSTANCES[instance_type()]
    gen = inst.chip.core.generation
    return {
        "neuron_runtime_data": runtime_data,
        "system_data": {"neuron_hw_counters": {"period": 0.0, "error": "", "neuron_devices": [
            {"neuron_device_index": d, "mem_ecc_corrected": 0, "mem_ecc_uncorrected": 0, "sram_ecc_uncorrected": 0,
             "sram_ecc_corrected": 0} for d in range(inst.chips)]}},
        "instance_info": {"instance_name": "", "instance_id": "emulated", "instance_type": inst.name,
                          "instance_availability_zone": "", "instance_availability_zone_id": "", "instance_region": "",
                          "ami_id": "", "subnet_id": "", "error": ""},
        "neuron_hardware_info": {"neuron_device_type": "inferentia2" if gen == 2 else "inferentia",
                                 "neuron_device_version": "v3" if gen == 2 else "v1",
                                 "neuroncore_version": f"v{gen}", "neuron_device_count": inst.chips,
                                 "neuron_device_memory_size": inst.chip.memory_bytes,
                                 "neuroncore_per_device_count": inst.chip.cores, "logical_neuroncore_config": 1,
                                 "error": ""},
    }


def process_entry(report: dict, pid: Optional[int] = None, tag: Optional[str] = None) -> dict:
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "address": "", "neuron_runtime_tag": tag or os.environ.get("NEURON_PROCESS_TAG", str(pid)),
            "error": "", "report": report}


def publish(path_dir: Optional[str] = None, period_s: float = 1.0) -> str:
    """Write this process's entry atomically to <dir>/<pid>.json; returns the path."""
    d = path_dir or monitor_dir()
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{os.getpid()}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(process_entry(runtime_report(period_s)), f)
    os.replace(tmp, path)
    return path


class Publisher:
    """A daemon thread publishing this process's report every period until stop() (which removes the file)."""

    def __init__(self, period_s: float = 1.0, path_dir: Optional[str] = None):
        self.period_s, self.dir = period_s, path_dir or monitor_dir()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="neuron-emu-monitor", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(self.period_s):
            publish(self.dir, self.period_s)

    def stop(self):
        self._stop.set()
        self._thread.join()
        try:
            os.remove(os.path.join(self.dir, f"{os.getpid()}.json"))
        except FileNotFoundError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def collect(path_dir: Optional[str] = None) -> dict:
    """The neuron-monitor document of every live process that publishes to the monitor directory."""
    d = path_dir or monitor_dir()
    entries = []
    if os.path.isdir(d):
        for name in sorted(os.listdir(d)):
            if not name.endswith(".json"):
                continue
            try:
                pid = int(name[:-5])
            except ValueError:
                continue
            if not _alive(pid):
                continue
            try:
                with open(os.path.join(d, name)) as f:
                    entries.append(json.load(f))
            except (OSError, ValueError):
                continue  # being replaced
    return document(entries)
