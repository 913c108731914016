"""torch's fused Adam and AdamW (`torch.optim.Adam(fused=True)`, transformers' default `adamw_torch_fused`) recorded on
the device: the update `_fused_adam_` / `_fused_adamw_` make (torch/optim/adam.py, aten/src/ATen/native/FusedAdam.cpp)
written with device ops, so the optimizer step stays in the step's graph instead of a CPU fallback that cuts it.
The step count is a device tensor, so the bias corrections are device ops too (no `.item()`). With AMP's
`grad_scale` / `found_inf` the op runs as a CPU fallback (returns NotImplemented)."""
from __future__ import annotations

import torch

aten = torch.ops.aten


def _adam_update(adamw: bool, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, lr, beta1,
                 beta2, weight_decay, eps, amsgrad, maximize, grad_scale=None, found_inf=None):
    if grad_scale is not None or found_inf is not None:
        return NotImplemented
    for i, (p, g, m, v, step) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs, state_steps)):
        if maximize:
            g = -g
        if weight_decay != 0:
            if adamw:
                p.mul_(1 - lr * weight_decay)
            else:
                g = g + p * weight_decay
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bias_correction1 = 1 - torch.pow(beta1, step)
        bias_correction2_sqrt = (1 - torch.pow(beta2, step)).sqrt()
        if amsgrad:
            torch.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
            v = max_exp_avg_sqs[i]
        denom = v.sqrt() / bias_correction2_sqrt + eps
        p.sub_(m / denom * (lr / bias_correction1))
    return None


def run(func, args, kwargs):
    """The update of `func` (a _fused_adam(w)_ overload) recorded with device ops, or NotImplemented."""
    return _adam_update(func._schema.name == "aten::_fused_adamw_", *args, **kwargs)


OPS = [getattr(getattr(aten, n), o) for n in ("_fused_adam_", "_fused_adamw_") for o in ("default", "tensor_lr")]
