"""`torch.autocast` on the lazy device: the Neuron guide's replacement for XLA_USE_BF16 is
`torch.autocast("xla", dtype=torch.bfloat16)` ("xla" names this device, device.py, so autocast("xla") applies
to it). PyTorch
dispatches a PrivateUse1 tensor's op under autocast to the AutocastPrivateUse1 key, where nothing is registered
(not even a fallthrough: ops failed under autocast), so the cast policies of torch_xla's AutocastXLA
(torch_xla/csrc/autocast_mode.cpp) are registered there: matmuls and convolutions run in the autocast dtype,
losses/softmax/batch norm in fp32, cat/stack in the widest input dtype."""
from __future__ import annotations

import functools

import torch

_LOWER = ["conv1d", "conv1d.padding", "conv2d", "conv2d.padding", "conv3d", "conv3d.padding", "bmm", "mm",
          "baddbmm", "addmm", "addbmm", "linear", "matmul", "conv_transpose1d", "conv_transpose2d.input",
          "conv_transpose3d.input", "prelu", "relu", "max_pool2d", "einsum"]
_FP32 = ["batch_norm", "_softmax", "softmax.int", "log_softmax.int", "binary_cross_entropy", "prod", "prod.dim_int",
         "cdist", "mse_loss", "nll_loss", "nll_loss2d", "smooth_l1_loss", "cross_entropy_loss", "l1_loss", "kl_div",
         "binary_cross_entropy_with_logits", "margin_ranking_loss", "soft_margin_loss", "hinge_embedding_loss",
         "cosine_embedding_loss", "triplet_margin_loss", "multi_margin_loss", "multilabel_margin_loss"]
_PROMOTE = ["stack", "cat"]
_KEY = torch._C.DispatchKey.AutocastPrivateUse1
_lib = _fallthrough = None


def _eligible(t, dev_type: str) -> bool:
    """A tensor autocast casts (as ATen's is_eligible): floating, not fp64, on the autocast device."""
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype is not torch.float64 and \
        t.device.type == dev_type


def _cast(x, dtype, dev_type):
    if isinstance(x, (list, tuple)):
        return type(x)(_cast(e, dtype, dev_type) for e in x)
    return x.to(dtype) if _eligible(x, dev_type) and x.dtype is not dtype else x


def _widest(args, dev_type):
    dtype = None
    for a in args:
        for t in (a if isinstance(a, (list, tuple)) else (a,)):
            if _eligible(t, dev_type):
                dtype = t.dtype if dtype is None else torch.promote_types(dtype, t.dtype)
    return dtype


def _kernel(op, policy: str, dev_type: str):
    def run(*args, **kwargs):
        if policy == "lower":
            dtype = torch.get_autocast_dtype(dev_type)
        elif policy == "fp32":
            dtype = torch.float32
        else:
            dtype = _widest(args, dev_type)
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(_KEY)):
            if dtype is not None:
                args, kwargs = _cast(args, dtype, dev_type), {k: _cast(v, dtype, dev_type) for k, v in kwargs.items()}
            return op(*args, **kwargs)
    return run


def install(dev_type: str) -> None:
    """Register the policies (once) and make bf16 the device's default autocast dtype, as on Neuron."""
    global _lib, _fallthrough
    if _lib is not None:
        return
    # every other op passes the key untouched (torch registers this fallthrough for its own backends only)
    _fallthrough = torch.library.Library("_", "IMPL")
    _fallthrough.fallback(torch.library.fallthrough_kernel, "AutocastPrivateUse1")
    _lib = torch.library.Library("aten", "IMPL")
    for policy, names in (("lower", _LOWER), ("fp32", _FP32), ("promote", _PROMOTE)):
        for name in names:
            packet, _, overload = name.partition(".")
            op = getattr(getattr(torch.ops.aten, packet), overload or "default")
            _lib.impl(name, _kernel(op, policy, dev_type), "AutocastPrivateUse1")
    torch.set_autocast_dtype(dev_type, torch.bfloat16)
    init = torch.amp.autocast_mode.autocast.__init__

    def autocast_init(self, device_type, *args, **kwargs):   # torch.autocast("xla", ...): XLA tensors are ours
        return init(self, dev_type if device_type == "xla" else device_type, *args, **kwargs)
    torch.amp.autocast_mode.autocast.__init__ = functools.wraps(init)(autocast_init)
