"""NeuronCore Pipeline (`--neuroncore-pipeline-cores N`, docs/reference/neuron-api.md 1.9): each compiled subgraph
is cut into N consecutive stages balanced by weight bytes (the point of a pipeline on Inf1 is that each core's
2 GB slice holds only its stage's weights), compiled separately and stamped `pipeline_stage` i, which the runtime
places on visible NeuronCore i (runtime/placement.py), so the stages really run on N emulated cores.

Execution: a core runs one stage at a time (NeuronCore.stage_lock, held by runtime/model.py while a stage runs),
and the program runs with the GIL released, so calls from several threads flow through the cores as a pipeline:
stage k of call i+1 runs while stage k+1 of call i does. `run_requests` feeds a list of requests that way (as the
real NeuronCore Pipeline tutorial feeds its model from a thread pool). Outputs do not depend on the overlap.

Cost (`pipeline_report`): each stage's modelled latency (its own program on its own core, activations leaving and
entering through the stage's I/O DMA); pipeline latency = their sum (one input flows through every stage);
steady-state throughput = batch / the slowest stage (every stage busy on a different input)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence

import torch

from neuron_emu.compiler import artifact
from neuron_emu.compiler.ir import Node


# never cut in front of these: the compiler folds them into their producer (compiler/fold_batchnorm.py), so a cut
# there would change the program's rounding and the pipeline would no longer equal one core
_FUSED_INTO_PRODUCER = {"aten::native_batch_norm", "aten::_native_batch_norm_legit_no_training"}


def stage_cuts(nodes: List[Node], n: int) -> List[List[Node]]:
    """n consecutive non-empty parts of `nodes` with about equal constant bytes (+1 per node, so weightless runs
    still spread), cut only where the compiler fuses nothing across the cut."""
    if n > len(nodes):
        raise ValueError(f"--neuroncore-pipeline-cores {n}: the subgraph has only {len(nodes)} operators to split")
    w = [1 + sum(a.const.numel() * a.const.element_size() for a in nd.value_args() if a.kind == "const")
         for nd in nodes]
    total, acc, parts, cur = sum(w), 0, [], []
    for i, (nd, wi) in enumerate(zip(nodes, w)):
        cur.append(nd)
        acc += wi
        left_nodes, left_parts = len(nodes) - i - 1, n - len(parts) - 1
        nxt = nodes[i + 1].name if i + 1 < len(nodes) else ""
        if left_parts and nxt not in _FUSED_INTO_PRODUCER and (acc >= total * (len(parts) + 1) / n
                                                                or left_nodes == left_parts):
            parts.append(cur)
            cur = []
    parts.append(cur)
    return parts


def stamp(blob: torch.Tensor, stage: int, cores: int, model: str) -> torch.Tensor:
    """The artifact with its pipeline stage, core count and model id (shared by its stages) in the header."""
    return artifact.with_header(blob, pipeline_stage=stage, pipeline_cores=cores, pipeline_model=model)


def pipeline_report(module, batch: int = 1) -> dict:
    """Per-stage modelled latency, pipeline latency and steady-state throughput of a traced pipeline model."""
    from neuron_emu.runtime.placement import model_for
    from torch_neuronx_emu.experimental.placement import artifacts

    stages = []
    for blob in artifacts(module):
        header = artifact.deserialize(blob)[0]
        m = model_for(blob)
        t = m.timeline()
        stages.append({"stage": header.get("pipeline_stage", 0), "core": m.core.index,
                       "latency_s": float(t["end_ns"].max(initial=0.0)) * 1e-9})
    slowest = max(s["latency_s"] for s in stages)
    return {"stages": stages, "latency_s": sum(s["latency_s"] for s in stages),
            "throughput_per_s": batch / slowest if slowest else float("inf")}


def stage_count(module) -> int:
    """The number of NeuronCore-Pipeline cores a traced module was compiled for (1 if none)."""
    from torch_neuronx_emu.experimental.placement import artifacts

    return max(int(artifact.deserialize(b)[0].get("pipeline_cores", 1)) for b in artifacts(module))


def run_requests(module, requests: Sequence, workers: Optional[int] = None) -> list:
    """Run `module(*request)` for every request (a tuple of inputs, or one tensor) from `workers` threads (default:
    one per pipeline stage, so every core has work), returning the outputs in request order."""
    calls = [r if isinstance(r, tuple) else (r,) for r in requests]
    with ThreadPoolExecutor(max_workers=workers or stage_count(module)) as pool:
        return list(pool.map(lambda args: module(*args), calls))
