"""Custom C++ operators: build time of the documented ReLU library (cold: empty cache, also without the
harness object; cached) and the emulated kernel's run time against the same loop compiled natively without
checks, for the element-accessor and the TCM versions; plus the modelled GpSimd time of the three versions.

    python benchmarks/bench_custom_op.py [--shape 256x1024] [--reps 50]

Targets (custom-op issue): build <= 5 s cold and <= 0.2 s cached (torch's cpp_extension takes 30-60 s);
emulated kernel within 3x of the native loop."""
import argparse
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SRC = os.path.join(ROOT, "tests", "custom_op_src")

NATIVE = r"""
#include <stddef.h>
// The documented ReLU loops on raw pointers: no bounds checks, no counters, no harness.
extern "C" void relu_accessor_native(const float* in, float* out, long rows, long cols) {
  for (long i = 0; i < rows; i++)
    for (long j = 0; j < cols; j++) out[i * cols + j] = in[i * cols + j] > 0.0 ? in[i * cols + j] : 0.0;
}
extern "C" void relu_tcm_native(const float* in, float* out, long n) {
  static float buf[1024];
  for (long i = 0; i < n; i += 1024) {
    long k = n - i > 1024 ? 1024 : n - i;
    for (long j = 0; j < k; j++) buf[j] = in[i + j];
    for (long j = 0; j < k; j++) buf[j] = buf[j] > 0.0 ? buf[j] : 0.0;
    for (long j = 0; j < k; j++) out[i + j] = buf[j];
  }
}
"""


def timed(fn, reps):
    """Median CPU time of this thread: on a shared, loaded host wall time mostly measures the scheduler."""
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.thread_time()
        fn()
        ts.append(time.thread_time() - t0)
    return statistics.median(ts)


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def build_times():
    """Wall time of each build, and the compilers' CPU time (on a loaded host wall time is mostly waiting)."""
    from neuron_emu.custom_op import build
    args = ("relu", [os.path.join(SRC, "relu.cpp")], [os.path.join(SRC, "shape.cpp")])
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NEURON_EMU_CUSTOM_OP_CACHE"] = cache
        t0, c0 = time.perf_counter(), child_cpu()
        build.build(*args)
        cold_all, cold_all_cpu = time.perf_counter() - t0, child_cpu() - c0
        for d in os.listdir(cache):  # drop the library, keep the harness object (built once per header version)
            if d.startswith("relu-"):
                subprocess.run(["rm", "-rf", os.path.join(cache, d)], check=True)
        t0, c0 = time.perf_counter(), child_cpu()
        build.build(*args)
        cold, cold_cpu = time.perf_counter() - t0, child_cpu() - c0
        t0 = time.perf_counter()
        b = build.build(*args)
        cached = time.perf_counter() - t0
        assert b["cached"]
    del os.environ["NEURON_EMU_CUSTOM_OP_CACHE"]
    return cold_all, cold_all_cpu, cold, cold_cpu, cached


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="256x1024")
    ap.add_argument("--reps", type=int, default=50)
    a = ap.parse_args()
    rows, cols = (int(s) for s in a.shape.split("x"))

    cold_all, cold_all_cpu, cold, cold_cpu, cached = build_times()
    print(f"build of the ReLU library: cold {cold_all:.2f} s wall / {cold_all_cpu:.2f} s compiler CPU (empty cache, "
          f"harness included), cold {cold:.2f} s wall / {cold_cpu:.2f} s CPU (harness objects cached), "
          f"cached {cached * 1000:.1f} ms")

    import torch
    from neuron_emu import _C
    from neuron_emu.hardware import core_spec
    from neuron_emu.custom_op.torch_ops import CURRENT
    from torch_neuronx_emu.xla_impl import custom_op

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "native.cpp"), "w") as fh:
            fh.write(NATIVE)
        so = os.path.join(d, "libnative.so")
        subprocess.run(["g++", "-O2", "-shared", "-fPIC", os.path.join(d, "native.cpp"), "-o", so], check=True)
        native = ctypes.CDLL(so)
        x = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
        out = np.empty_like(x)
        p_in, p_out = x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p)
        t_native_acc = timed(lambda: native.relu_accessor_native(p_in, p_out, ctypes.c_long(rows), ctypes.c_long(cols)),
                             a.reps)
        t_native_tcm = timed(lambda: native.relu_tcm_native(p_in, p_out, ctypes.c_long(rows * cols)), a.reps)

        spec = core_spec(2)
        results = {}
        for version, srcs, shape, mc in (("accessor", "relu.cpp", "shape.cpp", False),
                                         ("tcm", "relu_tcm.cpp", "shape.cpp", False),
                                         ("multicore", "relu_multicore.cpp", "shape_fwd.cpp", True)):
            custom_op.load(f"bench_{version}", [os.path.join(SRC, srcs)], [os.path.join(SRC, shape)], multicore=mc)
            op = CURRENT[("my_ops", "relu_forward")]
            row = op.instr([(rows, cols)], (rows, cols), [None], [0, 1]).encode()
            emu_out = np.empty_like(x)
            cost = _C.run_instr(row, [x, emu_out], spec)
            assert np.array_equal(emu_out, np.maximum(x, 0))
            t = timed(lambda: _C.run_instr(row, [x, emu_out], spec), a.reps)
            results[version] = (t, cost["ns"])

    print(f"\nReLU forward on {rows}x{cols} fp32 (thread CPU time, median of {a.reps}; host {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}):")
    print(f"{'version':<10} {'emulated (ms)':>14} {'native (ms)':>12} {'ratio':>6} {'modelled GpSimd (us)':>21}")
    for version, native_t in (("accessor", t_native_acc), ("tcm", t_native_tcm), ("multicore", t_native_tcm)):
        t, ns = results[version]
        print(f"{version:<10} {t * 1e3:>14.3f} {native_t * 1e3:>12.3f} {t / native_t:>6.2f} {ns / 1e3:>21.1f}")
    acc, tcm, mc = (results[v][1] for v in ("accessor", "tcm", "multicore"))
    print(f"\nmodelled speed-ups: accessor -> TCM {acc / tcm:.1f}x, TCM -> multicore {tcm / mc:.2f}x "
          f"(published trn1 MLP iterations: 27.2x, 1.22x)")


if __name__ == "__main__":
    main()
