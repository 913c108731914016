"""A small, offline model zoo for the README demo, tests and benchmarks.

Every builder returns ``(model.eval(), example_inputs)`` where ``example_inputs`` is a tuple of
tensors to call ``model(*example_inputs)`` with. Weights are random but deterministic: each builder
seeds its own ``torch.Generator``-backed RNG state via ``torch.manual_seed`` (the global RNG state is
saved and restored, so building a model does not perturb the caller's random stream). Nothing is
downloaded: the HuggingFace models are built from ``*Config`` objects, the vision models are written
here.

Builders
--------
* ``resnet50(batch, image)``        -- torchvision-architecture ResNet-50 (Bottleneck [3, 4, 6, 3]).
* ``resnet(depths, width, image)``  -- small BasicBlock ResNet (resnet18-style) for fast tests.
* ``bert(size, seq, batch)``        -- ``transformers.BertModel`` (tiny / base / large).
* ``electra(size, seq, batch)`` / ``electra_large_discriminator(seq)`` -- ``ElectraForPreTraining``.
* ``gpt2(size, seq, batch)``        -- ``transformers.GPT2LMHeadModel`` (tiny / small).
* ``vit(size, batch)``              -- ``transformers.ViTModel`` (tiny / base).
* ``mlp(...)``, ``dict_output_model()``, ``tuple_output_model()``, ``unsupported_op_model()``.

The HuggingFace models use ``attn_implementation="eager"`` and GPT-2 ``use_cache=False``, which keeps the
benchmarks' programs stable; library defaults (SDPA attention, a returned KV cache) trace too and are covered by
``tests/test_hf_defaults.py``. They return their usual ``ModelOutput`` (dict-like) from ``forward``.

Batch-norm running statistics are randomised (not the identity 0/1 defaults) so that BN folding and
BN numerics are actually exercised.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "resnet50", "resnet", "bert", "electra", "electra_large_discriminator", "gpt2", "vit", "mlp",
    "dict_output_model", "tuple_output_model", "unsupported_op_model", "BUILDERS", "TINY_BUILDERS",
]


@contextlib.contextmanager
def _seeded(seed: int):
    """Run the body with ``torch.manual_seed(seed)`` and restore the caller's RNG state afterwards."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        yield
    finally:
        torch.random.set_rng_state(state)


def _randomize_bn(model: nn.Module) -> None:
    """Give every BatchNorm non-trivial affine params and running stats (RNG must be seeded)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n) * 0.1)
                m.running_var.copy_(torch.rand(n) * 0.5 + 0.75)     # in [0.75, 1.25)
                m.weight.copy_(torch.rand(n) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n) * 0.1)


# ----------------------------------------------------------------------------------------------
# ResNet (torchvision architecture, re-implemented; torchvision is not a dependency)
# ----------------------------------------------------------------------------------------------
def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision ResNet V1.5 bottleneck: the stride sits on the 3x3 conv."""
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers: Sequence[int], num_classes: int = 1000, width: int = 64):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet50(batch: int = 1, image: int = 224, seed: int = 0):
    """torchvision-architecture ResNet-50 (25.6 M params) with randomised BN stats."""
    with _seeded(seed):
        model = ResNet(Bottleneck, [3, 4, 6, 3])
        _randomize_bn(model)
        x = torch.randn(batch, 3, image, image)
    return model.eval(), (x,)


def resnet(depths: Sequence[int] = (1, 1, 1, 1), width: int = 16, image: int = 64,
           batch: int = 1, num_classes: int = 10, seed: int = 0):
    """Small BasicBlock ResNet (``depths=(2, 2, 2, 2), width=64`` is ResNet-18)."""
    with _seeded(seed):
        model = ResNet(BasicBlock, list(depths), num_classes=num_classes, width=width)
        _randomize_bn(model)
        x = torch.randn(batch, 3, image, image)
    return model.eval(), (x,)


# ----------------------------------------------------------------------------------------------
# HuggingFace transformers models (built from configs, random weights)
# ----------------------------------------------------------------------------------------------
def _text_inputs(vocab: int, seq: int, batch: int, pad: Optional[int] = None):
    """(input_ids, attention_mask, token_type_ids) int64; the last ``pad`` positions of every
    other row (and at least the last row) are padding. RNG must be seeded by the caller."""
    input_ids = torch.randint(1, vocab, (batch, seq), dtype=torch.int64)
    attention_mask = torch.ones(batch, seq, dtype=torch.int64)
    pad = max(1, seq // 8) if pad is None else pad
    for b in range(batch):
        if b % 2 == 1 or b == batch - 1:
            attention_mask[b, seq - pad:] = 0
            input_ids[b, seq - pad:] = 0
    token_type_ids = torch.zeros(batch, seq, dtype=torch.int64)
    token_type_ids[:, seq // 2:] = 1
    return input_ids, attention_mask, token_type_ids


_BERT_SIZES = {
    # hidden, layers, heads, intermediate, vocab
    "tiny": (64, 2, 2, 128, 1000),
    "base": (768, 12, 12, 3072, 30522),
    "large": (1024, 24, 16, 4096, 30522),
}


def bert(size: str = "base", seq: int = 128, batch: int = 1, seed: int = 0):
    """``transformers.BertModel``; inputs ``(input_ids, attention_mask, token_type_ids)``."""
    from transformers import BertConfig, BertModel

    hidden, layers, heads, inter, vocab = _BERT_SIZES[size]
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=inter,
                     max_position_embeddings=max(512, seq), attn_implementation="eager")
    with _seeded(seed):
        model = BertModel(cfg)
        inputs = _text_inputs(vocab, seq, batch)
    return model.eval(), inputs


_ELECTRA_SIZES = {
    # hidden, layers, heads, intermediate, embedding_size, vocab
    "tiny": (64, 2, 2, 128, 32, 1000),
    "large": (1024, 24, 16, 4096, 1024, 30522),  # google/electra-large-discriminator
}


def electra(size: str = "large", seq: int = 128, batch: int = 1, seed: int = 0):
    """``transformers.ElectraForPreTraining`` (the discriminator); returns per-token logits."""
    from transformers import ElectraConfig, ElectraForPreTraining

    hidden, layers, heads, inter, emb, vocab = _ELECTRA_SIZES[size]
    cfg = ElectraConfig(vocab_size=vocab, embedding_size=emb, hidden_size=hidden,
                        num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=inter, max_position_embeddings=max(512, seq),
                        attn_implementation="eager")
    with _seeded(seed):
        model = ElectraForPreTraining(cfg)
        inputs = _text_inputs(vocab, seq, batch)
    return model.eval(), inputs


def electra_large_discriminator(seq: int = 128, batch: int = 1, seed: int = 0):
    """Config-identical to google/electra-large-discriminator (random weights)."""
    return electra("large", seq=seq, batch=batch, seed=seed)


_GPT2_SIZES = {
    # n_embd, n_layer, n_head, vocab
    "tiny": (64, 2, 2, 1000),
    "small": (768, 12, 12, 50257),
}


def gpt2(size: str = "small", seq: int = 64, batch: int = 1, seed: int = 0):
    """``transformers.GPT2LMHeadModel`` with ``use_cache=False``; input ``(input_ids,)``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    n_embd, n_layer, n_head, vocab = _GPT2_SIZES[size]
    cfg = GPT2Config(vocab_size=vocab, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                     n_positions=max(1024, seq), use_cache=False, attn_implementation="eager",
                     bos_token_id=min(50256, vocab - 1), eos_token_id=min(50256, vocab - 1))
    with _seeded(seed):
        model = GPT2LMHeadModel(cfg)
        input_ids = torch.randint(0, vocab, (batch, seq), dtype=torch.int64)
    return model.eval(), (input_ids,)


_VIT_SIZES = {
    # image, patch, hidden, layers, heads, intermediate
    "tiny": (32, 8, 64, 2, 2, 128),
    "base": (224, 16, 768, 12, 12, 3072),
}


def vit(size: str = "base", batch: int = 1, seed: int = 0):
    """``transformers.ViTModel``; input ``(pixel_values,)``."""
    from transformers import ViTConfig, ViTModel

    image, patch, hidden, layers, heads, inter = _VIT_SIZES[size]
    cfg = ViTConfig(image_size=image, patch_size=patch, hidden_size=hidden,
                    num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter,
                    attn_implementation="eager")
    with _seeded(seed):
        model = ViTModel(cfg)
        x = torch.randn(batch, 3, image, image)
    return model.eval(), (x,)


# ----------------------------------------------------------------------------------------------
# Small synthetic models
# ----------------------------------------------------------------------------------------------
def mlp(in_features: int = 784, hidden: Sequence[int] = (512, 256), out: int = 10, batch: int = 8,
        seed: int = 0):
    """Linear/ReLU stack."""
    with _seeded(seed):
        layers = []
        prev = in_features
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, out))
        model = nn.Sequential(*layers)
        x = torch.randn(batch, in_features)
    return model.eval(), (x,)


class DictOutputModel(nn.Module):
    """forward(x) -> {"logits": ..., "hidden": ..., "probs": ...}."""

    def __init__(self, d_in: int = 16, d_hidden: int = 32, n_out: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, n_out)

    def forward(self, x):
        h = F.gelu(self.fc1(x))
        logits = self.fc2(h)
        return {"logits": logits, "hidden": h, "probs": torch.softmax(logits, dim=-1)}


class TupleOutputModel(nn.Module):
    """forward(x, y) -> (a, (b, c)) -- a nested tuple of tensors."""

    def __init__(self, d: int = 16):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x, y):
        a = self.fc(x)
        b = self.norm(a + y)
        c = torch.tanh(b) * y
        return a, (b, c)


class UnsupportedOpModel(nn.Module):
    """Uses ``torch.sort`` on an intermediate tensor (plus a top-k gather of its indices).

    Sorting has no mapping onto the emulated NeuronCore engines (TensorE/VectorE/ScalarE/GpSimd
    kernels), so an emulated neuron compiler is expected to reject it or partition it to CPU.
    """

    def __init__(self, d: int = 16):
        super().__init__()
        self.fc1 = nn.Linear(d, d)
        self.fc2 = nn.Linear(d, d)

    def forward(self, x):
        h = self.fc1(x)
        values, indices = torch.sort(h, dim=-1, descending=True)   # <- the unsupported op
        return self.fc2(values) + indices[..., :1].to(h.dtype)


def dict_output_model(batch: int = 2, seed: int = 0):
    with _seeded(seed):
        model = DictOutputModel()
        x = torch.randn(batch, 16)
    return model.eval(), (x,)


def tuple_output_model(batch: int = 2, seed: int = 0):
    with _seeded(seed):
        model = TupleOutputModel()
        x, y = torch.randn(batch, 16), torch.randn(batch, 16)
    return model.eval(), (x, y)


def unsupported_op_model(batch: int = 2, seed: int = 0):
    """Small model whose forward calls ``torch.sort`` (see :class:`UnsupportedOpModel`)."""
    with _seeded(seed):
        model = UnsupportedOpModel()
        x = torch.randn(batch, 16)
    return model.eval(), (x,)


# Registries: name -> zero-argument builder.
TINY_BUILDERS: "dict[str, Callable[[], Tuple[nn.Module, tuple]]]" = {
    "resnet_small": lambda: resnet(),
    "bert_tiny": lambda: bert("tiny", seq=16, batch=2),
    "electra_tiny": lambda: electra("tiny", seq=16, batch=2),
    "gpt2_tiny": lambda: gpt2("tiny", seq=16),
    "vit_tiny": lambda: vit("tiny"),
    "mlp": lambda: mlp(),
    "dict_output": dict_output_model,
    "tuple_output": tuple_output_model,
    "unsupported_op": unsupported_op_model,
}

BUILDERS: "dict[str, Callable[[], Tuple[nn.Module, tuple]]]" = {
    **TINY_BUILDERS,
    "resnet50": lambda: resnet50(),
    "bert_base": lambda: bert("base"),
    "bert_large": lambda: bert("large"),
    "electra_large_discriminator": lambda: electra_large_discriminator(),
    "gpt2_small": lambda: gpt2("small"),
    "vit_base": lambda: vit("base"),
}
