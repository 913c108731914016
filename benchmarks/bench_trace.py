"""Trace+compile wall time, run time vs PyTorch eager (same inputs, same process), and peak RSS of a
loaded traced model vs eager (fresh processes). Prints ratios measured in this run.

    python benchmarks/bench_trace.py [--models bert-base,resnet50] [--rss]

Targets (issue #3): trace+compile BERT-base <= 3 s, BERT-large <= 8 s; run <= 1.5x eager (fp32),
<= 1.0x eager with --auto-cast matmult; peak RSS <= 1.3x eager for BERT-large."""
import argparse
import statistics
import subprocess
import sys
import time

import torch

import torch_neuronx_emu
from neuron_emu import zoo

MODELS = {"bert-base": lambda: zoo.bert("base", seq=128), "bert-large": lambda: zoo.bert("large", seq=128),
          "resnet50": lambda: zoo.resnet50()}


def timeit(fn, n=5):
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench(name):
    model, inputs = MODELS[name]()
    with torch.no_grad():
        eager = timeit(lambda: model(*inputs))
    for args in ("--auto-cast none", "--auto-cast matmult"):
        t = time.perf_counter()
        traced = torch_neuronx_emu.trace(model, inputs, compiler_args=args)
        compile_s = time.perf_counter() - t
        run = timeit(lambda: traced(*inputs))
        print(f"{name:10s} {args:20s} trace+compile {compile_s:6.2f} s | eager {eager * 1e3:8.1f} ms | "
              f"emulated {run * 1e3:8.1f} ms | ratio {run / eager:5.2f}x | "
              f"modelled Inf2 latency {torch_neuronx_emu.last_call().latency_s * 1e3:.3f} ms", flush=True)


_RSS = """
import resource, sys, torch
from neuron_emu import zoo
model, inputs = zoo.bert("large", seq=128)
if sys.argv[1] == "trace":
    import torch_neuronx_emu
    torch.jit.save(torch_neuronx_emu.trace(model, inputs), sys.argv[2])
elif sys.argv[1] == "eager":
    with torch.no_grad(): model(*inputs)
else:
    import torch_neuronx_emu
    del model
    m = torch.jit.load(sys.argv[2]); m(*inputs)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def rss():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/bert_large.pt"
        subprocess.run([sys.executable, "-c", _RSS, "trace", path], check=True, capture_output=True)
        eager = float(subprocess.run([sys.executable, "-c", _RSS, "eager", path], check=True,
                                     capture_output=True, text=True).stdout.split()[-1])
        loaded = float(subprocess.run([sys.executable, "-c", _RSS, "load", path], check=True,
                                      capture_output=True, text=True).stdout.split()[-1])
    print(f"BERT-large peak RSS: eager {eager:.0f} MiB, loaded traced model {loaded:.0f} MiB, ratio {loaded / eager:.2f}x")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="bert-base,resnet50")
    p.add_argument("--rss", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(2)
    for m in a.models.split(","):
        bench(m)
    if a.rss:
        rss()
