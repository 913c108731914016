"""The published Inf1 operator list (inf1-supported-ops.txt beside this file, vendored from the Neuron release
notes; what torch.neuron.get_supported_operations() returns) and how a captured ATen node is named against it.

Our capture records functionalized ATen overloads (`aten::view_copy`, `aten::native_layer_norm`); torch-neuron's
partitioner saw TorchScript names (`aten::view`, `aten::layer_norm`). `torchscript_name` maps one to the other.
ASSUMPTION: fused attention (`aten::scaled_dot_product_attention`, torch >= 2.0, newer than the list) counts as
supported because it is made of listed ops (matmul, softmax, mul, add, masked_fill), as neuron-cc would see it
after torch-neuron's decomposition."""
from __future__ import annotations

import functools
import os
from typing import List

from neuron_emu.compiler.lowering import lookup

_LIST = os.path.join(os.path.dirname(__file__), "inf1-supported-ops.txt")  # package data: found when installed too

_ALIASES = {
    "aten::_to_copy": "aten::to", "aten::bitwise_and": "aten::__and__", "aten::bitwise_or": "aten::__or__",
    "aten::convolution": "aten::_convolution", "aten::native_batch_norm": "aten::batch_norm",
    "aten::_native_batch_norm_legit_no_training": "aten::batch_norm", "aten::native_layer_norm": "aten::layer_norm",
    "aten::_softmax": "aten::softmax", "aten::_log_softmax": "aten::log_softmax", "aten::_unsafe_view": "aten::view",
    "aten::alias_copy": "aten::view", "aten::lift_fresh_copy": "aten::clone",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "aten::scaled_dot_product_attention",
    "aten::_scaled_dot_product_efficient_attention": "aten::scaled_dot_product_attention",
    "aten::_scaled_dot_product_attention_math": "aten::scaled_dot_product_attention",
}
_MADE_OF_LISTED_OPS = {"aten::scaled_dot_product_attention"}


@functools.lru_cache(maxsize=1)
def _published() -> frozenset:
    with open(_LIST) as f:
        return frozenset(line.strip() for line in f if line.startswith("aten::") or line.startswith("prim::"))


def get_supported_operations() -> List[str]:
    """The operators torch-neuron compiles to Neuron (the published list), sorted."""
    return sorted(_published())


def torchscript_name(aten_name: str) -> str:
    name = _ALIASES.get(aten_name, aten_name)
    if name.endswith("_copy") and name not in _published():  # functionalized view ops: view_copy -> view
        name = name[: -len("_copy")]
    return name


def is_published(aten_name: str) -> bool:
    name = torchscript_name(aten_name)
    return name in _published() or name in _MADE_OF_LISTED_OPS


def is_supported(node) -> bool:
    """Listed by neuron-cc AND lowered by the emulated compiler (a listed op we cannot lower runs on CPU)."""
    return is_published(node.name) and lookup(node.target) is not None
