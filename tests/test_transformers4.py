"""The SDK's Hugging Face tutorial flow under transformers 4.x, where `torchscript=True` makes models return plain
tuples (what the torch-neuronx tutorials and optimum-neuron rely on), and the model matrix built that way.

The tutorial: `AutoModelForSequenceClassification.from_pretrained(name, torchscript=True)`, then
`torch_neuronx.trace(model, (input_ids, attention_mask))` and `model_neuron(*inputs)[0]` for the logits. Nothing is
downloaded here: `from_pretrained`'s `torchscript=True` only sets the config attribute, so the config is built with
it and the model `from_config` (4.x's `from_config` itself takes no `torchscript` keyword). Transformers 5 ignores
`torchscript=True` (outputs stay ModelOutput), so this module runs under 4.x only: scripts/test_transformers4.sh
makes a 4.x virtual environment and runs it with the rest of the matrix.

Tolerances: rtol 1e-4 / atol 1e-5, fp32 with another summation order (as tests/test_model_matrix.py)."""
import copy
import io
import warnings

import pytest
import torch
from torch.utils import _pytree as pytree

import torch_neuronx_emu
from neuron_emu.compiler.capture import _to_plain

transformers = pytest.importorskip("transformers")
if int(transformers.__version__.split(".")[0]) >= 5:
    pytest.skip(f"transformers {transformers.__version__} ignores torchscript=True (models return ModelOutput, not "
                "tuples); the SDK tutorial's tuple contract is 4.x's: run scripts/test_transformers4.sh",
                allow_module_level=True)

from model_matrix import HF  # noqa: E402
from test_hf_defaults import BUILDERS  # noqa: E402

TOL = dict(rtol=1e-4, atol=1e-5)
SEQ, VOCAB = 16, 100
TINY = {"bert": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
        "roberta": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
        "distilbert": dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64)}


def _trace(model, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch_neuronx_emu.trace(model, inputs)


def _paraphrase_inputs():
    """Two sequences padded to one length, as the tutorial's tokenizer call (padding='max_length') gives."""
    ids = torch.randint(3, VOCAB, (2, SEQ))
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, 11:] = 0
    ids[1, 11:] = 1  # RoBERTa's pad id; an ordinary token for the others
    return ids, mask


@pytest.mark.parametrize("model_type", list(TINY))
def test_sdk_tutorial_sequence_classification(model_type):
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(model_type, vocab_size=VOCAB, num_labels=2, torchscript=True,
                                               **TINY[model_type])
    model = transformers.AutoModelForSequenceClassification.from_config(config).eval()
    assert model.config._attn_implementation == "sdpa"  # library default, not overridden
    inputs = _paraphrase_inputs()
    with torch.no_grad():
        want = model(*inputs)
    assert type(want) is tuple and len(want) == 1  # torchscript=True: a tuple of (logits,)
    model_neuron = _trace(model, inputs)
    got = model_neuron(*inputs)
    assert type(got) is tuple and len(got) == 1
    torch.testing.assert_close(got[0], want[0], **TOL)
    assert not torch.equal(got[0][0], got[0][1])  # the two sequences (one padded) are classified separately
    buf = io.BytesIO()
    torch.jit.save(model_neuron, buf)  # the tutorial saves the traced model and loads it for inference
    buf.seek(0)
    again = torch.jit.load(buf)(*inputs)
    assert torch.equal(again[0], got[0])


def _torchscript_twin(model):
    """The same architecture and weights, built with config.torchscript=True (4.x: weights cloned rather than tied;
    tuple outputs from the models that read the flag; Llama, Mistral, Qwen2, CLIP, ViT and ConvNeXt in 4.57 return
    ModelOutput anyway, their output decorators reading only config.return_dict); a wrapper (T5 with decoder inputs) or a sub-model (Whisper's encoder) keeps its module and
    gets the flag on its config, which 4.x reads at call time."""
    if isinstance(model, transformers.PreTrainedModel):
        cfg = copy.deepcopy(model.config)
        cfg.torchscript = True
        twin = type(model)(cfg).eval()
        twin.load_state_dict(model.state_dict())
        return twin
    for m in model.modules():
        if isinstance(m, transformers.PreTrainedModel):
            m.config.torchscript = True
    return model


@pytest.mark.parametrize("name", sorted(set(HF) | set(BUILDERS)))
def test_matrix_with_torchscript_config(name):
    torch.manual_seed(0)
    model, inputs = HF[name]() if name in HF else BUILDERS[name]()
    model = _torchscript_twin(model)
    with torch.no_grad():
        want = _to_plain(model(*inputs))  # the layout a traced module returns (a cache as per-layer tuples)
    got = _trace(model, inputs)(*inputs)
    assert pytree.tree_structure(got) == pytree.tree_structure(want)
    for g, w in zip(pytree.tree_leaves(got), pytree.tree_leaves(want)):
        torch.testing.assert_close(g, w, **TOL)
