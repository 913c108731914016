"""Builds a custom-op library with the system C++ compiler against our device headers (not libtorch).

One build: every source to an object in parallel, the kernel table generated from the compute objects'
symbols (`nemu_glue.cpp`: a caller per function, instantiated for its exact signature), a link with the
harness object (compiled once per header version). The result is cached under a key that hashes the sources,
the flags, the compiler and the headers + harness, so an unchanged library "builds" in a directory lookup.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import List, Sequence

from neuron_emu.hardware import CUSTOM_OP_COSTS, NEURONCORE_V2
from neuron_emu.ops import ABI_HEADER

PKG_DIR = os.path.dirname(os.path.abspath(__file__))
INCLUDE_DIR = os.path.join(PKG_DIR, "include")
RUNTIME_DIR = os.path.join(PKG_DIR, "runtime")
# -fno-gnu-unique: a static in an inline function would otherwise be one object across every loaded library;
# -fstack-clash-protection: a frame larger than a page probes each page, so a kernel that overruns its
# STACK_SIZE faults on the guard page below it (runtime/kernel_stack.h) instead of skipping over it
BASE_FLAGS = ["-std=c++14", "-O2", "-fPIC", "-U_FORTIFY_SOURCE", "-fno-gnu-unique", "-fstack-clash-protection"]
MAX_STACK_SIZE = 400 * 1024  # -DSTACK_SIZE upper bound, "max 400 KB" [api 4.1]
DEFAULT_STACK_SIZE = 8192    # "declare stack > ~8 KB" [api 4.1]; runtime/glue.h kDefaultStackSize
# Harness objects compiled when the package is built (setup.py runs prebuild.py): a cold library build then
# compiles only the user's sources and the kernel table.
PREBUILT_DIR = os.path.join(PKG_DIR, "prebuilt")

# Parameter types a kernel may take, as c++filt spells them [api 4.2].
ARG_TYPES = {"torch::Tensor", "torch::Tensor const&", "torch::Tensor&", "double", "long",
             "torch::Scalar", "torch::Scalar const&"}


class CustomOpBuildError(RuntimeError):
    """A library failed to build: the message carries the compiler's output (the user's file:line)."""


def cache_root() -> str:
    root = os.environ.get("NEURON_EMU_CUSTOM_OP_CACHE") or os.path.join(
        tempfile.gettempdir(), f"neuron-emu-custom-ops-{os.getuid()}")
    os.makedirs(root, exist_ok=True)
    return root


def compiler() -> str:
    for cand in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    raise CustomOpBuildError("custom_op: no C++ compiler found (set CXX, or install g++ or clang++)")


def hardware_flags() -> List[str]:
    c, core = CUSTOM_OP_COSTS, NEURONCORE_V2
    return [f"-DNEMU_GPSIMD_CORES={core.gpsimd_cores}", f"-DNEMU_GPSIMD_LANES={core.gpsimd_lanes}",
            f"-DNEMU_TCM_POOL_BYTES={c.tcm_pool_bytes}", f"-DNEMU_CUSTOM_OP_LAUNCH_CYCLES={c.launch_cycles}",
            f"-DNEMU_HBM_ACCESS_CYCLES={c.hbm_access_cycles}", f"-DNEMU_TCM_SETUP_CYCLES={c.tcm_setup_cycles}",
            f"-DNEMU_TCM_BYTES_PER_CYCLE={float(c.tcm_bytes_per_cycle)!r}",
            f"-DNEMU_COMPUTE_CYCLES_PER_ELEM={float(c.compute_cycles_per_elem)!r}"]


def header_version() -> str:
    """Hash of the headers and the harness: a change to either invalidates every cached build."""
    h = hashlib.sha256()
    for d in (INCLUDE_DIR, RUNTIME_DIR):
        for root, _, files in sorted(os.walk(d)):
            for f in sorted(files):
                if f.endswith((".h", ".hpp", ".cpp")):
                    h.update(f.encode())
                    with open(os.path.join(root, f), "rb") as fh:
                        h.update(fh.read())
    with open(ABI_HEADER, "rb") as fh:
        h.update(fh.read())
    return h.hexdigest()[:16]


def check_cflags(name: str, extra_cflags: Sequence[str]) -> int:
    """Validates the flags; returns the kernel stack size in bytes (-DSTACK_SIZE, the last one wins)."""
    stack = DEFAULT_STACK_SIZE
    for f in extra_cflags:
        if not isinstance(f, str):
            raise TypeError(f"custom_op.load(name={name!r}): extra_cflags must be strings, found {f!r}")
        m = re.fullmatch(r"-DSTACK_SIZE(?:=(.*))?", f)
        if m:
            try:
                v = int(m.group(1), 0)
            except (TypeError, ValueError):
                raise ValueError(f"custom_op.load(name={name!r}): {f!r}: STACK_SIZE must be an integer number "
                                 f"of bytes") from None
            if not 0 < v <= MAX_STACK_SIZE:
                raise ValueError(f"custom_op.load(name={name!r}): {f!r}: STACK_SIZE must be in (0, {MAX_STACK_SIZE}] "
                                 f"bytes (400 KB is the GpSimd maximum)")
            stack = v
    return stack


def _run(cmd: List[str], what: str, verbose: bool) -> str:
    if verbose:
        print(" ".join(cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise CustomOpBuildError(f"{what} failed:\n{r.stderr.strip() or r.stdout.strip()}")
    if verbose and r.stderr.strip():
        print(r.stderr.strip())
    return r.stdout


HARNESS_SOURCES = ("harness.cpp", "device_access.cpp", "device_ops.cpp")


def harness_key(cxx: str) -> str:
    return hashlib.sha256("\0".join([header_version(), cxx] + harness_flags()).encode()).hexdigest()[:20]


def harness_flags() -> List[str]:
    return BASE_FLAGS + ["-fvisibility=hidden"] + hardware_flags()


def _harness_objects(cxx: str, verbose: bool, pool, out_dir: str = None) -> List[str]:
    """The harness objects, compiled once per (headers + harness, compiler, flags) and shared by every library:
    the package's prebuilt ones when their key matches, else compiled into the cache (or `out_dir`)."""
    flags = harness_flags()
    key = harness_key(cxx)

    def one(src):
        name = f"harness-{key}-{src[:-4]}.o"
        if out_dir is None and os.path.exists(os.path.join(PREBUILT_DIR, name)):
            return os.path.join(PREBUILT_DIR, name)
        obj = os.path.join(out_dir or cache_root(), name)
        if not os.path.exists(obj):
            tmp = f"{obj}.{os.getpid()}.tmp"
            _run([cxx, *flags, "-I", INCLUDE_DIR, "-I", os.path.dirname(ABI_HEADER), "-c",
                  os.path.join(RUNTIME_DIR, src), "-o", tmp], f"custom_op: compiling the emulator harness ({src})",
                 verbose)
            os.replace(tmp, obj)
        return obj

    return [pool.submit(one, src) for src in HARNESS_SOURCES]


def _split_params(params: str) -> List[str]:
    out, depth, cur = [], 0, ""
    for ch in params:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def kernel_candidates(objects: Sequence[str], verbose: bool):
    """Global functions defined by the compute objects: ({name: params} callable ones, {name: reason} others)."""
    syms = []
    for o in objects:
        for line in _run(["nm", "--defined-only", "-g", "-P", o], "custom_op: nm", verbose).splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1] in ("T", "W"):
                syms.append(parts[0])
    if not syms:
        return {}, {}
    demangled = subprocess.run(["c++filt"], input="\n".join(syms), stdout=subprocess.PIPE, text=True,
                               check=True).stdout.splitlines()
    ok, rejected = {}, {}
    for d in demangled:
        m = re.fullmatch(r"([A-Za-z_]\w*)\((.*)\)", d.strip())
        if not m:
            continue  # C symbols, namespaced or template functions: not kernels
        name, params = m.group(1), _split_params(m.group(2))
        if params == ["void"]:
            params = []
        bad = [p for p in params if p not in ARG_TYPES]
        if bad:
            rejected[name] = (f"unsupported argument type {bad[0]!r} (kernels take torch::Tensor, torch::Scalar, "
                              f"double or int64_t)")
        elif name in ok:
            rejected[name] = "it is overloaded"
            del ok[name]
        elif name not in rejected:
            ok[name] = params
    return ok, rejected


def glue_source(kernels, stack_size: int = DEFAULT_STACK_SIZE) -> str:
    lines = ['#include "glue.h"', "", f'extern "C" const long nemu_customop_stack_size = {int(stack_size)};', ""]
    for name, params in sorted(kernels.items()):
        lines.append(f"torch::Tensor {name}({', '.join(params)});")
    lines += ["", "static const torch::neuron_emu::KernelEntry nemu_table[] = {"]
    for name, params in sorted(kernels.items()):
        sig = ", ".join(params)
        lines.append(f'  torch::neuron_emu::make_kernel("{name}", "{sig}", &{name}),')
    lines += ['  torch::neuron_emu::KernelEntry{nullptr, nullptr, nullptr, nullptr, 0},', "};", "",
              'extern "C" const torch::neuron_emu::KernelEntry* nemu_customop_kernels(int* n) {',
              f"  *n = {len(kernels)};", "  return nemu_table;", "}", ""]
    return "\n".join(lines)


def _as_list(srcs, what: str, name: str) -> List[str]:
    if isinstance(srcs, (str, os.PathLike)):
        srcs = [srcs]
    srcs = [os.path.abspath(os.fspath(s)) for s in srcs]
    if not srcs:
        raise ValueError(f"custom_op.load(name={name!r}): {what} is empty")
    for s in srcs:
        if not os.path.isfile(s):
            raise FileNotFoundError(f"custom_op.load(name={name!r}): {what} file not found: {s}")
    return srcs


def build(name: str, compute_srcs, shape_srcs, extra_cflags=(), extra_include_paths=(), multicore=False,
          verbose=False) -> dict:
    """Build (or find in the cache) the library; returns {"so": path, "kernels": ..., "rejected": ..., "cached"}."""
    compute, shape = _as_list(compute_srcs, "compute_srcs", name), _as_list(shape_srcs, "shape_srcs", name)
    stack_size = check_cflags(name, extra_cflags)
    cxx = compiler()
    incs = [os.path.abspath(p) for p in extra_include_paths]
    flags = BASE_FLAGS + hardware_flags() + ["-I", INCLUDE_DIR] + [a for p in incs for a in ("-I", p)] + list(extra_cflags)
    # multicore is library-wide state of the loaded file: a multicore build is a file of its own
    h = hashlib.sha256("\0".join([header_version(), cxx, name, f"multicore={bool(multicore)}"] + flags).encode())
    for role, srcs in (("compute", compute), ("shape", shape)):
        for s in srcs:
            with open(s, "rb") as fh:
                h.update(f"\0{role}\0{os.path.basename(s)}\0".encode() + fh.read())
    key = h.hexdigest()[:24]
    out_dir = os.path.join(cache_root(), f"{name}-{key}")
    so = os.path.join(out_dir, f"lib{name}customop.so")
    info_path = os.path.join(out_dir, "kernels.txt")
    if os.path.exists(so) and os.path.exists(info_path):
        return dict(so=so, key=key, cached=True, **_read_info(info_path))

    work = tempfile.mkdtemp(prefix=f"build-{name}-", dir=cache_root())
    try:
        def compile_one(src):
            obj = os.path.join(work, f"{len(src)}-{hashlib.md5(src.encode()).hexdigest()[:8]}.o")
            _run([cxx, *flags, "-c", src, "-o", obj], f"custom_op.load(name={name!r}): compiling {src}", verbose)
            return obj

        with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1))) as pool:
            harness = _harness_objects(cxx, verbose, pool)
            objs = list(pool.map(compile_one, compute + shape))
            harness = [h.result() for h in harness]
        kernels, rejected = kernel_candidates(objs[:len(compute)], verbose)
        glue = os.path.join(work, "nemu_glue.cpp")
        with open(glue, "w") as fh:
            fh.write(glue_source(kernels, stack_size))
        glue_obj = os.path.join(work, "nemu_glue.o")
        # -O1: a table and one call per kernel; -O2 buys nothing here but compile time
        _run([cxx, *BASE_FLAGS, "-O1", "-I", INCLUDE_DIR, "-I", RUNTIME_DIR, "-c", glue, "-o", glue_obj],
             f"custom_op.load(name={name!r}): compiling the kernel table", verbose)
        tmp_so = os.path.join(work, os.path.basename(so))
        _run([cxx, "-shared", "-Wl,-z,defs", "-o", tmp_so, *harness, glue_obj, *objs], f"custom_op.load(name={name!r}): linking", verbose)
        with open(os.path.join(work, "kernels.txt"), "w") as fh:
            for k, p in sorted(kernels.items()):
                fh.write(f"ok\t{k}\t{', '.join(p)}\n")
            for k, why in sorted(rejected.items()):
                fh.write(f"rejected\t{k}\t{why}\n")
        try:
            os.replace(work, out_dir)  # atomic publish; a concurrent build of the same key wins the race harmlessly
        except OSError:
            if not os.path.exists(so):
                raise
        work = None
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)
    return dict(so=so, key=key, cached=False, **_read_info(info_path))


def _read_info(path: str) -> dict:
    kernels, rejected = {}, {}
    with open(path) as fh:
        for line in fh:
            kind, k, rest = line.rstrip("\n").split("\t")
            (kernels if kind == "ok" else rejected)[k] = rest
    return dict(kernels=kernels, rejected=rejected)
