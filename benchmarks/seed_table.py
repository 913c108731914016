"""Modelled latency of the seed's Inf2 rows (BERT-large s128, ELECTRA-large s256, batch 1/10, --auto-cast matmult)
and the device time of a 4096x8192x8192 matmul (bf16 on TensorE) against its formula ideal (5.99 ms).

The modelled timeline is computed when a program is loaded, so this loads the compiled artifact without executing
it (an execution only adds host time). Usage: python benchmarks/seed_table.py [matmul bert1 bert10 electra1 electra10]"""
import sys
import time

import torch

from neuron_emu import zoo
from neuron_emu.compiler import compile_graph
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.runtime.model import LoadedModel

SEED_INF2_MS = {("electra", 1): 8.31, ("electra", 10): 72.9, ("bert", 1): 3.1, ("bert", 10): 23.6}


def modelled(model, inputs, args=("--auto-cast", "matmult")):
    graph = capture(model, inputs)[0]
    compiled = compile_graph(graph, parse_compiler_args(list(args)), generation=2)
    m = LoadedModel(compiled.blob)
    st = m.program.last_stats()
    tl = m.program.timeline()
    return st, tl


def row(name, batch):
    model, inputs = (zoo.bert("large", seq=128, batch=batch) if name == "bert"
                     else zoo.electra_large_discriminator(seq=256, batch=batch))
    t0 = time.time()
    st, tl = modelled(model.eval(), inputs)
    ms = st["latency_ns"] * 1e-6
    seed = SEED_INF2_MS[(name, batch)]
    busy = {k: round(v["busy_ns"] * 1e-6, 2) for k, v in st["engines"].items()}
    mem = {k: round(v / 2**20, 1) if "bytes" in k else round(v * 1e-6, 3) for k, v in tl.get("memory", {}).items()}
    print(f"{name}-large b{batch}: modelled {ms:.2f} ms, seed {seed} ms, error {ms / seed - 1:+.0%}  busy ms {busy} "
          f"memory {mem} ({time.time() - t0:.0f} s)", flush=True)


def matmul():
    class MM(torch.nn.Module):
        def forward(self, a, b):
            return a @ b
    a, b = torch.randn(4096, 8192), torch.randn(8192, 8192)
    st, tl = modelled(MM(), (a, b))
    mem = tl.get("memory", {})
    device_ms = (mem["device_ns"] if "device_ns" in mem else st["latency_ns"]) * 1e-6
    ideal = 2 * 4096 * 8192 * 8192 / (128 * 128 * 2 * 2.8e9) * 1e3
    print(f"matmul 4096x8192x8192 (bf16 on TensorE): device {device_ms:.2f} ms, ideal {ideal:.2f} ms, "
          f"error {device_ms / ideal - 1:+.1%}; TensorE busy {st['engines']['TensorE']['busy_ns'] * 1e-6:.2f} ms",
          flush=True)


if __name__ == "__main__":
    for w in sys.argv[1:] or ["matmul", "bert1", "bert10", "electra1", "electra10"]:
        matmul() if w == "matmul" else row(w.rstrip("0123456789"), int(w.lstrip("abcdefghijklmnopqrstuvwxyz")))
