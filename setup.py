"""Build the engine-kernel extension `neuron_emu._C` from csrc/ (pybind11, not libtorch).

GEMMs go to OpenBLAS from the `scipy-openblas32` wheel (run-time CPU dispatch, x86-64 and aarch64);
our own hot loops are compiled for a portable baseline, AVX2+FMA and AVX-512 and picked at run time
(NEMU_SIMD forces one; see csrc/simd.h).
NEMU_SANITIZE=1 builds with AddressSanitizer + UBSan (see tests/run_sanitized.sh).
"""
import glob
import os
import subprocess
import sys

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

import scipy_openblas32

blas_lib_dir = scipy_openblas32.get_lib_dir()
cflags = ["-O3", "-fopenmp-simd", "-pthread", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter",
          "-DBLAS_SYMBOL_PREFIX=scipy_"]
ldflags = ["-pthread", f"-Wl,-rpath,{blas_lib_dir}", "-Wl,-rpath,$ORIGIN/../scipy_openblas32/lib"]
SANITIZE = os.environ.get("NEMU_SANITIZE") == "1"
if SANITIZE:
    # signed-integer-overflow is part of "undefined"; it only fires without -fwrapv (dropped below), so a
    # size computation that wraps is a sanitizer report instead of a silently wrong bound.
    san = ["-fsanitize=address,undefined,signed-integer-overflow", "-fno-omit-frame-pointer",
           "-fno-sanitize-recover=undefined"]
    cflags = [f for f in cflags if f != "-O3"] + ["-O1", "-g", "-fno-wrapv"] + san
    ldflags += san

HEADERS = sorted(glob.glob("csrc/*.h"))


def _stale(obj: str, src: str) -> bool:
    """Recompile an object older than its source or any header (setuptools alone rebuilds every file)."""
    if not os.path.exists(obj):
        return True
    t = os.path.getmtime(obj)
    return any(os.path.getmtime(p) >= t for p in [src] + HEADERS)


ParallelCompile("NEMU_BUILD_JOBS", needs_recompile=_stale).install()


class _BuildExt(build_ext):
    """Under NEMU_SANITIZE, drop -fwrapv from the flags Python's sysconfig puts in front of ours (CFLAGS/OPT of
    the interpreter's build): with it, signed overflow is defined and UBSan cannot report it."""

    def build_extensions(self):
        if SANITIZE:  # every command list: compiler_so, compiler_so_cxx (newer setuptools), linker_so, ...
            for attr, cmd in list(vars(self.compiler).items()):
                if isinstance(cmd, list) and "-fwrapv" in cmd:
                    setattr(self.compiler, attr, [f for f in cmd if f != "-fwrapv"])
        super().build_extensions()

    def run(self):
        super().run()
        # Custom operators: the harness every user library links with, compiled once here so that a cold
        # custom_op.load compiles only the user's sources. Optional: without it the first load compiles it.
        pkg = os.path.dirname(os.path.abspath(self.get_ext_fullpath("neuron_emu._C")))
        env = dict(os.environ, PYTHONPATH=os.path.dirname(pkg))
        if subprocess.run([sys.executable, "-m", "neuron_emu.custom_op.prebuild",
                           os.path.join(pkg, "custom_op", "prebuilt")], env=env, stdout=subprocess.DEVNULL).returncode:
            print("warning: the custom-op harness was not prebuilt; the first custom_op.load will compile it")

ext = Pybind11Extension(
    "neuron_emu._C",
    sorted(glob.glob("csrc/*.cpp")),
    include_dirs=["csrc", scipy_openblas32.get_include_dir()],
    library_dirs=[blas_lib_dir],
    libraries=[scipy_openblas32.get_library()],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
    depends=HEADERS,
    cxx_std=17,
)

setup(ext_modules=[ext], cmdclass={"build_ext": _BuildExt})
