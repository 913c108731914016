"""MatMul throughput: our TensorE MatMul (kernel-level API) in bf16 and fp32 modes vs torch.mm fp32 / bf16.

All four run on the same 1024^3 tensors in one process; GFLOP/s = 2*M*N*K / wall time of one call.
Usage: python benchmarks/bench_matmul.py [--size 1024] [--runs 20] [--threads N]
Targets (issue #13): bf16 mode / torch bf16 >= 0.8 with AMX or AVX512-BF16; bf16 mode / torch fp32 >= 1.0 without
native bf16; fp32 mode / torch fp32 >= 0.9. Run with NEMU_NATIVE_GEMM=on/off to compare the native bf16 GEMM.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from neuron_emu.kernels.tensor_engine import matmul


def bench(fn, runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.size
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    a16, b16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
    out = torch.empty(n, n)
    flops = 2.0 * n * n * n

    cases = {
        "emu MatMul bf16": lambda: matmul(a, b, dtype="bf16", out=out),
        "emu MatMul fp32": lambda: matmul(a, b, dtype="fp32", out=out),
        "torch.mm fp32": lambda: torch.mm(a, b),
        "torch.mm bf16": lambda: torch.mm(a16, b16),
    }
    res = {}
    # interleave the cases in rounds so drift (thermal, other load) hits them alike
    rounds = 4
    per = max(1, args.runs // rounds)
    times = {k: [] for k in cases}
    for _ in range(rounds):
        for k, fn in cases.items():
            times[k] += bench(fn, per, warmup=2)
    from neuron_emu import _C
    feats = " ".join(k for k, v in _C.cpu_features().items() if v is True)
    print(f"MatMul {n}x{n}x{n}, {rounds * per} runs each, torch threads {torch.get_num_threads()}; CPU features: {feats}; "
          f"native GEMM (NEMU_NATIVE_GEMM): {_C.native_gemm_info()}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'case':18s} {'best GFLOP/s':>13s} {'median GFLOP/s':>15s}")
    for k, ts in times.items():
        best, med = flops / min(ts) / 1e9, flops / statistics.median(ts) / 1e9
        res[k] = (best, med)
        print(f"{k:18s} {best:13.1f} {med:15.1f}")
    print("ratios (best / median):")
    for num, den, target in [("emu MatMul bf16", "torch.mm fp32", ">= 1.0"), ("emu MatMul fp32", "torch.mm fp32", ">= 0.9"),
                             ("emu MatMul bf16", "torch.mm bf16", ">= 0.8 on AMX/AVX512-BF16")]:
        rb, rm = res[num][0] / res[den][0], res[num][1] / res[den][1]
        print(f"  {num} / {den}: {rb:.2f} / {rm:.2f}" + (f"  (target {target})" if target else ""))


if __name__ == "__main__":
    main()
