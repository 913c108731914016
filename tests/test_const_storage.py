"""Constants cast at compile time are stored in the cast type (neuron_emu/compiler/const_storage.py): the
artifact holds bf16 bit patterns (fp8 values too) or float16 for weights only prerounded TensorE inputs read,
results equal the fp32-stored program's, and a 16-bit constant anywhere else is refused at load."""
import numpy as np
import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.compiler import artifact
from neuron_emu.compiler.const_storage import CONST_BF16, CONST_FP16
from neuron_emu.runtime.model import LoadedModel

from tests.fuzz_artifacts import join, split


def _const_dtypes(blob: torch.Tensor):
    header, sec = artifact.deserialize(blob)
    kinds = sec["buffers"][:, 1]
    return {int(n[6:]): (str(a.dtype), int(kinds[int(n[6:])])) for n, a in sec.items() if n.startswith("const.")}


@pytest.fixture(scope="module")
def mlp():
    return zoo.mlp(in_features=32, hidden=(64,), out=8, batch=4)


@pytest.mark.parametrize("cast, np_dtype, kind", [("bf16", "uint16", CONST_BF16), ("fp16", "float16", CONST_FP16),
                                                  ("fp8_e4m3", "uint16", CONST_BF16), ("tf32", None, None)])
def test_matmul_weights_stored_in_cast_type(mlp, cast, np_dtype, kind):
    model, inputs = mlp
    t = torch_neuronx_emu.trace(model, inputs, compiler_args=f"--auto-cast matmult --auto-cast-type {cast}")
    stored = _const_dtypes(t.neff)
    weights = [v for v in stored.values() if v[0] != "float32"]
    if np_dtype is None:  # tf32 has no 16-bit form: fp32 storage
        assert not weights
    else:
        assert len(weights) == 2 and all(v == (np_dtype, kind) for v in weights), stored
        biases = [v for v in stored.values() if v[0] == "float32"]
        assert biases  # VectorE/bias operands stay fp32
    # same numbers as the auto-cast reference (weights rounded once, fp32 storage in the oracle)
    from neuron_emu.compiler.reference import round_tensor
    with torch.no_grad():
        x = inputs[0]
        h = torch.relu(round_tensor(x, cast).double() @ round_tensor(model[0].weight, cast).double().T + model[0].bias.double())
        w2 = round_tensor(model[2].weight, cast).double()
        ref = round_tensor(h.float(), cast).double() @ w2.T + model[2].bias.double()
        # The fp32 accumulation order (OpenBLAS, or MKL's native 16-bit GEMM on AVX512-FP16/BF16 CPUs) may move
        # a hidden value lying within 1e-6 of a rounding midpoint to the other side: allow exactly those flips.
        lo, hi = (round_tensor((h * f).float(), cast).double() for f in (1 - 1e-6, 1 + 1e-6))
        flips = (hi - lo).abs() @ w2.abs().T
    err = (t(*inputs).double() - ref).abs()
    assert (err <= 1e-5 + 1e-5 * ref.abs() + flips).all(), (err.max(), flips.max())


def test_half_storage_halves_the_weights(mlp):
    model, inputs = mlp
    n32 = torch_neuronx_emu.trace(model, inputs, compiler_args="--auto-cast none").neff.numel()
    n16 = torch_neuronx_emu.trace(model, inputs, compiler_args="--auto-cast matmult").neff.numel()
    weight_bytes = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight")) * 4
    assert n32 - n16 >= 0.45 * weight_bytes, (n32, n16, weight_bytes)


def test_shared_constant_stays_fp32():
    """A weight also read by a non-TensorE op (here a VectorE add) keeps one fp32 copy for it."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(16, 16))

        def forward(self, x):
            return x @ self.w + self.w
    m, x = M().eval(), torch.randn(16, 16)
    t = torch_neuronx_emu.trace(m, x, compiler_args="--auto-cast matmult")
    dt = sorted(v[0] for v in _const_dtypes(t.neff).values())
    assert dt == ["float32", "uint16"]  # the rounded copy for the matmul, the original for the add
    w = m.w.detach().double()
    torch.testing.assert_close(t(x).double(), x.bfloat16().double() @ w.bfloat16().double() + w, rtol=1e-5, atol=1e-5)


def _blob(model, inputs, args="--auto-cast matmult") -> bytes:
    return bytes(torch_neuronx_emu.trace(model, inputs, compiler_args=args).neff.numpy())


def _load(blob: bytes):
    return LoadedModel(torch.frombuffer(bytearray(blob), dtype=torch.uint8), origin="m.pt")


def _edit_instr(blob: bytes, fn) -> bytes:
    pre, header, data = split(blob)
    s = header["sections"]["instrs"]
    d = bytearray(data)
    arr = np.frombuffer(d, dtype=np.int64, count=s["nbytes"] // 8, offset=s["offset"]).reshape(s["shape"]).copy()
    fn(arr)
    d[s["offset"]:s["offset"] + s["nbytes"]] = arr.tobytes()
    return join(pre, header, bytes(d))


def test_16bit_constant_read_as_fp32_is_refused(mlp):
    """Clearing a MatMul's b_prerounded flag would make it read bf16 patterns as floats: refused, naming it."""
    from neuron_emu.isa import Op, schema
    sch = schema(Op.MatMul)
    word = 9 + sch.ints["b_prerounded"]  # instruction word of the field (isa.Instr.encode)
    blob = _blob(*mlp)
    rows = artifact.deserialize(torch.frombuffer(bytearray(blob), dtype=torch.uint8))[1]["instrs"]
    mm = int(np.nonzero(rows[:, 0] == sch.code)[0][0])
    assert rows[mm, word] == 1

    def edit(r):
        r[mm, word] = 0
    with pytest.raises(artifact.ArtifactError, match=r"instruction \d+ \(MatMul\): operand 1 is buffer \d+, a constant "
                                                      r"stored in bf16; only a prerounded TensorE input"):
        _load(_edit_instr(blob, edit))


def test_section_dtype_must_match_kind(mlp):
    blob = _blob(*mlp)
    pre, header, data = split(blob)
    name = next(n for n, s in header["sections"].items() if n.startswith("const.") and s["dtype"] == "uint16")
    header["sections"][name]["dtype"] = "float16"
    with pytest.raises(artifact.ArtifactError, match=rf"{name} must be uint16 \(buffer kind 2\), got float16"):
        _load(join(pre, header, data))
