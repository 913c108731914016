"""Hugging Face models built with library defaults (SDPA attention, KV cache on, no attn_implementation override)
trace and match eager; fused attention's ATen forms against F.scaled_dot_product_attention; torch.gather.

Tolerances: rtol 1e-4 / atol 1e-5 is fp32 with a different summation order (OpenBLAS blocks, our softmax); the
attention composition rounds differently from the fused flash kernel (online softmax) by a few ulp."""
import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.utils import _pytree as pytree

import torch_neuronx_emu
from neuron_emu.compiler import compile_graph
from neuron_emu.compiler import capture as capture_module
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.compiler.reference import run_reference
from neuron_emu.runtime.model import LoadedModel

transformers = pytest.importorskip("transformers")

TOL = dict(rtol=1e-4, atol=1e-5)
SEQ, VOCAB = 8, 100


def _trace(model, inputs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch_neuronx_emu.trace(model, inputs, **kw)


def _bert():
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                  vocab_size=VOCAB)
    ids = torch.randint(0, VOCAB, (2, SEQ))
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, 5:] = 0  # padding: exercises the boolean mask SDPA receives
    return transformers.BertModel(cfg).eval(), (ids, mask)


def _roberta():
    cfg = transformers.RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                     vocab_size=VOCAB)
    ids = torch.randint(3, VOCAB, (2, SEQ))  # position ids come from a cumsum over ids != pad (1), via gather
    ids[1, 6:] = cfg.pad_token_id
    return transformers.RobertaModel(cfg).eval(), (ids,)


def _gpt2():
    cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=VOCAB, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval(), (torch.randint(0, VOCAB, (1, SEQ)),)


def _llama():
    cfg = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   intermediate_size=64, vocab_size=VOCAB, max_position_embeddings=64,
                                   bos_token_id=0, eos_token_id=0)
    return transformers.LlamaForCausalLM(cfg).eval(), (torch.randint(0, VOCAB, (1, SEQ)),)


def _qwen2():
    cfg = transformers.Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   intermediate_size=64, vocab_size=VOCAB, max_position_embeddings=64,
                                   bos_token_id=0, eos_token_id=0)
    return transformers.Qwen2ForCausalLM(cfg).eval(), (torch.randint(0, VOCAB, (1, SEQ)),)


def _eager_plain(out):
    """Eager output in the traced module's layout: ModelOutput -> dict, or its to_tuple() when it holds a cache,
    whose layers become (key, value) pairs."""
    def cache(c):
        if isinstance(c, transformers.EncoderDecoderCache):
            return tuple(a + b for a, b in zip(cache(c.self_attention_cache), cache(c.cross_attention_cache)))
        return tuple((layer.keys, layer.values) for layer in c.layers)
    if isinstance(out, transformers.utils.ModelOutput):
        vals = [cache(v) if isinstance(v, transformers.Cache) else v for v in out.values()]
        if any(isinstance(v, tuple) for v in vals):
            return tuple(vals)
        return dict(zip(out.keys(), vals))
    return out


def _bart():  # encoder-decoder: an EncoderDecoderCache comes back as (self k, self v, cross k, cross v) per layer
    cfg = transformers.BartConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                  decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=VOCAB,
                                  max_position_embeddings=64)
    return transformers.BartModel(cfg).eval(), (torch.randint(3, VOCAB, (1, SEQ)),)


def _falcon():  # multi-query heads split with x[..., [-2], :]: advanced indexing after slices, negative index
    cfg = transformers.FalconConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=VOCAB)
    return transformers.FalconForCausalLM(cfg).eval(), (torch.randint(0, VOCAB, (1, SEQ)),)


def _bloom():  # its GeLU is an old-style autograd.Function (no setup_context)
    cfg = transformers.BloomConfig(hidden_size=32, n_layer=2, n_head=2, vocab_size=VOCAB)
    return transformers.BloomForCausalLM(cfg).eval(), (torch.randint(0, VOCAB, (1, SEQ)),)


BUILDERS = {"bert": _bert, "roberta": _roberta, "gpt2": _gpt2, "llama": _llama, "qwen2": _qwen2, "bart": _bart,
            "falcon": _falcon, "bloom": _bloom}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_default_model_matches_eager(name):
    model, inputs = BUILDERS[name]()
    if model._supports_sdpa:  # the library default, not overridden
        assert model.config._attn_implementation == "sdpa"
    traced = _trace(model, inputs)
    got = traced(*inputs)
    with torch.no_grad():
        want = _eager_plain(model(*inputs))
    assert pytree.tree_structure(got) == pytree.tree_structure(want)
    for g, w in zip(pytree.tree_leaves(got), pytree.tree_leaves(want)):
        torch.testing.assert_close(g, w, **TOL)


def test_cache_output_layout_and_save_load_roundtrip():
    model, inputs = _gpt2()
    traced = _trace(model, inputs)
    logits, cache = traced(*inputs)
    assert len(cache) == 2 and all(len(layer) == 2 for layer in cache)  # per layer (key, value)
    assert cache[0][0].shape == (1, 2, SEQ, 16)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    again = loaded(*inputs)
    assert pytree.tree_structure(again) == pytree.tree_structure((logits, cache))
    for a, b in zip(pytree.tree_leaves(again), pytree.tree_leaves((logits, cache))):
        assert torch.equal(a, b)
    rebuilt = transformers.DynamicCache()  # the legacy layout rebuilds a cache for generation
    for i, (k, v) in enumerate(again[1]):
        rebuilt.update(k, v, i)
    assert rebuilt.get_seq_length() == SEQ


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_default_model_autocast_matmult_matches_reference(name):
    """--auto-cast matmult: both products inside attention read bf16 operands, as the reference states."""
    model, inputs = BUILDERS[name]()
    graph, eager = capture(model, inputs)
    options = parse_compiler_args("--auto-cast matmult --auto-cast-type bf16")
    got = LoadedModel(compile_graph(graph, options).blob)(list(inputs))
    ref = run_reference(graph, options, inputs)
    fp32 = pytree.tree_leaves(eager)
    for g, r, f in zip(got, ref, fp32):
        scale = f.abs().max().item()
        err_ref = (g - r).abs().max().item() / scale
        err_fp32 = (g - f).abs().max().item() / scale
        assert err_ref <= 1e-5, (err_ref, err_fp32)
        assert err_fp32 > 2 * err_ref, "the cast did not change the result"


# ---- fused attention against F.scaled_dot_product_attention ----

class _SDPA(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, q, k, v, *mask):
        kw = dict(self.kw)
        if mask:
            kw["attn_mask"] = mask[0]
        return F.scaled_dot_product_attention(q, k, v, **kw)


def _bool_mask():
    m = torch.rand(2, 1, 8, 6) > 0.3
    m[0, 0, 2] = False  # a fully masked row: eager gives zeros
    return m


def _float_mask():
    m = torch.randn(8, 6)
    m[3] = float("-inf")  # fully masked row through the additive mask
    return m


SDPA_CASES = {
    "plain": ({}, lambda: ()),
    "causal": (dict(is_causal=True), lambda: ()),
    "scale": (dict(scale=0.3), lambda: ()),
    "bool_mask": ({}, lambda: (_bool_mask(),)),
    "float_mask": ({}, lambda: (_float_mask(),)),
    "head_mask_and_scale": (dict(scale=0.2), lambda: (torch.randn(1, 4, 8, 6),)),
}


@pytest.mark.parametrize("ev", [16, 8], ids=["flash", "math"])  # different head sizes send eager down the math path
@pytest.mark.parametrize("case", list(SDPA_CASES))
def test_sdpa_variants(case, ev):
    kw, mask = SDPA_CASES[case]
    q, k, v = torch.randn(2, 4, 8, 16), torch.randn(2, 4, 6, 16), torch.randn(2, 4, 6, ev)
    inputs = (q, k, v) + mask()
    model = _SDPA(**kw).eval()
    got = _trace(model, inputs)(*inputs)
    assert not torch.isnan(got).any()
    torch.testing.assert_close(got, model(*inputs), **TOL)


def test_sdpa_grouped_query():
    q, k, v = torch.randn(2, 4, 8, 16), torch.randn(2, 2, 6, 16), torch.randn(2, 2, 6, 16)
    model = _SDPA(enable_gqa=True, is_causal=True).eval()
    torch.testing.assert_close(_trace(model, (q, k, v))(q, k, v), model(q, k, v), **TOL)


class _FlashLse(torch.nn.Module):
    def forward(self, q, k, v, m):
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=m)


def test_flash_logsumexp_when_read():
    q, k, v = torch.randn(2, 4, 8, 16), torch.randn(2, 4, 6, 16), torch.randn(2, 4, 6, 16)
    m = torch.zeros(2, 1, 8, 6)
    m[0, 0, 2] = float("-inf")
    inputs = (q, k, v, m)
    got, want = _trace(_FlashLse(), inputs)(*inputs), _FlashLse()(*inputs)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **TOL)


# ---- torch.gather ----

class _Gather(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x, index):
        return torch.gather(x, self.dim, index)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_gather_is_exact(dim):
    x = torch.randn(3, 5, 7)
    index = torch.randint(0, x.shape[dim], (2, 4, 6))
    got = _trace(_Gather(dim), (x, index))(x, index)
    assert torch.equal(got, torch.gather(x, dim, index))


def test_gather_from_a_transposed_input():
    x = torch.randn(4, 6).t()
    index = torch.randint(0, 4, (6, 3))
    assert torch.equal(_trace(_Gather(1), (x, index))(x, index), torch.gather(x, 1, index))


# ---- advanced indexing after full slices, shape-only creation ops ----

class _Index(torch.nn.Module):
    def forward(self, x, i):
        return x[..., i, :], x[:, i], x[:, :, i.view(2, 2)], x.new_zeros(x.shape[1:]), torch.full_like(x, 2.0)


def test_index_after_slices_with_negative_indices():
    x, i = torch.randn(2, 8, 5, 16), torch.tensor([1, 0, -1, -2])
    got = _trace(_Index(), (x, i))(x, i)
    for g, w in zip(got, _Index()(x, i)):
        assert torch.equal(g, w)


class _Pad(torch.nn.Module):
    def forward(self, x):
        return F.pad(x, (1, 2)), F.pad(x, (1, -2, -1, 3, 0, 1), value=2.0), F.pad(x, (-1, -1))


def test_constant_pad_is_exact():
    x = torch.randn(2, 3, 5, 6)
    for g, w in zip(_trace(_Pad(), (x,))(x), _Pad()(x)):
        assert torch.equal(g, w)


class _OldStyle(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g


class _UsesOldStyle(torch.nn.Module):
    def forward(self, x):
        return _OldStyle.apply(x) + 1


def test_old_style_autograd_function_traces_its_forward():
    x = torch.randn(4, 8)
    torch.testing.assert_close(_trace(_UsesOldStyle(), (x,))(x), _UsesOldStyle()(x), **TOL)
    assert torch.autograd.Function.__dict__["apply"] is capture_module._function_apply  # restored after capture
    y = torch.randn(3, requires_grad=True)
    _OldStyle.apply(y).sum().backward()  # and autograd still works outside capture
    assert y.grad is not None


@pytest.mark.parametrize("shape,groups,affine", [((2, 6, 5, 4), 3, True), ((2, 8, 7), 2, False), ((3, 6), 2, True)])
def test_group_norm(shape, groups, affine):  # wav2vec2's feature encoder
    model = torch.nn.GroupNorm(groups, shape[1], affine=affine).eval()
    if affine:
        with torch.no_grad():
            model.weight.normal_()
            model.bias.normal_()
    x = torch.randn(shape) * 3 + 1
    torch.testing.assert_close(_trace(model, (x,))(x), model(x), **TOL)


class _Unfold(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x):
        return F.unfold(x, **self.kw)


@pytest.mark.parametrize("kw", [dict(kernel_size=(3, 1), padding=(1, 0)),  # ConvBERT's span-based conv
                                dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=(1, 2))])
def test_unfold_is_exact(kw):
    x = torch.randn(2, 3, 7, 6)
    assert torch.equal(_trace(_Unfold(**kw), (x,))(x), _Unfold(**kw)(x))


class _MaskByVmap(torch.nn.Module):
    """How transformers 4.x builds an eager attention mask (masking_utils.sdpa_mask_recent_torch): a mask function
    vmapped over index vectors, indexing a padding mask under TransformGetItemToIndex, which routes `t[idx]`
    through torch's ModIndex, a new-style autograd.Function (with setup_context)."""

    def forward(self, x, pad):
        from torch._dynamo._trace_wrapped_higher_order_op import TransformGetItemToIndex

        def allowed(q, k):
            return (k <= q) & pad[0, k]
        q = torch.arange(x.shape[-2])
        with TransformGetItemToIndex():
            mask = torch.vmap(torch.vmap(allowed, in_dims=(None, 0)), in_dims=(0, None))(q, q)
        return x.masked_fill(~mask, -1.0)


def test_new_style_autograd_function_under_vmap_traces_its_forward():
    x, pad = torch.randn(6, 6), torch.ones(1, 6, dtype=torch.bool)
    pad[0, 4:] = False
    got = _trace(_MaskByVmap(), (x, pad))(x, pad)
    torch.testing.assert_close(got, _MaskByVmap()(x, pad), rtol=0, atol=0)
    assert (got == -1.0).sum() == 6 * 6 - sum(min(i + 1, 4) for i in range(6))  # the mask did something
