"""The persistent compile cache, laid out as Neuron's: `<cache>/neuronxcc-<ver>/MODULE_<graph hash>+<flags hash>/
model.neff`. Writes are atomic (a temporary file in the entry directory, then `os.replace`), so processes sharing
a directory never see half a file; each neff has a `model.neff.sha256` beside it, written after it, and an entry
whose bytes do not match is reported and recompiled, never used."""
from __future__ import annotations

import hashlib
import logging
import os
import shlex
import tempfile
from typing import List, Optional, Tuple

import numpy as np
import torch

from neuron_emu.compiler.options import EMULATED_NEURONX_CC_VERSION, CompilerOptions, parse_compiler_args

logger = logging.getLogger("Neuron")
WRAPPER = "||NEURON_CC_WRAPPER||"


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "neuron-compile-cache")


class Settings:
    """NEURON_CC_FLAGS split into the wrapper's own flags and the compiler's (parsed, errors name the flag)."""

    def __init__(self, flags: Optional[str], cache_url: Optional[str]):
        argv = shlex.split(flags or "")
        compiler: List[str] = []
        self.no_cache = False
        self.retry_failed = False
        self.cache_dir = cache_url or default_cache_dir()
        for a in argv:
            if a == "--no_cache":
                self.no_cache = True
            elif a.startswith("--cache_dir="):
                self.cache_dir = a.split("=", 1)[1]   # wins over NEURON_COMPILE_CACHE_URL
            elif a == "--retry_failed_compilation":
                self.retry_failed = True
            elif a.startswith("--log_level="):
                logger.setLevel(a.split("=", 1)[1].upper())
            else:
                compiler.append(a)
        from neuron_emu.lazy import bf16
        compiler += bf16.compiler_flags()
        self.options: CompilerOptions = parse_compiler_args(compiler)
        self.flags_hash = hashlib.md5(" ".join(compiler).encode()).hexdigest()[:8]


_settings: Optional[Tuple[tuple, Settings]] = None


def settings() -> Settings:
    global _settings
    env = (os.environ.get("NEURON_CC_FLAGS"), os.environ.get("NEURON_COMPILE_CACHE_URL"),
           os.environ.get("XLA_USE_BF16"), os.environ.get("XLA_DOWNCAST_BF16"))
    if _settings is None or _settings[0] != env:
        _settings = (env, Settings(env[0], env[1]))
    return _settings[1]


def entry_dir(s: Settings, graph_hash: int) -> str:
    return os.path.join(s.cache_dir, f"neuronxcc-{EMULATED_NEURONX_CC_VERSION}", f"MODULE_{graph_hash}+{s.flags_hash}")


def load(s: Settings, graph_hash: int) -> Optional[torch.Tensor]:
    """The cached artifact, or None when absent; a corrupt entry is logged and treated as absent."""
    if s.no_cache:
        return None
    d = entry_dir(s, graph_hash)
    neff = os.path.join(d, "model.neff")
    try:
        with open(neff, "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        with open(neff + ".sha256") as f:
            want = f.read().strip()
    except OSError:
        want = None
    if want != hashlib.sha256(data).hexdigest():
        logger.warning(f"{WRAPPER}: The cached neff at {neff} is corrupt or incomplete (checksum mismatch); "
                       f"recompiling.")
        from neuron_emu.lazy import metrics
        metrics.counter_add("CorruptCacheEntry")
        return None
    logger.info(f"{WRAPPER}: Using a cached neff at {neff}. Exiting with a successfully compiled graph.")
    return torch.from_numpy(np.frombuffer(bytearray(data), dtype=np.uint8))


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def store(s: Settings, graph_hash: int, blob: torch.Tensor, graph_text: str) -> None:
    if s.no_cache:
        return
    d = entry_dir(s, graph_hash)
    os.makedirs(d, exist_ok=True)
    data = blob.numpy().tobytes()
    _atomic_write(os.path.join(d, "model.hlo.txt"), graph_text.encode())
    _atomic_write(os.path.join(d, "model.neff"), data)
    _atomic_write(os.path.join(d, "model.neff.sha256"), hashlib.sha256(data).hexdigest().encode())
