"""torch_neuron trace options beyond partitioning (docs/reference/neuron-api.md 1.1): `optimizations=
[Optimization.FLOAT32_TO_FLOAT16]` (fp32 I/O of every Neuron subgraph cast to fp16; the model accepts fp32 and fp16)
and `dynamic_batch_size=True` (any batch along dim 0), each on whole and partitioned models, through save/load.

Oracles: the plan reference (neuron_emu/partitioner/reference.py: each subgraph as the compiler's eager reference with
the same casts, here also the fp16 rounding of its I/O applied outside the graph); for dynamic batching, the traced
model run chunk by chunk at its compiled batch size, and eager."""
import io
import os
import subprocess
import sys
import warnings

import pytest
import torch

import torch_neuron_emu
from neuron_emu.partitioner.reference import run_plan_reference
from torch_neuron_emu import Optimization
from torch_neuron_emu.partition import plan_model
from torch_neuron_emu.trace import parse_neuron_cc_args

from test_inf1_partition import ROOT, Mixed, _kinds, _trace

FP16 = [Optimization.FLOAT32_TO_FLOAT16]


def _reload(traced):
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    return torch.jit.load(buf)


def _plan_reference(model, x, args=None, **kw):
    p = plan_model(model, (x,), parse_neuron_cc_args(args), **kw)
    return run_plan_reference(p.graph, p.plan, parse_neuron_cc_args(args), (x,), fp16_io=True)[0]


@pytest.mark.parametrize("model,shape", [(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU()), (2, 8)),
                                         (Mixed(), (3, 16))], ids=["whole", "partitioned"])
def test_float32_to_float16_io(model, shape):
    torch.manual_seed(0)
    model, x = model.eval(), torch.randn(*shape)
    x[0, 0] = 1 + 2 ** -13  # not an fp16 value: the input must be rounded before the program reads it
    traced = _trace(model, x, optimizations=FP16)
    y = traced(x)
    assert y.dtype == torch.float16  # the documented fp16 I/O
    ref = _plan_reference(model, x)
    assert ref.dtype == torch.float16
    torch.testing.assert_close(y.float(), ref.float(), rtol=0, atol=1e-5 * ref.abs().max().item()
                               + torch.finfo(torch.float16).eps * ref.abs().max().item())
    assert torch.equal(traced(x.half()), y)  # accepts fp16 and fp32 alike
    loaded = _reload(traced)
    assert torch.equal(loaded(x), y) and torch.equal(loaded(x.half()), y)
    plain = _trace(model, x)(x)
    assert plain.dtype == torch.float32
    if len(_kinds(traced)) > 1:  # CPU ops between subgraphs still read the fp32 they were traced with
        assert "aten::to" in _kinds(traced) and "aten::_fft_r2c" in _kinds(traced)
    with pytest.raises(TypeError, match="is not a torch_neuron.Optimization"):
        _trace(model, x, optimizations=["fp16"])


def test_float32_to_float16_rounds_at_the_boundary_only():
    """Elementwise ops under --fast-math none compute exactly in fp32: the only roundings are the fp16 input and
    output, so the result equals eager on the fp16-rounded input, rounded to fp16."""
    model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Hardtanh(-3.0, 3.0)).eval()
    x = torch.tensor([[1 + 2 ** -13, -2.0, 2.5 + 2 ** -12, 7.0]])
    traced = _trace(model, x, optimizations=FP16, compiler_args="--fast-math none")
    want = model(x.half().float()).half()
    assert torch.equal(traced(x), want) and not torch.equal(traced(x).float(), model(x))


class Reshaping(torch.nn.Module):
    """Batch-dependent views on both sides of a CPU op (rfft), as a transformer's reshapes of (batch, seq, ...)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(9, 4)

    def forward(self, x):
        h = torch.relu(self.a(x)).reshape(x.shape[0], 4, 4).transpose(1, 2).reshape(x.shape[0], 16)
        f = torch.fft.rfft(h).abs()
        return self.b(torch.tanh(f) + 1).reshape(-1, 2, 2)


def _chunked(traced, x, batch):
    """The oracle: the traced model run at its compiled batch on each chunk, the last padded with zeros."""
    n = x.shape[0]
    pad = torch.cat([x, x.new_zeros((-n % batch,) + tuple(x.shape[1:]))])
    return torch.cat([traced(pad[i:i + batch]) for i in range(0, pad.shape[0], batch)])[:n]


@pytest.mark.parametrize("model", [torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.GELU()), Reshaping()],
                         ids=["whole", "partitioned"])
def test_dynamic_batch_size_on_whole_and_partitioned_models(model):
    torch.manual_seed(0)
    model, x = model.eval(), torch.randn(4, 16)
    traced = _trace(model, x, dynamic_batch_size=True)
    fixed = _trace(model, x)
    for n in (4, 10, 1, 13):
        big = torch.randn(n, 16)
        got = traced(big)
        assert got.shape[0] == n
        assert torch.equal(got, _chunked(fixed, big, 4)), n
        with torch.no_grad():
            torch.testing.assert_close(got, model(big), rtol=0.05, atol=0.05)  # bf16 casts (--fast-math all)
    with pytest.raises(Exception, match=r"model was compiled for shape \[4, 16\].*trace with torch_neuron\.trace"
                                        r"\(\.\.\., dynamic_batch_size=True\)"):
        fixed(torch.randn(10, 16))
    with pytest.raises(Exception, match="only changes dimension 0|compiled for shape"):
        traced(torch.randn(10, 15))


def test_dynamic_batch_size_survives_save_and_load_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    model, x = Reshaping().eval(), torch.randn(4, 16)
    traced = _trace(model, x, dynamic_batch_size=True)
    assert "aten::_fft_r2c" in _kinds(traced)
    path, data = tmp_path / "m.pt", tmp_path / "x.pt"
    torch.jit.save(traced, str(path))
    big = torch.randn(10, 16)
    torch.save({"x": big, "want": traced(big)}, str(data))
    code = (f"import torch, torch_neuron_emu; m = torch.jit.load({str(path)!r}); d = torch.load({str(data)!r}); "
            "assert torch.equal(m(d['x']), d['want']); assert m(d['x'][:3]).shape[0] == 3; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=600)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]
