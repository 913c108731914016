"""Bad or unusual input at the user API gets the real behaviour or a clear error, never a silent wrong answer."""
import pytest
import torch

import torch_neuronx_emu
from neuron_emu.compiler.options import CompilerArgumentError


def _linear():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3).eval(), torch.randn(2, 4)


@pytest.mark.parametrize("args,match", [(123, "string or a list of strings, got int 123"),
                                        (b"--auto-cast all", "got bytes"),
                                        (["--auto-cast", 1], "got list"),
                                        ("--auto-cast 'all", "cannot be split into flags: No closing quotation")])
def test_bad_compiler_args_name_the_argument(args, match):
    m, x = _linear()
    with pytest.raises(CompilerArgumentError, match=match):
        torch_neuronx_emu.trace(m, x, compiler_args=args)


@pytest.mark.parametrize("reduce,shape", [(lambda x: x.sum(1), (3, 0)), (lambda x: x.prod(1), (3, 0)),
                                          (lambda x: x.mean(1), (3, 0)), (lambda x: x.sum(), (0,)),
                                          (lambda x: x.any(1), (3, 0)), (lambda x: x.all(1), (3, 0))])
def test_reduction_over_an_empty_dimension_matches_eager(reduce, shape):
    class M(torch.nn.Module):
        def forward(self, x):
            return reduce(x)
    x = torch.randn(shape)
    traced = torch_neuronx_emu.trace(M().eval(), x)
    torch.testing.assert_close(traced(x), reduce(x), equal_nan=True)


def test_gradients_through_a_traced_model_are_refused_not_silent():
    m, x = _linear()
    traced = torch_neuronx_emu.trace(m, x)
    xg = x.clone().requires_grad_()
    y = traced(xg)
    with pytest.raises(RuntimeError, match="inference-only"):
        y.sum().backward()
    with torch.no_grad():
        assert not traced(xg).requires_grad


def test_meta_input_names_the_device():
    m, x = _linear()
    traced = torch_neuronx_emu.trace(m, x)
    with pytest.raises(RuntimeError, match="Input tensor 0 is on meta; traced Neuron models take CPU tensors"):
        traced(torch.empty(2, 4, device="meta"))


def test_in_place_input_mutation_warns_and_is_not_written_back():
    # The real traced model's inputs are read-only copies on the NeuronCore: the caller's tensor keeps its value.
    class M(torch.nn.Module):
        def forward(self, x):
            x[0].add_(1)            # through a view, so the write-back is a copy_ into the whole input
            return x * 2

    x = torch.zeros(2, 3)
    with pytest.warns(torch.jit.TracerWarning, match=r"mutates its input 0 in place \(last written at .*test_user_api_"
                                                     r"errors.py:\d+ in forward\).*does not write inputs back"):
        traced = torch_neuronx_emu.trace(M().eval(), x.clone())
    y = torch.randn(2, 3)
    expect = M()(y.clone())
    before = y.clone()
    torch.testing.assert_close(traced(y), expect)   # the result is eager's
    assert torch.equal(y, before)                   # the input is not written back


def test_no_warning_without_input_mutation(recwarn):
    class M(torch.nn.Module):
        def forward(self, x):
            y = x.clone()
            y.add_(1)               # in place on an intermediate: nothing to write back
            return y

    torch_neuronx_emu.trace(M().eval(), torch.zeros(2))
    assert not [w for w in recwarn if "mutates its input" in str(w.message)]


_NESTED = {
    "dict of tensors": (lambda x: {"a": x + 1, "b": x * 2}, dict),
    "dict of tuples": (lambda x: {"a": (x + 1, x), "b": (x * 2, x - 1)}, dict),
    "list of tensors": (lambda x: [x + 1, x * 2], list),
    "dict of lists": (lambda x: {"a": [x + 1, x * 2], "b": [x]}, tuple),
    "dict of dicts": (lambda x: {"a": {"c": x + 1}, "b": {"d": x * 3}}, tuple),
    "list of dicts": (lambda x: [{"a": x + 1}, {"a": x * 3}], tuple),
    "list of lists": (lambda x: [[x + 1], [x * 3, x]], tuple),
    "int keys": (lambda x: {0: x + 1, 1: x}, tuple),
    "deep": (lambda x: {"a": [{"b": (x, [x + 1, {"c": x * 2}])}], "d": x.sum(0)}, tuple),
    "empty list": (lambda x: (x + 1, []), tuple),
}


@pytest.mark.parametrize("name", list(_NESTED))
def test_nested_outputs_trace_save_and_load(name):
    """Any nesting of tensors in tuples, lists and dicts traces; a container torch.jit.trace cannot return becomes
    the tuple of its values (capture._to_plain), so the leaves are eager's, in eager's order, after save/load."""
    import io
    from torch.utils import _pytree as pytree
    fn, top = _NESTED[name]

    class M(torch.nn.Module):
        def forward(self, x):
            return fn(x)

    x = torch.randn(2, 3)
    traced = torch_neuronx_emu.trace(M().eval(), x)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    for out in (traced(x), loaded(x)):
        assert type(out) is top
        got, want = pytree.tree_leaves(out), pytree.tree_leaves(fn(x))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)
