"""Memory soak: N calls of a small traced model (and of DataParallel over both cores), each with an input that
requires grad (the Python forward kernel) and a plain one (the native one), resident set size sampled along the way. A leak of even a few hundred bytes per call shows as MBs over 10,000 calls.

    python benchmarks/bench_soak.py [--calls 10000]

Prints RSS after a warm-up (first 500 calls: allocator pools, caches, thread pools settle) and at the end."""
import argparse
import os
import time

import torch

import torch_neuronx_emu
from neuron_emu import zoo

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


def soak(fn, inputs, calls: int, warmup: int = 500):
    """(RSS after warm-up, RSS at the end, max RSS seen after warm-up, seconds per call) in MB / s."""
    for _ in range(warmup):
        fn(*inputs)
    start = peak = rss_mb()
    t = time.perf_counter()
    for i in range(calls):
        fn(*inputs)
        if i % 500 == 0:
            peak = max(peak, rss_mb())
    dt = (time.perf_counter() - t) / calls
    end = rss_mb()
    return start, end, max(peak, end), dt


def models():
    model, inputs = zoo.mlp(in_features=64, hidden=(128,), out=16, batch=1)
    traced = torch_neuronx_emu.trace(model, inputs)
    dp = torch_neuronx_emu.DataParallel(torch_neuronx_emu.trace(model, inputs))
    dp.split_size = 1
    return {"traced": (traced, inputs), "dataparallel": (dp, (torch.cat([inputs[0]] * 4),))}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10_000)
    a = ap.parse_args()
    for name, (fn, inputs) in models().items():
        for grad in (True, False):   # the Python kernel (an input that requires grad), the native one
            s, e, p, dt = soak(fn, tuple(x.clone().requires_grad_(grad) for x in inputs), a.calls)
            label = f"{name} ({'python' if grad else 'native'} kernel)"
            print(f"{label:28s} {a.calls} calls: RSS {s:.1f} MB after warm-up -> {e:.1f} MB at the end (growth "
                  f"{e - s:+.2f} MB, peak {p:.1f} MB), {dt * 1e6:.0f} us/call", flush=True)
