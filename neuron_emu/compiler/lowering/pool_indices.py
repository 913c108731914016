"""max_pool2d's indices output (read by max_unpool, or returned): the kh*kw window taps stacked by strided DMA copies
of the -inf-padded input, an ArgMax over the taps (VectorE), and the tap's flat input position h * W + w looked up
in a compile-time table (GpSimd gather). Only emitted when something reads the indices."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering.common import alloc_like_node, contiguous, dma_copy
from neuron_emu.compiler.lowering.indexing import gather_rows
from neuron_emu.compiler.lowering.math import _tmp, tt
from neuron_emu.compiler.lowering.reduce import reduce_into
from neuron_emu.compiler.lowering.views import pad_into
from neuron_emu.isa import ReduceOp


def max_pool_indices(b, node, x, k, s, p, d):
    idx_out = alloc_like_node(b, node, 1)
    OH, OW = idx_out.shape[-2], idx_out.shape[-1]
    H, W = x.shape[-2], x.shape[-1]
    NC = x.numel // max(H * W, 1)
    x3 = contiguous(b, x).with_view([NC, H, W], [H * W, W, 1])
    need_h = (OH - 1) * s[0] + (k[0] - 1) * d[0] + 1
    need_w = (OW - 1) * s[1] + (k[1] - 1) * d[1] + 1
    hi_h, hi_w = max(p[0], need_h - H - p[0]), max(p[1], need_w - W - p[1])
    Hp, Wp = H + p[0] + hi_h, W + p[1] + hi_w
    xp = pad_into(b, x3, [p[1], hi_w, p[0], hi_h], float("-inf"), b.alloc([NC, Hp, Wp], x.dtype, x.emu))
    K, L = k[0] * k[1], OH * OW
    taps = b.alloc([NC, K, OH, OW], x.dtype, x.emu)
    table = torch.empty(K, OH, OW)
    oh = torch.arange(OH).view(OH, 1)
    ow = torch.arange(OW).view(1, OW)
    for i in range(k[0]):
        for j in range(k[1]):
            t = i * k[1] + j
            src = xp.with_view([NC, OH, OW], [Hp * Wp, s[0] * Wp, s[1]], xp.offset + i * d[0] * Wp + j * d[1])
            dma_copy(b, src, taps.with_view([NC, OH, OW], [K * L, OW, 1], taps.offset + t * L))
            table[t] = ((oh * s[0] - p[0] + i * d[0]) * W + (ow * s[1] - p[1] + j * d[1])).float()
    local = reduce_into(b, taps, [1], ReduceOp.ArgMax, _tmp(b, [NC, 1, OH, OW]))
    pos = b.const(torch.arange(L, dtype=torch.float32).view(1, 1, OH, OW))
    lin = tt(b, "add", tt(b, "mul", local, float(L), _tmp(b, [NC, 1, OH, OW])), pos, _tmp(b, [NC, 1, OH, OW]))
    gather_rows(b, b.const(table.reshape(K * L, 1)), lin.with_view([NC * L], [1]), idx_out.with_view([NC * L, 1], [1, 1]))
    return idx_out
