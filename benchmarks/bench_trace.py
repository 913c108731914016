"""Trace+compile wall time, run time vs PyTorch eager in the same precision (same inputs, same process, the four
cases interleaved in rounds, best of each), and peak RSS of a loaded traced model vs eager (fresh processes).
`--auto-cast none` is compared with eager fp32, `--auto-cast matmult` with eager under torch.autocast(bf16).
Prints the CPU features, SIMD path and native GEMM policy it ran with, and ratios measured in this run.

    python benchmarks/bench_trace.py [--models bert-base,resnet50] [--rounds 3] [--profile] [--rss]
    NEMU_NUM_THREADS=1 python benchmarks/bench_trace.py --threads 1 --clock cpu   # on a loaded machine

--profile adds where the emulator's host time goes per op kind (the per-instruction host times of the last call).
Targets (issue #13): matmult <= 1.2x eager autocast(bf16); none <= 1.0x eager fp32. (#3: trace+compile
BERT-base <= 3 s, BERT-large <= 8 s; peak RSS <= 1.3x eager for BERT-large.)"""
import argparse
import collections
import os
import platform
import statistics
import sys
import time

import torch

import torch_neuronx_emu
from neuron_emu import _C, zoo
from neuron_emu.isa import Op

MODELS = {"bert-base": lambda: zoo.bert("base", seq=128), "bert-large": lambda: zoo.bert("large", seq=128),
          "resnet50": lambda: zoo.resnet50()}


CLOCK = time.perf_counter  # --clock cpu: time.process_time (one thread only: a loaded machine's waits excluded)


def best(fn, n):
    ts = []
    for _ in range(n):
        t = CLOCK()
        fn()
        ts.append(CLOCK() - t)
    return min(ts)


def profile(name, args):
    """Host time of the last call by op kind (the emulator's own wall time per instruction)."""
    t = torch_neuronx_emu.last_call().timeline()
    by_op = collections.Counter()
    for code, ns in zip(t["op"], t["host_ns"]):
        by_op[Op(int(code)).name] += float(ns)
    total = sum(by_op.values())
    parts = ", ".join(f"{k} {v / 1e6:.1f} ms ({100 * v / total:.0f}%)" for k, v in by_op.most_common(6))
    print(f"  profile {name} {args}: {total / 1e6:.1f} ms host: {parts}", flush=True)


def bench(name, rounds, runs, do_profile):
    model, inputs = MODELS[name]()
    traced = {}
    for args in ("--auto-cast none", "--auto-cast matmult"):
        t = time.perf_counter()
        traced[args] = torch_neuronx_emu.trace(model, inputs, compiler_args=args)
        print(f"{name:10s} {args:20s} trace+compile {time.perf_counter() - t:6.2f} s", flush=True)

    def eager_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(*inputs)
    cases = {"eager fp32": lambda: model(*inputs), "eager autocast bf16": eager_bf16,
             "emu none": lambda: traced["--auto-cast none"](*inputs),
             "emu matmult": lambda: traced["--auto-cast matmult"](*inputs)}
    res = {k: float("inf") for k in cases}
    with torch.no_grad():
        for fn in cases.values():  # warm-up
            fn()
        for _ in range(rounds):  # interleaved so drift and other load hit every case alike
            for k, fn in cases.items():
                res[k] = min(res[k], best(fn, runs))
    print(f"{name:10s} eager fp32 {res['eager fp32'] * 1e3:7.1f} ms | eager autocast(bf16) "
          f"{res['eager autocast bf16'] * 1e3:7.1f} ms | emu none {res['emu none'] * 1e3:7.1f} ms "
          f"({res['emu none'] / res['eager fp32']:.2f}x eager fp32, target <= 1.0) | emu matmult "
          f"{res['emu matmult'] * 1e3:7.1f} ms ({res['emu matmult'] / res['eager autocast bf16']:.2f}x eager bf16, "
          f"target <= 1.2; {res['emu matmult'] / res['eager fp32']:.2f}x eager fp32) | load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    if do_profile:
        for args, m in traced.items():
            m(*inputs)
            profile(name, args)


def rss():
    """BERT-large's peak RSS in fresh deployment processes (bench_memory.py, with trace's default compiler args)."""
    from bench_memory import peak_rss
    peak = peak_rss("large", "--auto-cast none")
    print(f"BERT-large peak RSS: eager {peak['eager']:.0f} MiB, loaded traced model {peak['load']:.0f} MiB, "
          f"ratio {peak['load'] / peak['eager']:.2f}x")


def machine():
    f = _C.cpu_features()
    feats = " ".join(k for k, v in f.items() if v is True) or "baseline"
    print(f"CPU: {platform.processor() or platform.machine()} ({f['arch']}), features: {feats}; SIMD path "
          f"{_C.simd_path()}; native GEMM: {_C.native_gemm_info()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, mkldnn bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="bert-base,resnet50")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=2, help="calls per case per round")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--rss", action="store_true")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (set NEMU_NUM_THREADS to match)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: process CPU time, for --threads 1 with NEMU_NUM_THREADS=1 on a loaded machine")
    a = p.parse_args()
    if a.clock == "cpu":
        if a.threads != 1 or os.environ.get("NEMU_NUM_THREADS") != "1":
            p.error("--clock cpu needs --threads 1 and NEMU_NUM_THREADS=1 (CPU time sums every thread's)")
        CLOCK = time.process_time
    torch.set_num_threads(a.threads)
    machine()
    for m in a.models.split(","):
        bench(m, a.rounds, a.runs, a.profile)
    if a.rss:
        rss()
