"""XLA_USE_BF16 / XLA_DOWNCAST_BF16 (torch-neuronx-envvars): float tensors live on the device as bf16 while still
reporting float32. Emulated as: floats transferred to the device are rounded to bf16 (stochastically when
NEURON_RT_STOCHASTIC_ROUNDING_EN=1, which these variables turn on; seed NEURON_RT_STOCHASTIC_ROUNDING_SEED,
default 0), and graphs compile with `--auto-cast all --auto-cast-type bf16`, so every fp32 result is rounded too.
Both variables are deprecated in torch-neuronx >= 2.5; the warning says what replaces them."""
from __future__ import annotations

import os
import warnings
from typing import List, Optional

import torch

_VARS = ("XLA_USE_BF16", "XLA_DOWNCAST_BF16")
_gen: Optional[torch.Generator] = None
_warned = set()


def enabled() -> bool:
    on = [v for v in _VARS if os.environ.get(v) == "1"]
    for v in on:
        if v not in _warned:
            _warned.add(v)
            warnings.warn(f"{v} will be deprecated after Neuron 2.19 release, please convert model to bf16 using "
                          f"model.to(torch.bfloat16) and set NEURON_RT_STOCHASTIC_ROUNDING_EN=1 instead",
                          DeprecationWarning, stacklevel=4)
    return bool(on)


def compiler_flags() -> List[str]:
    return ["--auto-cast=all", "--auto-cast-type=bf16"] if enabled() else []


def stochastic() -> bool:
    return os.environ.get("NEURON_RT_STOCHASTIC_ROUNDING_EN", "1" if enabled() else "0") == "1"


def round_transfer(t: torch.Tensor) -> torch.Tensor:
    """A float tensor as the device holds it under XLA_USE_BF16 (dtype unchanged, values bf16)."""
    if t.dtype not in (torch.float32, torch.float64) or not enabled():
        return t
    f = t.to(torch.float32)
    if not stochastic():
        return f.to(torch.bfloat16).to(t.dtype)
    global _gen
    if _gen is None:
        _gen = torch.Generator().manual_seed(int(os.environ.get("NEURON_RT_STOCHASTIC_ROUNDING_SEED", "0")))
    bits = f.contiguous().view(torch.int32)
    noise = torch.randint(0, 1 << 16, bits.shape, generator=_gen, dtype=torch.int32)
    finite = torch.isfinite(f)
    rounded = ((bits + noise) & ~0xFFFF).view(torch.float32)   # add below the kept bits, then truncate
    return torch.where(finite, rounded, f.to(torch.bfloat16).to(torch.float32)).to(t.dtype)
