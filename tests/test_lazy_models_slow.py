"""The seed's snippet on the lazy device: a model moved to the device runs under no_grad and matches CPU eager.
Small models in the fast suite; ResNet-50 and BERT-base with -m slow."""
import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm
from neuron_emu import zoo

from lazy_helpers import dev  # noqa: F401


def _snippet(model, inputs, dev):
    model = model.to(dev)
    with torch.no_grad():
        out = model(*[x.to(dev) for x in inputs])
    xm.mark_step()
    return out


def _first(out):
    if isinstance(out, torch.Tensor):
        return out
    return out["last_hidden_state"] if isinstance(out, dict) else out[0]


@pytest.mark.parametrize("name", ["resnet-small", "bert-tiny"])
def test_small_models(dev, name):
    model, inputs = zoo.resnet() if name == "resnet-small" else zoo.bert("tiny", seq=16)
    with torch.no_grad():
        want = _first(model(*inputs))
    got = _first(_snippet(model, inputs, dev)).cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert met.executed_fallback_ops() == []
    if name == "resnet-small":
        assert met.counter_value("UncachedCompile") == 1
    else:
        # transformers tests the attention mask with .item() before choosing SDPA's fast path: a real graph cut,
        # reported at transformers' own line
        from neuron_emu import lazy
        assert met.counter_value("UncachedCompile") == 2
        assert [c.split(" at ")[0] for c in lazy.graph_cuts()] == [".item()"]
        assert "masking_utils.py" in lazy.graph_cuts()[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "bert-base"])
def test_seed_models(dev, name):
    model, inputs = zoo.resnet50() if name == "resnet50" else zoo.bert("base", seq=128)
    with torch.no_grad():
        want = _first(model(*inputs))
    got = _first(_snippet(model, inputs, dev)).cpu()
    # fp32 end to end; only summation orders differ (convolution/GEMM blocking), over 50 layers / 12 blocks
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)
    assert met.executed_fallback_ops() == []
