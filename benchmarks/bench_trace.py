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


# Peak RSS of a deployment process: eager loads the weights into a model built on the meta device (no
# random init), the traced model is torch.jit.load-ed; neither builds the model from scratch.
_RSS = """
import resource, sys, torch, transformers
from neuron_emu import zoo
d = sys.argv[2]
if sys.argv[1] == "trace":
    import torch_neuronx_emu
    model, inputs = zoo.bert("large", seq=128)
    model.config.to_json_file(d + "/config.json")
    torch.save(model.state_dict(), d + "/weights.pt")
    torch.save(inputs, d + "/inputs.pt")
    torch.jit.save(torch_neuronx_emu.trace(model, inputs), d + "/traced.pt")
else:
    inputs = torch.load(d + "/inputs.pt")
    if sys.argv[1] == "eager":
        with torch.device("meta"):
            model = transformers.BertModel(transformers.BertConfig.from_json_file(d + "/config.json")).eval()
        model.load_state_dict(torch.load(d + "/weights.pt", mmap=True), assign=True)
        with torch.no_grad():
            model(*inputs)
    else:
        import torch_neuronx_emu
        torch.jit.load(d + "/traced.pt")(*inputs)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def rss():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-c", _RSS, "trace", d], check=True, capture_output=True)
        peak = {mode: float(subprocess.run([sys.executable, "-c", _RSS, mode, d], check=True, capture_output=True,
                                           text=True).stdout.split()[-1]) for mode in ("eager", "load")}
    print(f"BERT-large peak RSS: eager {peak['eager']:.0f} MiB, loaded traced model {peak['load']:.0f} MiB, "
          f"ratio {peak['load'] / peak['eager']:.2f}x")


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
