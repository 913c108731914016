"""--auto-cast numerics: equal to an eager reference applying the same casts, and really different
from fp32 (so the cast is not a no-op)."""
import pytest
import torch

from neuron_emu import zoo
from neuron_emu.compiler import compile_graph
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.compiler.reference import run_reference
from neuron_emu.runtime.model import LoadedModel

# One bf16 ulp is 2^-8 relative; a different fp32 summation order may flip a rounding: allow a few.
ULP = {"bf16": 2 ** -8, "fp16": 2 ** -11, "tf32": 2 ** -11, "fp8_e4m3": 2 ** -4}


def _run(model, inputs, args):
    graph, eager = capture(model, inputs)
    options = parse_compiler_args(args)
    compiled = compile_graph(graph, options)
    got = LoadedModel(compiled.blob)(list(inputs))
    ref = run_reference(graph, options, inputs)
    fp32 = [t for t in torch.utils._pytree.tree_leaves(eager) if isinstance(t, torch.Tensor)]
    return got, ref, fp32


@pytest.mark.parametrize("cast_type", ["bf16", "fp16", "tf32", "fp8_e4m3"])
@pytest.mark.parametrize("mode", ["matmult", "all"])
@pytest.mark.parametrize("builder", [lambda: zoo.mlp(batch=4), lambda: zoo.bert("tiny", seq=16)], ids=["mlp", "bert"])
def test_autocast_matches_reference(builder, mode, cast_type):
    model, inputs = builder()
    got, ref, fp32 = _run(model, inputs, f"--auto-cast {mode} --auto-cast-type {cast_type}")
    for g, r, f in zip(got, ref, fp32):
        if not g.dtype.is_floating_point:
            continue
        scale = f.abs().max().item() + 1e-6
        err_ref = (g - r).abs().max().item() / scale
        err_fp32 = (g - f).abs().max().item() / scale
        tol = 8 * ULP[cast_type] if mode == "all" else 1e-5
        if mode == "all" and cast_type != "fp8_e4m3":
            tol = 4 * ULP[cast_type]
        assert err_ref <= tol, (err_ref, err_fp32)
        assert err_fp32 > 2 * err_ref, "the cast did not change the result"


def test_none_is_fp32():
    model, inputs = zoo.mlp(batch=4)
    got, ref, fp32 = _run(model, inputs, "--auto-cast none")
    torch.testing.assert_close(got[0], fp32[0], rtol=1e-4, atol=1e-5)
