"""neuron-emu shared core: hardware model, compiler, runtime and engine kernels (neuron_emu._C)."""
import ctypes as _ctypes
import os as _os

# NEMU_SIMD=portable (csrc/simd.h) also keeps OpenBLAS's sgemm off AVX: its DYNAMIC_ARCH build reads
# OPENBLAS_CORETYPE once, when the library initialises, so it is set before the load below. Prescott
# (SSE3) is its most conservative x86-64 kernel set (openblas_get_corename reports it as "Katmai", an alias).
if _os.environ.get("NEMU_SIMD") == "portable" and _os.uname().machine == "x86_64":
    _os.environ.setdefault("OPENBLAS_CORETYPE", "Prescott")

# Load OpenBLAS globally before the extension so its soname resolves wherever the wheel lives.
try:
    import scipy_openblas32 as _ob

    _ctypes.CDLL(_os.path.join(_ob.get_lib_dir(), "libscipy_openblas.so"), mode=_ctypes.RTLD_GLOBAL)
except (ImportError, OSError):  # the extension's rpath is the fallback
    pass

from neuron_emu import _C  # noqa: E402,F401

__version__ = "0.1.0"
