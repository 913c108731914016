"""`neuron-emu run script.py [args]`: run an unmodified user script on the emulator and summarise the engines."""
from __future__ import annotations

import json
import os
import runpy
import sys

from neuron_emu.cli import shims


def engine_summary() -> dict:
    """Per-core executions and per-engine modelled busy time of every runtime this process used."""
    from neuron_emu.runtime.placement import _all_runtimes

    cores = []
    for rt in list(_all_runtimes):
        for core in rt.cores:
            c = core.counters()
            if c.executions == 0:
                continue
            cores.append({"instance_type": rt.instance.name, "core": core.index, "generation": core.spec.name,
                          "executions": c.executions, "modelled_s": c.total_latency_s, "host_s": c.host_s,
                          "engines": {n: {"busy_s": e.busy_s, "utilization": e.utilization,
                                          "instructions": e.instructions, "flops": e.flops, "bytes": e.bytes}
                                      for n, e in c.engines.items()}})
    return {"cores": cores}


def format_summary(summary: dict) -> str:
    if not summary["cores"]:
        return "neuron-emu: no Neuron model was executed"
    lines = ["neuron-emu: per-engine summary (modelled device time)"]
    for c in summary["cores"]:
        lines.append(f"  {c['instance_type']} NeuronCore {c['core']} ({c['generation']}): {c['executions']} "
                     f"execution(s), {c['modelled_s'] * 1e3:.3f} ms modelled, {c['host_s'] * 1e3:.1f} ms emulator time")
        lines.append(f"    {'engine':8s} {'busy ms':>10s} {'util':>6s} {'instr':>10s} {'GFLOP':>9s} {'MB':>9s}")
        for n, e in c["engines"].items():
            lines.append(f"    {n:8s} {e['busy_s'] * 1e3:10.3f} {e['utilization'] * 100:5.1f}% {e['instructions']:10d} "
                         f"{e['flops'] / 1e9:9.3f} {e['bytes'] / 1e6:9.2f}")
    return "\n".join(lines)


def last_report():
    """A Report of the calling thread's last executed model (None if none ran)."""
    from neuron_emu.profiler import _op_names, build_report
    from neuron_emu.runtime import last_call
    from neuron_emu.runtime.placement import runtime_for

    s = last_call()
    if s is None:
        return None
    m = s.model
    inst = runtime_for(m.generation).instance
    batch = m.inputs[0]["shape"][0] if m.inputs and m.inputs[0]["shape"] else 1
    return build_report([m], _op_names(), "last executed model", inst, 1, batch)


def multi_process_launch() -> str | None:
    """Why this process is one of several (torchrun, a launcher's environment), or None. The emulator is one
    process: run as rank 0 of a larger world it would train alone on its shard, or wait forever for its peers."""
    for var in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 1:
            return (f"neuron-emu run: {var}={v} (a multi-process launch, e.g. torchrun --nproc_per_node={v}) is not "
                    f"emulated: neuron-emu runs one process (world size 1). Run the script once without the "
                    f"launcher; torch_xla's collectives then act on a world of one")
    return None


def main(args) -> int:
    refused = multi_process_launch()
    if refused:
        print(refused, file=sys.stderr)
        return 2
    shims.install()
    from neuron_emu.monitoring import Publisher

    publisher = Publisher(args.monitor_period) if args.monitor else None
    sys.argv = [args.script] + list(args.args)
    code = 0
    # the script's globals (or the traceback whose frames hold them) stay alive until the report is written: the
    # runtime releases a model whose last reference goes, and the report describes the last model executed
    keep = None
    try:
        keep = runpy.run_path(args.script, run_name="__main__")
    except SystemExit as e:
        keep = e.__traceback__
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        if publisher:
            publisher.stop()
        summary = engine_summary()
        print(format_summary(summary), file=sys.stderr)
        rep = last_report() if (args.report or args.perfetto) else None
        if args.report:
            with open(args.report, "w") as f:
                json.dump({"summary": summary, "last_model": rep.to_dict() if rep else None}, f, indent=2)
        if args.perfetto:
            if rep is None:
                print("neuron-emu: --perfetto: no Neuron model was executed, no timeline written", file=sys.stderr)
            else:
                rep.to_perfetto(args.perfetto)
        del keep
    return code
