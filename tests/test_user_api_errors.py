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
    traced = torch_neuronx_emu.trace(M(), x)
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
