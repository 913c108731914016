"""ProgramBuilder: buffers, tensor views over them, and instruction emission for the lowering passes.

A `TV` (tensor view) is where a captured value lives: a buffer id plus offset/shape/strides in
elements, its torch dtype (the model's view of it) and `emu` (the emulated dtype its stored fp32
values are representable in). View ops only make new TVs; instructions read and write buffers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
import torch

from neuron_emu.dtypes import TORCH_TO_EMU
from neuron_emu.isa import DType, Instr, Op, contiguous_strides

ROW_WISE_OPS = {Op.Softmax, Op.LayerNorm}     # reduce along the innermost dim (the SBUF free axis)
ELEMENTWISE_OPS = {Op.TensorTensor, Op.TensorScalar, Op.Activation, Op.TensorCopy, Op.VecSelect, Op.Select}

INTERMEDIATE, CONSTANT = 0, 1


@dataclass(frozen=True)
class TV:
    buf: int
    offset: int
    shape: tuple
    strides: tuple
    dtype: torch.dtype
    emu: DType = DType.F32

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def is_contiguous(self) -> bool:
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides)):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    def with_view(self, shape, strides, offset=None) -> "TV":
        return TV(self.buf, self.offset if offset is None else offset, tuple(int(s) for s in shape),
                  tuple(int(s) for s in strides), self.dtype, self.emu)

    def permuted(self, dims) -> "TV":
        """The view with its dimensions in the order `dims` (torch.permute; no data moves)."""
        return self.with_view([self.shape[d] for d in dims], [self.strides[d] for d in dims])

    def with_dtype(self, dtype, emu=None) -> "TV":
        return TV(self.buf, self.offset, self.shape, self.strides, dtype, self.emu if emu is None else emu)


class ProgramBuilder:
    def __init__(self, options, generation: int):
        from neuron_emu.hardware import CORES

        self.options = options
        self.generation = generation
        self.engines = CORES[generation].engines  # what this core has; lowerings pick instructions from it
        self.buf_numel: List[int] = []
        self.buf_kind: List[int] = []
        self.const_data: Dict[int, np.ndarray] = {}
        self._const_by_storage: Dict[tuple, int] = {}
        self._rounded: Dict[tuple, int] = {}
        self.const_emu: Dict[int, DType] = {}   # constant buffer -> dtype its values were rounded to
        self.instrs: List[Instr] = []
        self.reads: List[List[int]] = []
        self.writes: List[List[int]] = []
        self.src_names: List[str] = []
        self.src_where: List[str] = []
        self.current_src = -1
        # Buffers a row-wise op (softmax, layer norm) wrote: the reduced innermost dim sits on the SBUF free axis
        # (engines reduce along it), so a matmul contracting over it transposes them first (lowering/matmul.py);
        # the ones already transposed once, whose transposed copy later matmuls reuse.
        self.free_axis_rows: set = set()
        self.pe_transposed: set = set()

    # ---- buffers ----
    def alloc(self, shape, dtype: torch.dtype, emu: DType = DType.F32) -> TV:
        shape = tuple(int(s) for s in shape)
        numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
        self.buf_numel.append(numel)
        self.buf_kind.append(INTERMEDIATE)
        return TV(len(self.buf_numel) - 1, 0, shape, tuple(contiguous_strides(shape)), dtype, emu)

    def const(self, t: torch.Tensor) -> TV:
        """A constant tensor (weight, folded value). Storages are shared, so views of one weight cost one copy."""
        t = t.detach()
        if t.dtype.is_complex:
            raise NotImplementedError(f"complex constant of shape {tuple(t.shape)}")
        st = t.untyped_storage()
        key = (st.data_ptr(), st.nbytes(), t.dtype)
        buf = self._const_by_storage.get(key)
        if buf is None:
            base = torch.empty(0, dtype=t.dtype).set_(st, 0, (st.nbytes() // t.element_size(),), (1,))
            data = base.to(torch.float32).numpy() if base.dtype != torch.float32 else base.numpy()
            buf = self._new_const(np.ascontiguousarray(data, dtype=np.float32))
            self._const_by_storage[key] = buf
        emu = TORCH_TO_EMU.get(t.dtype, DType.F32)
        return TV(buf, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype, emu)

    def _new_const(self, data: np.ndarray) -> int:
        self.buf_numel.append(int(data.size))
        self.buf_kind.append(CONSTANT)
        buf = len(self.buf_numel) - 1
        self.const_data[buf] = data
        return buf

    def is_const(self, tv: TV) -> bool:
        return self.buf_kind[tv.buf] == CONSTANT

    def rounded_const(self, tv: TV, dtype: DType) -> TV:
        """The constant rounded to `dtype` at compile time (the compiler stores cast weights in the program)."""
        from neuron_emu import _C

        if dtype == DType.F32 or tv.emu == dtype:
            return tv
        key = (tv.buf, int(dtype))
        buf = self._rounded.get(key)
        if buf is None:
            buf = self._new_const(_C.round_to(self.const_data[tv.buf], int(dtype)))
            self._rounded[key] = buf
            self.const_emu[buf] = dtype
        return TV(buf, tv.offset, tv.shape, tv.strides, tv.dtype, dtype)

    # ---- instructions ----
    def emit(self, instr: Instr, reads: Sequence[TV], writes: Sequence[TV]) -> int:
        instr.src = self.current_src
        if (instr.op in ROW_WISE_OPS and instr.fields.get("inner", 1) == 1) or \
                (instr.op in ELEMENTWISE_OPS and any(r.buf in self.free_axis_rows for r in reads)):
            self.free_axis_rows.update(w.buf for w in writes)   # elementwise ops keep their input's layout
        self.instrs.append(instr)
        self.reads.append([r.buf for r in reads])
        self.writes.append([w.buf for w in writes])
        return len(self.instrs) - 1

    def has_engine(self, name: str) -> bool:
        return name in self.engines

    def set_source(self, name: str, where: str) -> None:
        self.src_names.append(name)
        self.src_where.append(where)
        self.current_src = len(self.src_names) - 1


def out_emu(builder: ProgramBuilder, dtype: torch.dtype) -> DType:
    """Emulated dtype an op's result is rounded to: the tensor's own low-precision dtype, or the
    auto-cast type for fp32 results under `--auto-cast all`."""
    if dtype != torch.float32 and dtype in TORCH_TO_EMU:
        return TORCH_TO_EMU[dtype]
    if dtype == torch.float32 and builder.options.auto_cast == "all":
        return builder.options.cast_dtype
    return DType.F32
