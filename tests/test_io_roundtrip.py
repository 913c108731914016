"""Host <-> device dtype conversion (IoIn / IoOut, csrc/dma.cpp) through real traced models: every fp16 and
every bf16 bit pattern, NaN payloads and signalling/quiet bits included, comes back bit for bit as eager torch
gives it. Each model below really reads and writes through IoIn/IoOut (checked: a pure identity would be
IoIn -> IoOut with no op between, so x * 1 is used and the compiler keeps the multiply)."""
import warnings

import pytest
import torch

import torch_neuronx_emu
from neuron_emu.runtime.model import last_call

ALL16 = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)  # every 16-bit pattern


def fp32_patterns() -> torch.Tensor:
    """fp32 inputs for the fp32 -> 16-bit direction: every 16-bit pattern's fp32 value, both halves of every
    rounding tie, and NaNs with every sign, quiet bit and high payload combination (the bits fp16 keeps)."""
    widened = torch.cat([ALL16.view(torch.float16).float(), ALL16.view(torch.bfloat16).float()])
    bits = widened.view(torch.int32)
    ties = torch.cat([bits + 0x1000, bits + 0x8000, bits - 1, bits + 1])  # fp16 / bf16 halfway points and neighbours
    payload = torch.arange(1 << 11, dtype=torch.int32) << 12  # 11 high mantissa bits incl. the quiet bit
    nans = torch.cat([0x7F800001 | payload, (0x7F800001 | payload) - (1 << 31)])
    return torch.cat([bits, ties, nans]).view(torch.float32)


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


CASES = {
    "fp16 x*1": (torch.float16, lambda x: x * 1),
    "bf16 x*1": (torch.bfloat16, lambda x: x * 1),
    "fp16 -> fp32": (torch.float16, lambda x: x.float()),
    "bf16 -> fp32": (torch.bfloat16, lambda x: x.float()),
    "fp32 -> fp16": (torch.float32, lambda x: x.half()),
    "fp32 -> bf16": (torch.float32, lambda x: x.bfloat16()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_pattern_matches_eager(case):
    dtype, fn = CASES[case]
    x = fp32_patterns() if dtype == torch.float32 else ALL16.view(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch_neuronx_emu.trace(Fn(fn).eval(), x)
    out = traced(x)
    ops = last_call().timeline()["source_op"]
    assert ops[0] == "<inputs>" and ops[-1] == "<outputs>", ops
    ref = fn(x)
    assert out.dtype == ref.dtype
    int_t = torch.int16 if ref.element_size() == 2 else torch.int32
    got, want = out.view(int_t), ref.view(int_t)
    bad = (got != want).nonzero().flatten()
    in_bits = x.view(torch.int16 if x.element_size() == 2 else torch.int32)
    assert bad.numel() == 0, [(hex(int(in_bits[i]) & 0xFFFFFFFF), hex(int(got[i]) & 0xFFFFFFFF),
                               hex(int(want[i]) & 0xFFFFFFFF)) for i in bad[:8]]
