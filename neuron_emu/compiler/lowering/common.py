"""Helpers shared by the lowering passes: broadcasting, dim collapsing, layout copies."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch


from neuron_emu.compiler.builder import TV, ProgramBuilder, out_emu
from neuron_emu.dtypes import DTYPE_BYTES
from neuron_emu.isa import MAX_DIMS, DmaQueue, DType, Instr, Op, contiguous_strides, view_layout



class LoweringError(RuntimeError):
    pass


def broadcast_strides(tv: TV, out_shape: Sequence[int]) -> List[int]:
    """Strides of `tv` read as `out_shape` (0 on broadcast dims)."""
    nd = len(out_shape)
    shape = (1,) * (nd - len(tv.shape)) + tuple(tv.shape)
    strides = (0,) * (nd - len(tv.strides)) + tuple(tv.strides)
    return [0 if s == 1 and o != 1 else st for s, o, st in zip(shape, out_shape, strides)]


def collapse(shape: Sequence[int], strides: Sequence[Sequence[int]]) -> Tuple[List[int], List[List[int]]]:
    """Drop size-1 dims and merge adjacent dims that are contiguous in every operand."""
    dims = [d for d in range(len(shape)) if shape[d] != 1]
    if not dims:
        return [1], [[0] for _ in strides]
    out_shape = [shape[dims[0]]]
    out_strides = [[s[dims[0]]] for s in strides]
    for d in dims[1:]:
        if all(s[-1] == st[d] * shape[d] for s, st in zip(out_strides, strides)):
            out_shape[-1] *= shape[d]
            for s, st in zip(out_strides, strides):
                s[-1] = st[d]
        else:
            out_shape.append(shape[d])
            for s, st in zip(out_strides, strides):
                s.append(st[d])
    return out_shape, out_strides


def strided_layout(op_name: str, shape, views: Sequence[Tuple[int, Sequence[int]]]) -> dict:
    shape, strides = collapse(list(shape), [list(v[1]) for v in views])
    if len(shape) > MAX_DIMS:
        raise LoweringError(f"{op_name}: access pattern of rank {len(shape)} exceeds {MAX_DIMS} dims")
    return view_layout(shape, [(v[0], s) for v, s in zip(views, strides)])


def alloc_like_node(b: ProgramBuilder, node, i: int = 0) -> TV:
    v = node.outputs[i]
    return b.alloc(v.shape, v.dtype, out_emu(b, v.dtype))


def dma_copy(b: ProgramBuilder, src: TV, dst: TV, queue: DmaQueue = DmaQueue.SbufToSbuf) -> None:
    """Layout movement (permute, slice, concat, broadcast materialisation) runs on the DMA queues."""
    if tuple(src.shape) != tuple(dst.shape):
        raise LoweringError(f"copy shape mismatch {src.shape} -> {dst.shape}")
    if src.numel == 0:
        return
    if src.emu != dst.emu:  # DMA moves bytes and cannot round (an fp32 temporary into a bf16 result under
        cast_copy(b, src, dst)  # --auto-cast all): the copy that changes dtype runs on VectorE
        return
    view = strided_layout("DmaCopy", dst.shape, [(src.offset, src.strides), (dst.offset, dst.strides)])
    b.emit(Instr(Op.DmaCopy, [src.buf, dst.buf], dict(queue=queue, elem_bytes=DTYPE_BYTES[src.emu]), view), [src], [dst])


def fill_into(b: ProgramBuilder, out: TV, value: float) -> TV:
    """out[...] = value: a GpSimd Iota with step 0; on a core without GpSimd (NeuronCore-v1) a DMA broadcast of a
    one-element constant (neuron-cc materialises the constant in the program). The value is rounded to the
    result's dtype at compile time (Iota writes its immediate as is: a bf16 result under --auto-cast all)."""
    if out.emu != DType.F32 and out.dtype.is_floating_point:
        from neuron_emu import _C
        value = float(_C.round_to(np.array([value], dtype=np.float32), int(out.emu))[0])
    if b.has_engine("GpSimdE"):
        b.emit(Instr(Op.Iota, [out.buf], dict(numel=out.numel, start=float(value), step=0.0)), [], [out])
        return out
    one = b.const(torch.tensor([float(value)], dtype=torch.float32))
    dma_copy(b, one.with_view(out.shape, [0] * len(out.shape), 0).with_dtype(out.dtype, out.emu), out)
    return out


def contiguous(b: ProgramBuilder, tv: TV) -> TV:
    if tv.is_contiguous():
        return tv.with_view(tv.shape, contiguous_strides(tv.shape))
    out = b.alloc(tv.shape, tv.dtype, tv.emu)
    dma_copy(b, tv, out)
    return out


def cast_copy(b: ProgramBuilder, src: TV, dst: TV) -> None:
    """VectorE copy with rounding to dst.emu (a dtype cast)."""
    view = strided_layout("TensorCopy", dst.shape, [(src.offset, broadcast_strides(src, dst.shape)), (dst.offset, dst.strides)])
    b.emit(Instr(Op.TensorCopy, [src.buf, dst.buf], dict(in_dtype=src.emu, out_dtype=dst.emu), view), [src], [dst])


def view_strides(tv: TV, shape: Sequence[int]):
    """Strides for viewing `tv` as `shape` without a copy, or None (torch's computeStride rule)."""
    shape = [int(s) for s in shape]
    if tv.is_contiguous():
        return contiguous_strides(shape)
    old = [(s, st) for s, st in zip(tv.shape, tv.strides) if s != 1]
    new_strides = [0] * len(shape)
    # group old dims into contiguous chunks, then split each chunk over new dims
    chunks = []
    for s, st in old:
        if chunks and chunks[-1][1] == s * st:
            chunks[-1] = (chunks[-1][0] * s, st)
        else:
            chunks.append((s, st))
    ci, remaining = 0, None
    for d, s in enumerate(shape):
        if s == 1:
            new_strides[d] = 1
            continue
        if remaining is None or remaining == 1:
            if ci >= len(chunks):
                return None
            remaining, base = chunks[ci]
            ci += 1
        if remaining % s:
            return None
        remaining //= s
        new_strides[d] = base * remaining
    if ci != len(chunks) or (remaining not in (None, 1)):
        return None
    return new_strides


def reshape(b: ProgramBuilder, tv: TV, shape: Sequence[int]) -> TV:
    shape = [int(s) for s in shape]
    if -1 in shape:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        shape[shape.index(-1)] = tv.numel // max(known, 1)
    st = view_strides(tv, shape)
    if st is None:
        tv = contiguous(b, tv)
        st = contiguous_strides(shape)
    return tv.with_view(shape, st)


def norm_dim(d: int, nd: int) -> int:
    return d + nd if d < 0 else d
