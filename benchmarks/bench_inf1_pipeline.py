"""--neuroncore-pipeline-cores N as a pipeline: the wall clock of M requests (an MLP of 8 Linear+GELU layers, each
stage's program run by the emulator with the GIL released) through

  1 core, one caller                (baseline)
  N-stage pipeline, one caller      (stages one after another: no overlap possible)
  N-stage pipeline, N caller threads (pipeline.run_requests: stage k of request i+1 beside stage k+1 of request i)

measured interleaved in rounds, printed as ratios to the baseline, with the cost model's per-stage latency and
steady-state throughput (pipeline_report). The emulator's own speed-up is bounded by the host's cores (the
modelled throughput is what the chip would do).

    PYTHONPATH=. python benchmarks/bench_inf1_pipeline.py [N] [M] [width]"""
import os
import sys
import time
import warnings

import torch

import torch_neuron_emu
from torch_neuron_emu.pipeline import run_requests


def main(n=4, m=32, width=512, rounds=3):
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.GELU())
                                  for _ in range(8)]).eval()
    x = torch.randn(16, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = torch_neuron_emu.trace(model, x)
        pipe = torch_neuron_emu.trace(model, x, compiler_args=["--neuroncore-pipeline-cores", str(n)])
    reqs = [torch.randn(16, width) for _ in range(m)]
    want = [one(r) for r in reqs]
    assert all(torch.equal(g, w) for g, w in zip(run_requests(pipe, reqs), want))  # identical to 1 core
    runs = {"1 core, 1 caller": lambda: [one(r) for r in reqs],
            f"{n}-stage pipeline, 1 caller": lambda: [pipe(r) for r in reqs],
            f"{n}-stage pipeline, {n} callers": lambda: run_requests(pipe, reqs)}
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, f in runs.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    base = min(times["1 core, 1 caller"])
    print(f"{m} requests of batch 16, width {width}; load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} host CPUs; best of {rounds} interleaved rounds")
    for k, ts in times.items():
        print(f"  {k:28s} {min(ts) * 1e3:8.1f} ms  = {min(ts) / base:5.2f}x the 1-core wall clock")
    rep1, repn = torch_neuron_emu.pipeline_report(one, batch=16), torch_neuron_emu.pipeline_report(pipe, batch=16)
    stages = ", ".join(f"{s['latency_s'] * 1e6:.1f}" for s in repn["stages"])
    print(f"  modelled: 1 core {rep1['latency_s'] * 1e6:.1f} us/call; stages [{stages}] us, pipeline latency "
          f"{repn['latency_s'] * 1e6:.1f} us, steady-state throughput {repn['throughput_per_s']:.0f}/s vs "
          f"{rep1['throughput_per_s']:.0f}/s on 1 core ({repn['throughput_per_s'] / rep1['throughput_per_s']:.2f}x)")


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:]])
