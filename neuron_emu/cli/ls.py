"""`neuron-emu ls`: neuron-ls's table of the emulated instance's Neuron devices and cores (neuron-api.md 5.3)."""
from __future__ import annotations

import json


from neuron_emu.hardware import INSTANCES
from neuron_emu.monitoring import instance_type

COLUMNS = ("NEURON DEVICE", "NEURON CORES", "NEURON CORE IDS", "NEURON MEMORY", "CONNECTED DEVICES", "PCI BDF",
           "CPU AFFINITY", "NUMA NODE")


def devices(name: str) -> list:
    inst = INSTANCES[name]
    per = inst.chip.cores
    vcpus = max(inst.vcpus // max(inst.chips, 1), 1)
    out = []
    for d in range(inst.chips):
        ring = sorted({(d - 1) % inst.chips, (d + 1) % inst.chips} - {d}) if inst.chips > 1 else []
        out.append({"neuron_device": d, "bdf": f"{d:02x}:1e.0", "connected_to": ring or None, "nc_count": per,
                    "neuroncore_ids": list(range(d * per, (d + 1) * per)), "memory_size": inst.chip.memory_bytes,
                    "cpu_affinity": f"{d * vcpus}-{(d + 1) * vcpus - 1}", "numa_node": 0, "neuron_processes": []})
    return out


def _gb(n: int) -> str:
    return f"{n // 1024 ** 3} GB"


def table(name: str) -> str:
    rows = [[str(d["neuron_device"]), str(d["nc_count"]), f"{d['neuroncore_ids'][0]}-{d['neuroncore_ids'][-1]}",
             _gb(d["memory_size"]), ", ".join(map(str, d["connected_to"] or [])), d["bdf"], d["cpu_affinity"],
             str(d["numa_node"])] for d in devices(name)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    lines = [f"instance-type: {name}", "instance-id: emulated (neuron-emu)", "logical-neuroncore-config: 1",
             sep, fmt(COLUMNS), sep] + [fmt(r) for r in rows] + [sep]
    return "\n".join(lines)


def main(args) -> int:
    name = args.instance_type or instance_type()
    if name not in INSTANCES:
        raise SystemExit(f"neuron-emu ls: unknown instance type {name!r}; valid: {', '.join(sorted(INSTANCES))}")
    print(json.dumps(devices(name), indent=4) if args.json_output else table(name))
    return 0



