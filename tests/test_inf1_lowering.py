"""NeuronCore-v1 lowering: transformers (library defaults) compile for v1 using only the engines v1 has (gathers by
DMA with indirect addressing, selects on VectorE, fills by DMA) and match the compiler's eager reference with the
same casts (`--fast-math all`: bf16) exactly; a program asking v1 for GpSimd is refused at compile time naming the
op; neuron-cc's --fast-math values and precedence; the model size limit.

Tolerance: the v1 program and the reference round the same values at the same points, so they agree to fp32
summation-order noise (1e-5 of the output's scale); the reference differs from fp32 eager by the bf16 casts (>10x)."""
import sys
import warnings

import pytest
import torch
from torch.utils import _pytree as pytree

import torch_neuron_emu
from neuron_emu.compiler import CompilationError, compile_graph
from neuron_emu.compiler.builder import ProgramBuilder
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.options import CompilerArgumentError
from neuron_emu.compiler.reference import run_reference
from neuron_emu.hardware import NEURONCORE_V1
from neuron_emu.isa import schema
from neuron_emu.runtime.model import LoadedModel
from torch_neuron_emu.model_size import ModelSizeError
from torch_neuron_emu.trace import parse_neuron_cc_args

transformers = pytest.importorskip("transformers")
V, SEQ = 100, 8


def _ids():
    ids = torch.randint(0, V, (2, SEQ))
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, 5:] = 0  # padding: the boolean mask SDPA receives (a select)
    return ids, mask


def _bert():
    return transformers.BertModel(transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                          intermediate_size=64, vocab_size=V)).eval()


def _electra():
    return transformers.ElectraForPreTraining(transformers.ElectraConfig(
        hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        vocab_size=V)).eval()


def _distilbert():
    return transformers.DistilBertModel(transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                                                      vocab_size=V)).eval()


MODELS = {"bert": _bert, "electra": _electra, "distilbert": _distilbert}


def _compile_v1(model, inputs, args=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph, eager = capture(model, inputs)
    options = parse_neuron_cc_args(args)
    return graph, eager, options, compile_graph(graph, options, generation=1)


@pytest.mark.parametrize("name", list(MODELS))
def test_transformer_on_v1_matches_reference_with_same_casts(name):
    model, inputs = MODELS[name](), _ids()
    if model._supports_sdpa:  # library default (ELECTRA has no SDPA path in transformers 4.x)
        assert model.config._attn_implementation == "sdpa"
    graph, eager, options, compiled = _compile_v1(model, inputs)
    engines = {schema(line.split()[2]).engine for line in compiled.program_text.splitlines()}
    assert engines <= set(NEURONCORE_V1.engines) and "GpSimdE" not in engines
    ops = {line.split()[2] for line in compiled.program_text.splitlines()}
    assert "DmaGather" in ops  # embedding lookups by indirect DMA
    if model.config._attn_implementation == "sdpa":
        assert "VecSelect" in ops  # SDPA's boolean mask on VectorE (eager attention adds a float mask instead)
    got = LoadedModel(compiled.blob)(list(inputs))
    ref = run_reference(graph, options, inputs)
    for g, r, f in zip(got, ref, pytree.tree_leaves(eager)):
        scale = f.abs().max().item()
        err_ref = (g - r).abs().max().item() / scale
        err_fp32 = (g - f).abs().max().item() / scale
        assert err_ref <= 1e-5, (err_ref, err_fp32)
        assert err_fp32 > 10 * max(err_ref, 1e-7), "--fast-math all did not cast"


def test_gather_and_fill_kernels_are_exact_on_v1():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Parameter(torch.randn(50, 6))

        def forward(self, idx, x):
            e = torch.index_select(self.table, 0, idx) + torch.zeros_like(x)
            return torch.where(x > 0, e, torch.nn.functional.pad(x, (1, 1), value=3.0)[:, 1:-1])

    idx, x = torch.tensor([3, 0, 49, 3]), torch.randn(4, 6)
    graph, eager, options, compiled = _compile_v1(M().eval(), (idx, x), "--fast-math none")
    ops = {line.split()[2] for line in compiled.program_text.splitlines()}
    assert not ops & {"Iota", "Gather", "Select"} and {"DmaGather", "VecSelect"} <= ops
    got = LoadedModel(compiled.blob)([idx, x])[0]
    assert torch.equal(got, eager)  # no matmul: nothing is cast under --fast-math none


def test_out_of_range_index_is_an_error_naming_the_index():
    m = torch.nn.Embedding(10, 4).eval()
    idx = torch.tensor([1, 2])
    _, _, _, compiled = _compile_v1(m, (idx,))
    with pytest.raises(Exception, match=r"DmaGather: index 12 at position 1 is out of range for a table of 10 rows"):
        LoadedModel(compiled.blob)([torch.tensor([1, 12])])


def test_engine_the_core_lacks_is_refused_at_compile_time_naming_the_op(monkeypatch):
    monkeypatch.setattr(ProgramBuilder, "has_engine", lambda self, name: True)  # a lowering that ignores the core
    with pytest.raises(CompilationError, match=r"cannot compile aten::embedding for NeuronCore-v1: it was lowered to "
                                               r"Gather on GpSimdE, which NeuronCore-v1 does not have"):
        _compile_v1(torch.nn.Embedding(10, 4).eval(), (torch.tensor([1, 2]),))


@pytest.mark.parametrize("args,mode", [
    (None, ("all", "bf16")), ("--fast-math all", ("all", "bf16")), ("--fast-math none", ("matmult", "bf16")),
    ("--fast-math=none", ("matmult", "bf16")), (["--fast-math", "fp32-cast-matmult-fp16", "no-fast-relayout"],
                                                ("matmult", "fp16")),
    ("--fast-math fp32-cast-all-fp16", ("all", "fp16")), ("--fast-math fp32-cast-matmult", ("matmult", "bf16")),
    ("--fast-math fp32-cast-matmult-bf16 fast-relayout", ("matmult", "bf16")),
    ("--fast-math all --fp32-cast matmult-fp16", ("matmult", "fp16")),  # --fp32-cast has priority
    ("--fp32-cast all-fp16", ("all", "fp16")), ("--fast-math none --fp32-cast all", ("all", "bf16")),
])
def test_fast_math_values_and_precedence(args, mode):
    o = parse_neuron_cc_args(args)
    assert (o.auto_cast, o.auto_cast_type) == mode
    assert o.auto_cast != "none"  # matmuls never run in fp32 on Inf1


@pytest.mark.parametrize("args,match", [("--fast-math all none", "mutually exclusive"),
                                        ("--fast-math fp64", "invalid choice: 'fp64'"),
                                        ("--fp32-cast bf16", "invalid choice"), ("--bogus 1", "unrecognized")])
def test_fast_math_errors(args, match):
    with pytest.raises(CompilerArgumentError, match=match):
        parse_neuron_cc_args(args)


def test_model_size_limit_names_size_and_limit(monkeypatch):
    import torch_neuron_emu.model_size as ms

    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU()).eval()
    x = torch.randn(2, 256)
    real = ms.check_model_size
    monkeypatch.setattr(sys.modules["torch_neuron_emu.trace"], "check_model_size",
                        lambda c, sep: real(c, sep, limit=200_000))  # a 263 KB model over a 200 KB slice
    with pytest.raises(ModelSizeError, match=r"constants are 0\.00 GB, over the 0\.00 GB.*separate_weights=True"):
        torch_neuron_emu.trace(model, x)
    traced = torch_neuron_emu.trace(model, x, separate_weights=True)
    assert traced(x).shape == (2, 256)
    size = ms.weight_bytes(_compile_v1(model, (x,))[3])
    assert size >= 256 * 256 * 4


class _Sort(torch.nn.Module):
    def forward(self, x):
        return torch.sort(x * 2).values


def test_inf1_compile_errors_and_logs_use_neuron_cc_wording(monkeypatch, tmp_path, caplog):
    """neuron-api.md 1.2/1.9: Inf1 compiles are neuron-cc's (its errors, command line and work dir); Inf2 keeps
    neuronx-cc's wording for the same failure."""
    import logging

    from neuron_emu.compiler import artifact
    from neuron_emu.compiler.options import parse_compiler_args

    monkeypatch.setattr(ProgramBuilder, "has_engine", lambda self, name: True)  # a lowering that ignores the core
    emb, idx = torch.nn.Embedding(10, 4).eval(), torch.tensor([1, 2])
    with pytest.raises(CompilationError) as e1:
        _compile_v1(emb, (idx,))
    assert str(e1.value).startswith("neuron-cc: error: cannot compile aten::embedding") and "neuronx-cc" not in str(
        e1.value)
    v2 = compile_graph(capture(emb, (idx,))[0], parse_compiler_args(None), generation=2)
    assert artifact.deserialize(v2.blob)[0]["compiler"]["name"] == "neuronx-cc"
    sort = _Sort()  # an op both compilers reject: each words it as itself, with its own SDK's remedy
    with pytest.raises(CompilationError, match=r"^neuronx-cc: error: operator aten::sort is not supported by "
                                               r"neuronx-cc .*partitioner_config"):
        compile_graph(capture(sort, (torch.randn(5),))[0], parse_compiler_args(None), generation=2)
    with pytest.raises(CompilationError, match=r"^neuron-cc: error: operator aten::sort is not supported by "
                                               r"neuron-cc .*fallback=True"):
        _compile_v1(sort, (torch.randn(5),))
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()
    with caplog.at_level(logging.INFO, logger="Neuron"):
        traced = torch_neuron_emu.trace(model, torch.randn(2, 8), compiler_workdir=str(tmp_path),
                                        compiler_args="--fast-math none")
    assert "Compiling with command line: 'neuron-cc compile <tmpdir>/graph_def.pb --framework TENSORFLOW" in caplog.text
    assert (tmp_path / "command.txt").read_text().startswith("neuron-cc compile ")
    blob = dict(traced.named_buffers())["neff"]
    assert artifact.deserialize(blob)[0]["compiler"]["name"] == "neuron-cc"
