"""Ops torch has no decomposition for, written with ops the compiler lowers (capture-time decompositions,
decompose.py): distances, the bilinear form, addbmm, masked_scatter, adaptive max pooling. Shapes are static, so
loops over windows and index lists are unrolled at capture; values (which elements are masked, which is the
maximum) are computed on the device."""
from __future__ import annotations

import math

import torch

from neuron_emu.compiler.decompose_table import DecompTable

aten = torch.ops.aten
TABLE = DecompTable()


def _pnorm(diff, p):
    """The p-norm over the last dim, as cdist/pdist define it (p = 0 counts non-zeros)."""
    if p == 0:
        return (diff != 0).to(diff.dtype).sum(-1)
    if math.isinf(p):
        return diff.abs().amax(-1) if diff.shape[-1] else diff.new_zeros(diff.shape[:-1])
    if p == 1:
        return diff.abs().sum(-1)
    if p == 2:
        return torch.sqrt((diff * diff).sum(-1))
    return torch.pow(torch.pow(diff.abs(), p).sum(-1), 1.0 / p)


@TABLE.register(aten._cdist_forward.default)
def cdist(x1, x2, p, compute_mode=None):
    # the direct difference (eager switches to a |x|^2 + |y|^2 - 2xy matmul for > 25 rows: less exact, not more)
    return _pnorm(x1.unsqueeze(-2) - x2.unsqueeze(-3), p)


@TABLE.register(aten._pdist_forward.default)
def pdist(x, p=2.0):
    n = x.shape[0]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if not pairs:
        return x.new_zeros((0,))
    i = torch.tensor([a for a, _ in pairs], dtype=torch.int64)
    j = torch.tensor([b for _, b in pairs], dtype=torch.int64)
    return _pnorm(x.index_select(0, i) - x.index_select(0, j), p)


@TABLE.register(aten._trilinear.default)
def trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim, unroll_dim=1):
    def grow(t, dims):
        for d in sorted(dims):
            t = t.unsqueeze(d)
        return t
    prod = grow(i1, expand1) * grow(i2, expand2) * grow(i3, expand3)
    return prod.sum(list(sumdim)) if sumdim else prod


@TABLE.register(aten.addbmm.default)
def addbmm(self, batch1, batch2, *, beta=1, alpha=1):
    prod = torch.bmm(batch1, batch2).sum(0)
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:  # self is ignored, NaN and all
        return prod + torch.zeros_like(self)
    return (self if beta == 1 else self * beta) + prod


@TABLE.register(aten.masked_scatter.default)
def masked_scatter(self, mask, source):
    """The k-th True of the (broadcast) mask takes source's k-th element: k is a running count of the mask."""
    shape = torch.broadcast_shapes(self.shape, mask.shape)
    mask = mask.expand(shape).reshape(-1)
    k = torch.cumsum(mask.to(torch.int64), 0) - 1
    k = torch.clamp(k, 0, max(source.numel() - 1, 0))
    vals = source.reshape(-1).index_select(0, k)
    return torch.where(mask, vals, self.expand(shape).reshape(-1)).reshape(shape)


@TABLE.register(aten.adaptive_max_pool2d.default)
def adaptive_max_pool2d(x, output_size):
    h, w = x.shape[-2], x.shape[-1]
    oh, ow = output_size
    outs, idxs = [], []
    for i in range(oh):
        hs, he = (i * h) // oh, -((-(i + 1) * h) // oh)
        for j in range(ow):
            ws, we = (j * w) // ow, -((-(j + 1) * w) // ow)
            win = x[..., hs:he, ws:we].reshape(x.shape[:-2] + ((he - hs) * (we - ws),))
            a = win.argmax(-1, keepdim=True)                    # the first maximum, as eager's scan keeps
            outs.append(torch.gather(win, -1, a))
            ww = we - ws
            idxs.append((a // ww + hs) * w + (a % ww + ws))
    out = torch.cat(outs, -1).reshape(x.shape[:-2] + (oh, ow))
    return out, torch.cat(idxs, -1).reshape(x.shape[:-2] + (oh, ow))


# Cases of lowered ops that their lowering refuses, rewritten into the cases it takes (NotImplemented: the op is
# recorded whole, for its lowering). decompose.py consults these even where a lowering exists.
PREFERRED = DecompTable()


@PREFERRED.register(aten.searchsorted.Tensor)
def searchsorted_with_sorter(seq, values, *, out_int32=False, right=False, side=None, sorter=None):
    if sorter is None:
        return NotImplemented
    ordered = torch.gather(seq, -1, sorter)   # the sorted sequence the permutation describes
    return torch.searchsorted(ordered, values, out_int32=out_int32, right=right, side=side)
