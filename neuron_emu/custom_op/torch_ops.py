"""`torch.ops.<ns>.<op>` for custom-op libraries, and their lowering inside `trace`.

Schemas are defined once per process; the kernels dispatch through `CURRENT`, so loading another build of
the same library (e.g. the TCM version after the accessor version, both `my_ops`) swaps the implementation,
as long as the schema is unchanged. In a traced model the op lowers to its GpSimd instruction: a saved
model keeps the op by name and needs the library loaded to run.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch

from neuron_emu.compiler.lowering import register as register_lowering
from neuron_emu.compiler.lowering.common import dma_copy
from neuron_emu.isa import contiguous_strides

_torch_libs: Dict[str, torch.library.Library] = {}
SCHEMAS: Dict[Tuple[str, str], str] = {}
CURRENT: Dict[Tuple[str, str], object] = {}   # (ns, op) -> CustomOp


def _current(key):
    return CURRENT[key]


def register(library) -> None:
    from neuron_emu.custom_op.library import CustomOpError

    for op in library.ops.values():
        key = (library.ns, op.name)
        schema = op.schema()
        if key in SCHEMAS:
            if SCHEMAS[key] != schema:
                raise CustomOpError(f"{op.qualname}: already loaded in this process with schema {SCHEMAS[key]!r}; this "
                                    f"build declares {schema!r} (restart the process to change an op's arguments)")
            CURRENT[key] = op
            _lazy_version(library.ns, op)
            continue
        lib = _torch_libs.get(library.ns)
        if lib is None:
            try:
                lib = torch.library.Library(library.ns, "DEF")
            except RuntimeError as e:
                raise CustomOpError(f"custom_op: cannot create the op namespace torch.ops.{library.ns}: {e}") from None
            _torch_libs[library.ns] = lib
        lib.define(schema)
        lib.impl(op.name, lambda *a, _k=key: _current(_k).run_eager(*a), "CPU")
        lib.impl(op.name, lambda *a, _k=key: _current(_k).run_meta(*a), "Meta")
        SCHEMAS[key] = schema
        CURRENT[key] = op
        overload = getattr(getattr(torch.ops, library.ns), op.name).default
        register_lowering(overload)(lambda b, node, *args, _k=key: lower(_current(_k), b, node, *args))
        _lazy_version(library.ns, op)


def _lazy_version(ns, op) -> None:
    """On the lazy device the op records into the graph (its lowering above) and runs as its GpSimd instruction
    at the sync; graphs name the loaded build, so loading another build of the library compiles them anew."""
    from neuron_emu.lazy.record import set_op_version
    set_op_version(getattr(getattr(torch.ops, ns), op.name).default, op.registry_name)


def lower(op, b, node, *args):
    """The op as one GpSimd instruction over whole buffers (ABI v1; a buffer holds its dtype's values in fp32, the
    harness stages them in the dtype for the kernel): inputs that are views are copied."""
    from neuron_emu.compiler.builder import TV

    targets = getattr(b, "graph_targets", set())
    if any(getattr(t, "overloadpacket", t) is torch.ops.aten.sort for t in targets):
        raise NotImplementedError(f"{op.qualname}: models using torch.sort cannot use CustomOps "
                                  f"(a documented limit of Neuron custom C++ operators)")
    tensors, _ = op.split_args(args, TV)
    ops_tv = []
    for j, tv in enumerate(tensors):
        op.check_shape(tv.shape, f"tensor argument {j}")
        op.check_dtype(tv.dtype, f"tensor argument {j}")
        if not (tv.offset == 0 and tv.is_contiguous() and b.buf_numel[tv.buf] == tv.numel):
            fresh = b.alloc(tv.shape, tv.dtype, tv.emu)
            dma_copy(b, tv, fresh)
            tv = fresh
        ops_tv.append(tv.with_view(tv.shape, contiguous_strides(tv.shape)))
    shapes = [tuple(tv.shape) for tv in ops_tv]
    dtypes = [tv.dtype for tv in ops_tv]
    out_shape, out_dtype = op.output_shape(shapes, args, dtypes)
    out = b.alloc(out_shape, out_dtype)
    b.emit(op.instr(shapes, out_shape, args, [tv.buf for tv in ops_tv] + [out.buf], dtypes + [out_dtype]), ops_tv,
           [out])
    return out
