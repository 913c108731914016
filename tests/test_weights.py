"""Separate weights (torch_neuronx.trace(inline_weights_to_neff=False)) and torch_neuronx.replace_weights
(neuron-api.md 2.1, 2.5). Oracle: eager PyTorch with the same weights."""
import io
import subprocess
import sys
import os

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.compiler import artifact

# fp32 through the emulated engines vs eager: same products, different summation order (argued in test_trace)
TOL = dict(rtol=1e-5, atol=1e-5)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mlp(seed):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                            torch.nn.Linear(32, 4)).eval()
    with torch.no_grad():   # non-trivial running statistics: buffers are weights too
        m[1].running_mean.normal_()
        m[1].running_var.uniform_(0.5, 2.0)
    return m


def _roundtrip(traced):
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    return torch.jit.load(buf)


@pytest.fixture(scope="module")
def separate():
    m = _mlp(0)
    x = torch.randn(3, 16)
    return m, x, torch_neuronx_emu.trace(m, x, inline_weights_to_neff=False)


def test_separate_weights_match_eager_and_are_not_in_the_artifact(separate):
    m, x, t = separate
    torch.testing.assert_close(t(x), m(x).detach(), **TOL)
    header, sections = artifact.deserialize(t.neff)
    assert header["weights"] == [[k] for k in m.state_dict() if m.state_dict()[k].is_floating_point()]
    consts = sum(a.size for k, a in sections.items() if k.startswith("const."))
    assert consts < m[0].weight.numel()   # no weight matrix inside the artifact
    inlined = torch_neuronx_emu.trace(m, x)
    assert sum(a.size for k, a in artifact.deserialize(inlined.neff)[1].items() if k.startswith("const.")) > consts


@pytest.mark.parametrize("as_dict", [False, True])
def test_replace_weights_changes_results(as_dict):
    m, m2 = _mlp(0), _mlp(1)
    x = torch.randn(3, 16)
    t = torch_neuronx_emu.trace(m, x, inline_weights_to_neff=False)
    assert torch_neuronx_emu.replace_weights(t, m2.state_dict() if as_dict else m2) is None
    torch.testing.assert_close(t(x), m2(x).detach(), **TOL)
    assert not torch.allclose(t(x), m(x))
    torch.testing.assert_close(m(x), _mlp(0)(x))   # the original model is untouched


def test_replaced_weights_survive_save_and_load_and_replace_after_load(separate):
    m, x, _ = separate
    m2 = _mlp(2)
    t = torch_neuronx_emu.trace(m, x, inline_weights_to_neff=False)
    torch_neuronx_emu.replace_weights(t, m2)
    loaded = _roundtrip(t)
    torch.testing.assert_close(loaded(x), m2(x).detach(), **TOL)
    torch_neuronx_emu.replace_weights(loaded, m.state_dict())
    torch.testing.assert_close(loaded(x), m(x).detach(), **TOL)


def test_missing_or_misshaped_weight_names_it_and_changes_nothing(separate):
    m, x, _ = separate
    t = torch_neuronx_emu.trace(m, x, inline_weights_to_neff=False)
    sd = _mlp(3).state_dict()
    missing = {k: v for k, v in sd.items() if k != "1.running_var"}
    with pytest.raises(ValueError, match=r"weight '1.running_var' \(shape \[32\]\) is missing"):
        torch_neuronx_emu.replace_weights(t, missing)
    bad = dict(sd, **{"3.weight": torch.zeros(4, 31)})
    with pytest.raises(ValueError, match=r"weight '3.weight' has shape \[4, 31\], but the model was traced with "
                                         r"shape \[4, 32\]"):
        torch_neuronx_emu.replace_weights(t, bad)
    torch.testing.assert_close(t(x), m(x).detach(), **TOL)   # checked before any weight was copied
    with pytest.raises(TypeError, match="weights must be a torch.nn.Module or a state dict"):
        torch_neuronx_emu.replace_weights(t, [sd["0.weight"]])


def test_replace_weights_on_an_inlined_trace_warns(separate):
    m, x, _ = separate
    t = torch_neuronx_emu.trace(m, x)
    with pytest.warns(UserWarning, match="inline_weights_to_neff=True"):
        torch_neuronx_emu.replace_weights(t, _mlp(1))
    torch.testing.assert_close(t(x), m(x).detach(), **TOL)


def test_extra_and_tied_entries_are_accepted():
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(8, 8)
            self.b = torch.nn.Linear(8, 8)
            self.b.weight = self.a.weight   # tied: one weight, two state-dict names

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    m, m2 = Tied().eval(), Tied().eval()
    x = torch.randn(2, 8)
    t = torch_neuronx_emu.trace(m, x, inline_weights_to_neff=False)
    assert ["a.weight", "b.weight"] in artifact.deserialize(t.neff)[0]["weights"]
    sd = {k: v for k, v in m2.state_dict().items() if k != "a.weight"}   # the tie under its other name
    sd["unrelated.buffer"] = torch.ones(3)
    torch_neuronx_emu.replace_weights(t, sd)
    torch.testing.assert_close(t(x), m2(x).detach(), **TOL)


def test_dynamic_batch_splits_inputs_not_weights(separate):
    m, x, _ = separate
    t = torch_neuronx_emu.trace(m, x, inline_weights_to_neff=False)
    torch_neuronx_emu.dynamic_batch(t)
    big = torch.randn(7, 16)
    torch.testing.assert_close(t(big), m(big).detach(), **TOL)


def test_bert_tiny_replace_weights_from_second_state_dict():
    model, inputs = zoo.bert("tiny", seq=16)
    other, _ = zoo.bert("tiny", seq=16, seed=1)
    t = torch_neuronx_emu.trace(model, inputs, inline_weights_to_neff=False)
    torch_neuronx_emu.replace_weights(t, other.state_dict())
    out = t(*inputs)
    with torch.no_grad():
        ref = other(*inputs)
    torch.testing.assert_close(out["last_hidden_state"], ref.last_hidden_state, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["pooler_output"], ref.pooler_output, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_bert_base_replace_weights_from_second_state_dict(tmp_path):
    """The issue's case: BERT-base traced with separate weights, saved, loaded in a fresh process, weights
    replaced from a second model's state dict (a safetensors-like plain dict): matches eager with those weights."""
    script = f"""
import torch, torch_neuronx_emu
from neuron_emu import zoo
model, inputs = zoo.bert("base", seq=128)
t = torch_neuronx_emu.trace(model, inputs, inline_weights_to_neff=False)
torch.jit.save(t, {str(tmp_path / 'bert.pt')!r})
del t, model
other, _ = zoo.bert("base", seq=128, seed=1)
t = torch.jit.load({str(tmp_path / 'bert.pt')!r})
torch_neuronx_emu.replace_weights(t, {{k: v.clone() for k, v in other.state_dict().items()}})
out = t(*inputs)
with torch.no_grad():
    ref = other(*inputs)
torch.testing.assert_close(out["last_hidden_state"], ref.last_hidden_state, rtol=1e-4, atol=1e-4)
print("OK")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
