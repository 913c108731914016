"""`profile(model, *inputs, instance_type, num_cores)` -> Report, shared by torch_neuronx_emu and torch_neuron_emu.

The model is a traced module (or a plain one, traced on the fly with the package's `trace`). Its artifacts are
loaded onto a NeuronCore of `instance_type` outside the process's runtime (profiling places nothing and counts
nothing there) and the Report is built from the program's modelled timeline, computed at load: nothing is executed.
A module with several compiled subgraphs (Inf1 partitions) is reported as their sum; CPU parts are not modelled."""
from __future__ import annotations

from typing import Callable, List, Optional

import torch

from neuron_emu.compiler import artifact
from neuron_emu.hardware import CORES, INSTANCES
from neuron_emu.isa import ENGINE_NAMES, refresh_schema, _schemas
from neuron_emu.profile_report import EngineReport, Report


def check_instance(instance_type: str, num_cores: int, generation: int):
    """The Instance, or a ValueError listing the valid choices."""
    valid = sorted(n for n, i in INSTANCES.items() if i.chip.core.generation == generation)
    inst = INSTANCES.get(instance_type)
    if inst is None or inst.chip.core.generation != generation:
        what = (f"unknown instance type {instance_type!r}" if inst is None else
                f"instance type {instance_type!r} has {inst.chip.core.name} cores, not {CORES[generation].name}")
        raise ValueError(f"{what}; valid instance types for {CORES[generation].name}: {', '.join(valid)}")
    if isinstance(num_cores, bool) or not isinstance(num_cores, int) or not 1 <= num_cores <= inst.neuron_cores:
        raise ValueError(f"num_cores={num_cores!r}: {instance_type} has {inst.neuron_cores} NeuronCore(s); "
                         f"choose 1..{inst.neuron_cores}")
    return inst


def artifacts_of(module) -> List[torch.Tensor]:
    """The compiled artifacts (uint8 buffers starting with the artifact magic) a traced module holds."""
    found = []
    for _, buf in module.named_buffers():
        if buf.dtype == torch.uint8 and buf.dim() == 1 and buf.numel() >= len(artifact.MAGIC) and \
                bytes(buf[:len(artifact.MAGIC)].tolist()) == artifact.MAGIC:
            found.append(buf)
    return found


def _batch(inputs) -> int:
    for x in inputs:
        if isinstance(x, torch.Tensor):
            return int(x.shape[0]) if x.dim() > 0 else 1
    return 1


def _op_names() -> dict:
    refresh_schema()
    return {s.code: s.name for s in _schemas.values()}


def profile(model, inputs, *, instance_type: str, num_cores: int, generation: int, tracer: Callable,
            name: Optional[str] = None) -> Report:
    from neuron_emu.runtime.core import NeuronCore
    from neuron_emu.runtime.model import LoadedModel

    inst = check_instance(instance_type, num_cores, generation)
    if not inputs:
        raise ValueError("profile needs the example inputs the model is called with: profile(model, *inputs)")
    model_name = name or type(getattr(model, "original_name", None) or model).__name__
    if isinstance(model, torch.jit.ScriptModule):
        model_name = name or getattr(model, "original_name", "ScriptModule")
    blobs = artifacts_of(model) if isinstance(model, torch.nn.Module) else []
    if not blobs:
        if isinstance(model, torch.jit.ScriptModule):
            raise ValueError(f"{model_name} is a TorchScript module with no Neuron-compiled graph: trace it with "
                             f"torch_neuronx.trace / torch_neuron.trace, or pass the original torch.nn.Module")
        try:
            traced = tracer(model, tuple(inputs))
        except Exception as e:
            raise type(e)(f"profile: tracing {model_name} for {CORES[generation].name} failed: {e}. Neuron models "
                          f"have fixed shapes: pass example inputs of the shape you will serve") from e
        blobs = artifacts_of(traced)
        model = traced
    # a whole-model trace's program takes the call's inputs; a partitioned one's subgraphs take what the CPU ops
    # between them make (e.g. an Inf1 BERT's embeddings run on CPU), so only the former is checked against them
    whole = len(blobs) == 1 and any(b is blobs[0] for n, b in model.named_buffers() if n == "neff")
    core = NeuronCore(0, inst.chip.core)
    names = _op_names()
    models = []
    for blob in blobs:
        gen = int(artifact.deserialize(blob)[0].get("core_generation", 2))
        if gen != generation:
            raise ValueError(f"{model_name} was compiled for {CORES[gen].name}; profile it with the "
                             f"{'torch_neuron_emu' if gen == 1 else 'torch_neuronx_emu'} profile (instance types "
                             f"{', '.join(sorted(n for n, i in INSTANCES.items() if i.chip.core.generation == gen))})")
        m = LoadedModel(blob, "profile", core)
        if whole:
            m.check_inputs([x for x in inputs if isinstance(x, torch.Tensor)])
        models.append(m)
    return build_report(models, names, model_name, inst, num_cores, _batch(inputs))


def build_report(models, op_names: dict, model_name: str, inst, num_cores: int, batch: int) -> Report:
    device_ns = host_ns = 0.0
    eng = {n: [0.0, 0, 0, 0] for n in ENGINE_NAMES}  # busy_ns, instructions, flops, bytes
    hbm = spill = host_bytes = 0
    peak = 0.0
    tl_all = []
    offset = 0.0
    for m in models:
        st = m.program.last_stats()
        tl = m.program.timeline()
        mem = tl["memory"]
        for n in ENGINE_NAMES:
            e = st["engines"][n]
            eng[n][0] += e["busy_ns"]
            eng[n][1] += int(e["instructions"])
            eng[n][2] += int(e["flops"])
            eng[n][3] += int(e["bytes"])
        device_ns += mem["device_ns"]
        host_ns += mem["host_in_ns"] + mem["host_out_ns"]
        hbm += int(mem["hbm_bytes"])
        spill += int(mem["spill_bytes"])
        host_bytes += int(mem["host_bytes"])
        peak = max(peak, mem["sbuf_peak_bytes"])
        tl["op_name"] = [op_names.get(int(c), f"op{int(c)}") for c in tl["op"]]
        tl["source_op"] = [m.source_ops[s] if 0 <= s < len(m.source_ops) else "" for s in tl["src"]]
        where = m.header.get("source_where", [])
        tl["source_where"] = [where[s] if isinstance(where, list) and 0 <= s < len(where) and
                              isinstance(where[s], str) else "" for s in tl["src"]]
        tl["offset_ns"] = offset
        offset += mem["host_in_ns"] + mem["device_ns"] + mem["host_out_ns"]
        tl_all.append(tl)
    latency_ns = device_ns + host_ns
    lat_s = latency_ns * 1e-9
    throughput = num_cores * batch / lat_s if lat_s > 0 else float("inf")
    engines = {n: EngineReport(v[0] * 1e-6, min(1.0, v[0] / device_ns) if device_ns else 0.0, v[1], v[2], v[3])
               for n, v in eng.items()}
    return Report(model=model_name, instance_type=inst.name, core=inst.chip.core.name, num_cores=num_cores,
                  batch=batch, latency_ms=latency_ns * 1e-6, device_ms=device_ns * 1e-6, host_transfer_ms=host_ns * 1e-6,
                  throughput_per_s=throughput, cost_per_inference_usd=inst.usd_per_hour / 3600.0 / throughput,
                  usd_per_hour=inst.usd_per_hour, engines=engines,
                  bottleneck=max(engines, key=lambda n: engines[n].busy_ms),
                  flops=sum(e.flops for e in engines.values()), hbm_bytes=hbm, spill_bytes=spill,
                  host_bytes=host_bytes, sbuf_peak_bytes=peak,
                  instructions=int(sum(len(t["op"]) for t in tl_all)), timeline={"programs": tl_all})


__all__ = ["profile", "build_report", "check_instance", "artifacts_of"]
