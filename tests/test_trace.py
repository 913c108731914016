"""torch_neuronx_emu.trace end to end: numerics vs PyTorch eager, save/load, API behaviour."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.compiler import CompilationError
from neuron_emu.compiler.options import CompilerArgumentError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flat(out):
    return [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def _check_fp32(model, inputs, **kw):
    traced = torch_neuronx_emu.trace(model, inputs, **kw)
    with torch.no_grad():
        expected = model(*inputs)
    got = traced(*inputs)
    exp, g = _flat(expected), _flat(got)
    assert len(exp) == len(g)
    for e, o in zip(exp, g):
        assert o.shape == e.shape and o.dtype == e.dtype
        torch.testing.assert_close(o, e, rtol=1e-4, atol=1e-5)
    return traced, got


def test_mlp_matches_eager():
    _check_fp32(*zoo.mlp())


def test_returns_script_module_with_forward_v2():
    model, inputs = zoo.mlp(batch=2)
    traced = torch_neuronx_emu.trace(model, inputs)
    assert isinstance(traced, torch.jit.ScriptModule)
    assert "neuron::forward_v2" in str(traced.graph)


def test_hint_is_trace():
    assert torch_neuronx_emu.hint is torch_neuronx_emu.trace


@pytest.mark.parametrize("builder", ["dict_output_model", "tuple_output_model"])
def test_structured_outputs(builder):
    model, inputs = getattr(zoo, builder)()
    traced, got = _check_fp32(model, inputs)
    with torch.no_grad():
        expected = model(*inputs)
    assert type(got) is type(expected) or isinstance(got, dict)
    if isinstance(expected, dict):
        assert list(got.keys()) == list(expected.keys())


def test_small_resnet_matches_eager():
    _check_fp32(*zoo.resnet())


@pytest.mark.parametrize("builder", [lambda: zoo.bert("tiny", seq=16), lambda: zoo.gpt2("tiny", seq=16),
                                     lambda: zoo.vit("tiny"), lambda: zoo.electra("tiny", seq=16)],
                         ids=["bert", "gpt2", "vit", "electra"])
def test_tiny_transformers_match_eager(builder):
    _check_fp32(*builder())


def test_unsupported_op_names_op_and_source():
    model, inputs = zoo.unsupported_op_model()
    with pytest.raises(CompilationError) as e:
        torch_neuronx_emu.trace(model, inputs)
    msg = str(e.value)
    assert "aten::" in msg and "not supported" in msg and "zoo.py" in msg
    shape = tuple(inputs[0].shape)
    assert f"input shapes [{shape}" in msg and "PartitionerConfig" in msg  # the shapes, and what to do


def test_wrong_shape_states_expected_and_got():
    model, inputs = zoo.mlp(batch=4)
    traced = torch_neuronx_emu.trace(model, inputs)
    with pytest.raises(RuntimeError, match=r"shape \[3, 784\].*compiled for shape \[4, 784\]"):
        traced(torch.randn(3, 784))
    with pytest.raises(RuntimeError, match=r"dtype torch.float64.*dtype torch.float32"):
        traced(torch.randn(4, 784, dtype=torch.float64))


def test_bad_compiler_flag_names_flag():
    model, inputs = zoo.mlp(batch=2)
    with pytest.raises(CompilerArgumentError, match="--auto-cast-typ"):
        torch_neuronx_emu.trace(model, inputs, compiler_args="--auto-cast-typ bf16")
    with pytest.raises(CompilerArgumentError, match="--auto-cast"):
        torch_neuronx_emu.trace(model, inputs, compiler_args=["--auto-cast", "sometimes"])


def test_warnings_for_positionals_and_unknown_kwargs(tmp_path):
    model, inputs = zoo.mlp(batch=2)
    with pytest.warns(DeprecationWarning, match="Received 3 positional arguments but expected 2"):
        torch_neuronx_emu.trace(model, inputs, str(tmp_path))
    with pytest.warns(UserWarning, match=r"Unexpected keyword arguments: \['frobnicate'\]"):
        torch_neuronx_emu.trace(model, inputs, frobnicate=1)


def test_compiler_workdir_artifacts(tmp_path):
    model, inputs = zoo.mlp(batch=2)
    torch_neuronx_emu.trace(model, inputs, compiler_workdir=str(tmp_path), compiler_args="--auto-cast matmult -O1")
    for f in ["command.txt", "model/graph.txt", "program.txt", "graph.neff", "log-neuron-cc.txt"]:
        assert (tmp_path / f).stat().st_size > 0, f
    assert "--auto-cast matmult" in (tmp_path / "command.txt").read_text()
    assert "aten::addmm" in (tmp_path / "model/graph.txt").read_text()
    assert "MatMul" in (tmp_path / "program.txt").read_text()
    assert "Compiler status PASS" in (tmp_path / "log-neuron-cc.txt").read_text()


def test_last_call_summary():
    model, inputs = zoo.mlp(batch=8)
    traced = torch_neuronx_emu.trace(model, inputs)
    traced(*inputs)
    s = torch_neuronx_emu.last_call()
    assert s.latency_s > 0
    te = s.engines["TensorE"]
    assert te.busy_s > 0 and 0 < te.utilization <= 1 and te.flops == 2 * 8 * (784 * 512 + 512 * 256 + 256 * 10)
    tl = s.timeline()
    assert len(tl["start_ns"]) == len(tl["source_op"]) and "aten::addmm" in tl["source_op"]


def test_save_load_fresh_process(tmp_path):
    model, inputs = zoo.dict_output_model()
    traced = torch_neuronx_emu.trace(model, inputs)
    path = tmp_path / "m.pt"
    torch.jit.save(traced, str(path))
    torch.save(inputs, str(tmp_path / "in.pt"))
    expected = traced(*inputs)
    torch.save(expected, str(tmp_path / "expected.pt"))
    script = textwrap.dedent(f"""
        import sys, torch
        try:
            torch.jit.load({str(path)!r})
        except RuntimeError as e:
            assert "Unknown builtin op: neuron::forward_v2" in str(e), e
        else:
            sys.exit("loaded without the import")
        import torch_neuronx_emu
        m = torch.jit.load({str(path)!r})
        x = torch.load({str(tmp_path / 'in.pt')!r})
        exp = torch.load({str(tmp_path / 'expected.pt')!r})
        out = m(*x)
        for k in exp:
            assert torch.equal(out[k] if not isinstance(out[k], tuple) else out[k][0],
                               exp[k] if not isinstance(exp[k], tuple) else exp[k][0]), k
        print("OK")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


def test_attention_mask_not_baked_in():
    """Traced with no padding, run with padding: the mask must still apply (as under torch.jit.trace)."""
    model, (ids, mask, tt) = zoo.bert("tiny", seq=16)
    ones = torch.ones_like(mask)
    traced = torch_neuronx_emu.trace(model, (ids, ones, tt))
    with torch.no_grad():
        expected = model(ids, mask, tt)
    got = traced(ids, mask, tt)
    torch.testing.assert_close(got["last_hidden_state"], expected["last_hidden_state"], rtol=1e-4, atol=1e-5)


def test_op_without_lowering_names_op_shapes_source_and_what_to_do():
    class Histogram(torch.nn.Module):  # aten::histc: not rejected by neuronx-cc, not lowered by the emulator
        def forward(self, x):
            return torch.histc(x * 2, bins=4)

    with pytest.raises(CompilationError) as e:
        torch_neuronx_emu.trace(Histogram().eval(), torch.randn(8, 3))
    msg = str(e.value)
    assert "aten::histc" in msg and "input shapes [(8, 3)]" in msg and "test_trace.py" in msg
    assert "partitioner_config=torch_neuronx.PartitionerConfig()" in msg
