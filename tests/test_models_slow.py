"""Full-size models (slow: run with `-m slow`). Numerics vs PyTorch CPU eager with --auto-cast none."""
import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo

pytestmark = pytest.mark.slow

MODELS = {
    "resnet50": lambda: zoo.resnet50(),
    "bert-base": lambda: zoo.bert("base", seq=128),
    "bert-large": lambda: zoo.bert("large", seq=128),
    "electra-large-discriminator": lambda: zoo.electra_large_discriminator(seq=128),
    "gpt2-small": lambda: zoo.gpt2("small", seq=64),
    "vit-base": lambda: zoo.vit("base"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_full_model_matches_eager(name):
    model, inputs = MODELS[name]()
    traced = torch_neuronx_emu.trace(model, inputs)
    with torch.no_grad():
        expected = model(*inputs)
    got = traced(*inputs)
    exp = [t for t in torch.utils._pytree.tree_leaves(expected) if isinstance(t, torch.Tensor)]
    out = [t for t in torch.utils._pytree.tree_leaves(got) if isinstance(t, torch.Tensor)]
    assert len(exp) == len(out)
    for e, o in zip(exp, out):
        torch.testing.assert_close(o, e, rtol=1e-4, atol=1e-5)
    s = torch_neuronx_emu.last_call()
    assert s.latency_s > 0 and s.engines["TensorE"].flops > 0
