"""The model matrix (tests/model_matrix.py, neuron_emu/vision_models.py): built with library defaults, traced, and
compared with eager at fp32 tolerance; a few under --auto-cast matmult against the auto-cast reference.
Tiny configurations here; the published sizes under -m slow.

Tolerances: rtol 1e-4 / atol 1e-5 is fp32 with another summation order (OpenBLAS blocks, our reductions) — the same
argument as tests/test_hf_defaults.py; auto-cast: within 1e-5 of the reference relative to the output's scale."""
import warnings

import pytest
import torch
from torch.utils import _pytree as pytree

import torch_neuronx_emu
from neuron_emu.compiler import compile_graph
from neuron_emu.compiler.capture import _to_plain, capture
from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.compiler.reference import run_reference
from neuron_emu.runtime.model import LoadedModel
from neuron_emu.vision_models import TINY_VISION_BUILDERS, VISION_BUILDERS

transformers = pytest.importorskip("transformers")
from model_matrix import HF  # noqa: E402

TOL = dict(rtol=1e-4, atol=1e-5)


def _check(model, inputs, tol=TOL):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch_neuronx_emu.trace(model, inputs)
    got = traced(*inputs)
    with torch.no_grad():
        want = _to_plain(model(*inputs))  # the layout a traced module returns (ModelOutput -> dict, cache -> tuples)
    assert pytree.tree_structure(got) == pytree.tree_structure(want)
    for g, w in zip(pytree.tree_leaves(got), pytree.tree_leaves(want)):
        torch.testing.assert_close(g, w, **tol)


@pytest.mark.parametrize("name", list(HF))
def test_hf_tiny_default_settings(name):
    torch.manual_seed(0)
    model, inputs = HF[name]()
    if getattr(model, "_supports_sdpa", False) and hasattr(model, "config"):
        assert model.config._attn_implementation == "sdpa"  # library default, not overridden
    _check(model, inputs)


@pytest.mark.parametrize("name", list(TINY_VISION_BUILDERS))
def test_vision_tiny(name):
    _check(*TINY_VISION_BUILDERS[name]())


@pytest.mark.parametrize("name", ["t5", "swin", "unet_tiny"])
def test_autocast_matmult_matches_reference(name):
    torch.manual_seed(0)
    model, inputs = HF[name]() if name in HF else TINY_VISION_BUILDERS[name]()
    graph, eager = capture(model, inputs)
    options = parse_compiler_args("--auto-cast matmult --auto-cast-type bf16")
    got = LoadedModel(compile_graph(graph, options).blob)(list(inputs))
    ref = run_reference(graph, options, inputs)
    for g, r, f in zip(got, ref, pytree.tree_leaves(eager)):
        scale = max(f.abs().max().item(), 1e-6)
        # fp32 summation order differs between the emulator and the oracle's torch GEMMs, and between CPUs; in
        # a deep model (Swin) that can move a value near a bf16 midpoint across it. Allow 1e-5 of the output's
        # scale, or 2% of what the cast itself changed (the emulator must reproduce the cast, not the noise).
        cast_effect = (r - f).abs().max().item() / scale
        assert (g - r).abs().max().item() / scale <= max(1e-5, 0.02 * cast_effect)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HF))
def test_hf_full_size(name):
    torch.manual_seed(0)
    _check(*HF[name](full=True), tol=dict(rtol=1e-3, atol=1e-4))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in VISION_BUILDERS if n not in TINY_VISION_BUILDERS])
def test_vision_full_size(name):
    _check(*VISION_BUILDERS[name](), tol=dict(rtol=1e-3, atol=1e-4))
