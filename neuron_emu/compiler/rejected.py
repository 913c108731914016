"""Ops the real neuronx-cc rejects, each with the source that says so. The emulator must not compile them (a user
would only find out on hardware): they raise `RejectedOpError`, the compile failure the real one gives, and the
partitioner (torch_neuronx_emu/partitioning.py) puts them on CPU. Anything absent here that has no lowering is an
emulator gap and gets the ordinary "not supported by the emulated Neuron compiler" error instead."""
from __future__ import annotations

from typing import Optional

from neuron_emu.compiler.errors import CompilationError, compiler_name

_APP_NOTE = ("torch-neuronx graph partitioner app note (SDK archive/appnotes/torch-neuronx/"
             "torch-neuronx-graph-partitioner-app-note.rst): its example of an op neuronx-cc does not support")
_ANALYZE = ("torch_neuronx.analyze API doc (api-torch-neuronx-analyze.rst): its example report lists aten::fft_fft "
            "under unsupported_operators with failureAt \"neuronx-cc\"")
_DYNAMIC = ("torch_neuronx.trace doc, limitations: fixed intermediate shapes (\"torch.nonzero\" unsupported); an "
            "output whose size depends on the input's values cannot be compiled")

_COMPLEX = ("torch_neuronx trace internals (neuron-api.md, SRC torch_neuronx/xla_impl/trace.py): the metaneff dtype map "
            "has no complex type (complex -> None); complex tensors cannot cross or live in a Neuron graph")
_INV = ("aws-neuron/aws-neuron-sdk#816 \"torch.linalg.inv crashes the torch_neuronx.trace\": \"Currently we don't "
        "support the torch.linalg.inv operation\" (Neuron team)")

# aten op name (overload packet, "aten::x") -> source
REJECTED = {
    "aten::sort": _APP_NOTE,
    "aten::argsort": _APP_NOTE + " (argsort is a sort returning the permutation)",
    "aten::nonzero": _DYNAMIC,
    "aten::masked_select": _DYNAMIC + " (masked_select is a gather at nonzero(mask))",
    "aten::unique": _DYNAMIC,
    "aten::_unique2": _DYNAMIC,
    "aten::unique_consecutive": _DYNAMIC,
    "aten::fft_fft": _ANALYZE,
    **{f"aten::{n}": _ANALYZE + "; its result is complex: " + _COMPLEX
       for n in ("_fft_r2c", "_fft_c2c", "_fft_c2r", "fft_rfft", "fft_ifft", "fft_irfft", "fft_hfft", "stft")},
    **{f"aten::{n}": _COMPLEX for n in ("complex", "polar", "view_as_complex", "view_as_complex_copy",
                                         "view_as_real", "view_as_real_copy", "_conj", "_conj_copy")},
    "aten::linalg_inv_ex": _INV,
    "aten::linalg_inv": _INV,
}


def reject_dtype(dtype, what: str):
    """A complex graph input/output: the real trace has no dtype for it."""
    return RejectedOpError(f"{compiler_name()}: error: {what} has dtype {dtype}, which Neuron does not support. "
                           f"Source: {_COMPLEX}")


class RejectedOpError(CompilationError):
    """neuronx-cc cannot compile this operator (as on the real SDK): run it on CPU instead."""


def rejection(op_name: str) -> Optional[str]:
    """The source saying neuronx-cc rejects `op_name` ("aten::sort"), or None."""
    return REJECTED.get(op_name)


def cpu_advice() -> str:
    """What a user does with an operator Neuron cannot compile, in the target SDK's terms."""
    fix = ("torch_neuron.trace(..., fallback=True) (the default) to run it on CPU between Neuron subgraphs"
           if compiler_name() == "neuron-cc" else
           "torch_neuronx.trace(..., partitioner_config=torch_neuronx.PartitionerConfig()) "
           "to run it on CPU between Neuron subgraphs")
    return f"Run this part of the model on CPU (trace the submodules around it) or use {fix}."


def reject(op_name: str, where: str, shapes) -> RejectedOpError:
    cc = compiler_name()
    return RejectedOpError(
        f"{cc}: error: operator {op_name} is not supported by {cc} (called from {where}, input shapes "
        f"{shapes}). {cpu_advice()} Source: {REJECTED[op_name]}")
