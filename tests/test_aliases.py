"""torch_neuronx.trace(input_output_aliases=...) (neuron-api.md 2.1): an output written back into an input buffer
after every call, either an example input (the caller's tensor, e.g. a KV cache passed in) or a state tensor the
model owns (kept in the traced module, saved with it). Oracle: the same updates in eager PyTorch."""
import io

import pytest
import torch

import torch_neuronx_emu


class Cache(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("cache", torch.zeros(2, 4))
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        new = self.cache + x
        return self.lin(new), new


def _roundtrip(m):
    buf = io.BytesIO()
    torch.jit.save(m, buf)
    buf.seek(0)
    return torch.jit.load(buf)


def test_state_tensor_alias_accumulates_across_calls_and_saves():
    m = Cache().eval()
    x = torch.randn(2, 4)
    t = torch_neuronx_emu.trace(m, x, input_output_aliases={m.cache: 1})
    ref = Cache().eval()
    ref.load_state_dict(m.state_dict())
    for _ in range(3):
        out = t(x)
        with torch.no_grad():
            e, new = ref(x)
            ref.cache.copy_(new)
        torch.testing.assert_close(out[0], e, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[1], new)
    assert torch.count_nonzero(m.cache) == 0          # the model's own tensor is not touched: the trace owns a copy
    loaded = _roundtrip(t)                              # the state travels with the saved module
    torch.testing.assert_close(loaded(x)[1], ref.cache + x)


def test_example_input_alias_writes_into_the_callers_tensor():
    def step(x, cache):
        return x * 2, cache + x

    x, cache = torch.ones(2, 3), torch.zeros(2, 3)
    t = torch_neuronx_emu.trace(step, (x, cache), input_output_aliases={cache: 1})
    assert torch.count_nonzero(cache) == 0   # tracing did not write into the example
    mine = torch.zeros(2, 3)
    t(x, mine)
    t(x, mine)
    torch.testing.assert_close(mine, torch.full((2, 3), 2.0))


def test_alias_errors_name_the_output_and_shapes():
    def step(x, cache):
        return x.sum(0), cache + 1

    x, cache = torch.ones(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"output 0 has shape \[3\] and dtype torch.float32 but the input it is "
                                         r"aliased to has shape \[2, 3\]"):
        torch_neuronx_emu.trace(step, (x, cache), input_output_aliases={cache: 0})
    with pytest.raises(ValueError, match=r"output index 5 is not one of the model's 2 outputs"):
        torch_neuronx_emu.trace(step, (x, cache), input_output_aliases={cache: 5})
    with pytest.raises(ValueError, match="state tensor 0 .* is not read by the model"):
        torch_neuronx_emu.trace(step, (x, cache), input_output_aliases={torch.zeros(2, 3): 1})
    with pytest.raises(TypeError, match="input_output_aliases must be a dict"):
        torch_neuronx_emu.trace(step, (x, cache), input_output_aliases=[cache])
