"""Custom C++ operators: build time of the documented ReLU library (cold: empty cache, with the package's
prebuilt harness objects and without them; cached; against one plain g++ -shared in the same run) and the emulated kernel's run time against the same loop compiled natively without
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


def _wall(fn):
    t0, c0 = time.perf_counter(), child_cpu()
    fn()
    return time.perf_counter() - t0, child_cpu() - c0


def build_times(reps=3):
    """Cold (empty cache dir, the package's prebuilt harness objects), cold without them (the harness compiled
    too, the path without setup.py's prebuild) and cached builds of the ReLU library, interleaved with the same-run
    baseline: one `g++ -O2 -shared` of the native ReLU loops (the least any build that invokes the compiler costs).
    Medians of wall and compiler CPU time."""
    from neuron_emu.custom_op import build
    args = ("relu", [os.path.join(SRC, "relu.cpp")], [os.path.join(SRC, "shape.cpp")])
    prebuilt = build.PREBUILT_DIR
    have_prebuilt = any(f.startswith(f"harness-{build.harness_key(build.compiler())}-")
                        for f in (os.listdir(prebuilt) if os.path.isdir(prebuilt) else []))
    rows = {"baseline": [], "cold": [], "cold_no_prebuilt": [], "cached": []}
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "native.cpp")
        with open(src, "w") as fh:
            fh.write(NATIVE)
        for r in range(reps):
            rows["baseline"].append(_wall(lambda: subprocess.run(
                ["g++", "-O2", "-shared", "-fPIC", src, "-o", os.path.join(d, f"n{r}.so")], check=True)))
            for kind in ("cold", "cold_no_prebuilt"):
                cache = os.path.join(d, f"cache-{kind}-{r}")
                os.environ["NEURON_EMU_CUSTOM_OP_CACHE"] = cache
                build.PREBUILT_DIR = prebuilt if kind == "cold" else os.path.join(d, "none")
                rows[kind].append(_wall(lambda: build.build(*args)))
                if kind == "cold":
                    rows["cached"].append(_wall(lambda: build.build(*args)))
                    assert build.build(*args)["cached"]
    build.PREBUILT_DIR = prebuilt
    del os.environ["NEURON_EMU_CUSTOM_OP_CACHE"]
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rows.items()}, \
        have_prebuilt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="256x1024")
    ap.add_argument("--reps", type=int, default=50)
    a = ap.parse_args()
    rows, cols = (int(s) for s in a.shape.split("x"))

    load0 = os.getloadavg()[0]
    t, have_prebuilt = build_times()
    base = t["baseline"][0]
    print(f"build of the ReLU library (median of 3, interleaved; host {os.cpu_count()} CPUs, load {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f}); baseline: g++ -O2 -shared of the native loops {base:.2f} s wall / "
          f"{t['baseline'][1]:.2f} s CPU")
    if not have_prebuilt:
        print("  (no prebuilt harness objects in the package: run setup.py build_ext or "
              "python -m neuron_emu.custom_op.prebuild; 'cold' then compiles the harness too)")
    for kind, what in (("cold", "cold, empty cache, prebuilt harness"),
                       ("cold_no_prebuilt", "cold, empty cache, harness compiled too"), ("cached", "cached")):
        w, c = t[kind]
        print(f"  {what:<40} {w:7.3f} s wall ({w / base:5.2f}x baseline) {c:6.2f} s compiler CPU")
    print("  targets: cold <= 5 s, cached <= 0.2 s")

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
            row = op.instr([(rows, cols)], (rows, cols), [None], [0, 1], [torch.float32] * 2).encode()
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
