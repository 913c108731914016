"""The open op registry: the schema is the one definition, and ops can be registered at run time from a
separately built library, run through the kernel API and inside programs, and be named by artifacts."""
import numpy as np
import pytest
import torch

from neuron_emu import _C
from neuron_emu.compiler import artifact
from neuron_emu.hardware import core_spec
from neuron_emu.isa import Instr, IoDType, Op, encode_program, schema
from neuron_emu.ops import register_library_op
from neuron_emu.runtime.model import LoadedModel
from op_library import build_library_op

# out = in * scale + shift over `n` elements; errors when n exceeds a buffer; cost n/lanes cycles.
SCALE_SHIFT_C = r"""
#include <stdio.h>
#include "nemu_op_abi.h"
int ScaleShift_check(const nemu_instr* in, const int64_t* numel, char* err, int64_t errlen) {
  if (in->ints[0] < 0 || in->ints[0] > numel[0] || in->ints[0] > numel[1]) {
    snprintf(err, (size_t)errlen, "n = %lld does not fit the operands", (long long)in->ints[0]);
    return 1;
  }
  return 0;
}
nemu_cost ScaleShift_cost(const nemu_instr* in, const nemu_core* core) {
  nemu_cost c = {0};
  c.cycles = core->gpsimd_start + (double)((in->ints[0] + core->gpsimd_lanes * core->gpsimd_cores - 1) /
                                           (core->gpsimd_lanes * core->gpsimd_cores));
  c.instructions = 1;
  c.bytes = in->ints[0] * 8;
  c.flops = in->ints[0] * 2;
  return c;
}
int ScaleShift_exec(const nemu_instr* in, float* const* op, const int64_t* numel, char* err, int64_t errlen) {
  for (int64_t i = 0; i < in->ints[0]; ++i) op[1][i] = op[0][i] * (float)in->reals[0] + (float)in->reals[1];
  return 0;
}
"""


@pytest.fixture(scope="module")
def scale_shift(tmp_path_factory):
    return build_library_op(tmp_path_factory.mktemp("op"), "ScaleShift", SCALE_SHIFT_C, operands=["In", "Out"],
                            ints=["n"], reals=["scale", "shift"])


def test_builtin_schema_is_the_encoding():
    sch = schema(Op.MatMul)
    assert sch.operands == ("A", "B", "bias?", "Out") and sch.min_operands == 3 and sch.max_operands == 4
    row = Instr(Op.LayerNorm, [0, 1], dict(rows=2, D=3, has_weight=0, has_bias=0, in_dtype=0, out_dtype=1,
                                           eps=1e-5)).encode()
    ln = schema(Op.LayerNorm)
    assert row[9 + ln.ints["D"]] == 3 and row[9 + ln.ints["out_dtype"]] == 1
    with pytest.raises(ValueError, match="LayerNorm: unknown field.*'Dim'"):
        Instr(Op.LayerNorm, [0, 1], dict(Dim=3)).encode()
    with pytest.raises(ValueError, match="LayerNorm: missing field.*eps"):
        Instr(Op.LayerNorm, [0, 1], dict(rows=2, D=3, has_weight=0, has_bias=0, in_dtype=0, out_dtype=0)).encode()
    with pytest.raises(ValueError, match="TensorCopy: needs a view layout"):
        Instr(Op.TensorCopy, [0, 1], dict(in_dtype=0, out_dtype=0)).encode()


def test_runtime_op_kernel_api(scale_shift):
    code, lib = scale_shift
    assert code >= 64 and schema("ScaleShift").engine == "GpSimdE"
    assert register_library_op(lib, "ScaleShift", operands=["In", "Out"], ints=["n"], reals=["scale", "shift"]) == code
    with pytest.raises(ValueError, match="already registered with a different definition"):
        register_library_op(lib, "ScaleShift", operands=["In", "Out"], ints=["n", "m"], reals=["scale", "shift"])
    x = np.arange(40, dtype=np.float32)
    out = np.zeros(40, np.float32)
    cost = _C.run_instr(Instr("ScaleShift", [0, 1], dict(n=40, scale=2.0, shift=0.5)).encode(), [x, out], core_spec(2))
    np.testing.assert_array_equal(out, x * 2 + 0.5)
    assert cost["engine"] == "GpSimdE" and cost["cycles"] == 150 + 1 and cost["flops"] == 80
    with pytest.raises(ValueError, match="ScaleShift: n = 41 does not fit"):
        _C.run_instr(Instr("ScaleShift", [0, 1], dict(n=41, scale=1.0, shift=0.0)).encode(), [x, out], core_spec(2))


def _program_blob(n):
    instrs = [Instr(Op.IoIn, [0], dict(io_index=0, io_dtype=IoDType.F32, numel=n)),
              Instr("ScaleShift", [0, 1], dict(n=n, scale=3.0, shift=-1.0), deps=[0]),
              Instr(Op.IoOut, [1], dict(io_index=0, io_dtype=IoDType.F32, numel=n), deps=[1])]
    rows, deps = encode_program(instrs)
    meta = {"core_generation": 2, "arena_floats": 2 * n, "ops": artifact.op_names(instrs),
            "inputs": [{"name": "input0", "shape": [n], "dtype": "float32"}],
            "outputs": [{"name": "output0", "shape": [n], "dtype": "float32"}]}
    buffers = np.array([[n, 0, 0], [n, 0, n]], np.int64)
    return meta, rows, deps, buffers


def test_runtime_op_in_a_program_named_by_the_artifact(scale_shift):
    code, _ = scale_shift
    meta, rows, deps, buffers = _program_blob(16)
    assert meta["ops"][str(code)] == "ScaleShift"
    model = LoadedModel(artifact.serialize(meta, {"instrs": rows, "deps": deps, "buffers": buffers}))
    x = torch.randn(16)
    (y,) = model([x])
    torch.testing.assert_close(y, x * 3 - 1, rtol=0, atol=0)
    # the same program saved by a process where the op had another code: resolved by name
    rows2 = rows.copy()
    rows2[1, 0] = 999
    meta2 = dict(meta, ops={**{k: v for k, v in meta["ops"].items() if v != "ScaleShift"}, "999": "ScaleShift"})
    (y2,) = LoadedModel(artifact.serialize(meta2, {"instrs": rows2, "deps": deps, "buffers": buffers}))([x])
    torch.testing.assert_close(y2, y, rtol=0, atol=0)
    # an op this process does not have: a clear load error naming it
    meta3 = dict(meta2, ops={**meta2["ops"], "999": "NotLoadedOp"})
    with pytest.raises(artifact.ArtifactError, match="uses op 'NotLoadedOp', which is not registered"):
        LoadedModel(artifact.serialize(meta3, {"instrs": rows2, "deps": deps, "buffers": buffers}))
