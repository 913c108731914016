"""An execution that fails inside Program::run (a run-time registered op whose exec reports an error) under the
native forward kernel: the error reaches the caller as the Python kernels raise it, the call's tensors and the
GIL are released (later calls run, natively), on the calling thread and on a core's worker thread alike."""
import numpy as np
import pytest
import torch

import torch_neuronx_emu  # noqa: F401  (registers neuron::forward_v2)
from neuron_emu import _C
from neuron_emu.compiler import artifact
from neuron_emu.isa import Instr, IoDType, Op, encode_program
from neuron_emu.runtime import ops, placement
from op_library import build_library_op

pytestmark = pytest.mark.skipif(not ops.NATIVE, reason="this torch lacks the stable C ABI: Python kernels only")

# out = in + 1, failing on any value below -100
PICKY_C = r"""
#include <stdio.h>
#include "nemu_op_abi.h"
int Picky_check(const nemu_instr* in, const int64_t* numel, char* err, int64_t errlen) {
  return in->ints[0] > numel[0] || in->ints[0] > numel[1];
}
nemu_cost Picky_cost(const nemu_instr* in, const nemu_core* core) {
  nemu_cost c = {0};
  c.cycles = 10;
  c.instructions = 1;
  return c;
}
int Picky_exec(const nemu_instr* in, float* const* op, const int64_t* numel, char* err, int64_t errlen) {
  for (int64_t i = 0; i < in->ints[0]; ++i) {
    if (op[0][i] < -100) { snprintf(err, (size_t)errlen, "value %g below -100", op[0][i]); return 1; }
    op[1][i] = op[0][i] + 1;
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def picky_blob(tmp_path_factory):
    build_library_op(tmp_path_factory.mktemp("picky"), "Picky", PICKY_C, operands=["In", "Out"], ints=["n"], reals=[])
    n = 16
    instrs = [Instr(Op.IoIn, [0], dict(io_index=0, io_dtype=IoDType.F32, numel=n)),
              Instr("Picky", [0, 1], dict(n=n), deps=[0]),
              Instr(Op.IoOut, [1], dict(io_index=0, io_dtype=IoDType.F32, numel=n), deps=[1])]
    rows, deps = encode_program(instrs)
    meta = {"core_generation": 2, "arena_floats": 2 * n, "ops": artifact.op_names(instrs),
            "inputs": [{"name": "input0", "shape": [2, 8], "dtype": "float32"}],
            "outputs": [{"name": "output0", "shape": [2, 8], "dtype": "float32"}]}
    buffers = np.array([[n, 0, 0], [n, 0, n]], np.int64)
    return lambda: artifact.serialize(meta, {"instrs": rows, "deps": deps, "buffers": buffers})


def _call(x, blob):
    n = _C.forward_op_native_calls()
    (y,) = torch.ops.neuron.forward_v2([x], blob)
    return y, _C.forward_op_native_calls() - n


def test_a_failing_execution_raises_and_later_calls_run(picky_blob):
    blob = picky_blob()
    x = torch.randn(2, 8)
    torch.ops.neuron.forward_v2([x], blob)   # places it
    bad = x.clone()
    bad[1, 3] = -1000
    with torch.no_grad():
        for _ in range(2):
            with pytest.raises(ValueError, match="Picky: value -1000 below -100"):
                torch.ops.neuron.forward_v2([bad], blob)
        y, n = _call(x, blob)
    assert n == 1 and torch.equal(y, x + 1)


def test_a_failing_chunk_on_a_core_worker_raises(picky_blob):
    blob = picky_blob()
    placement.place(blob, [0, 1], dynamic=True)   # 4 chunks of 2 rows: 2 on core 0 (caller), 2 on core 1 (worker)
    x = torch.randn(8, 8)
    x[7, 0] = -1000   # in core 1's share
    with torch.no_grad():
        with pytest.raises(ValueError, match="Picky: value -1000 below -100"):
            torch.ops.neuron.forward_v2([x], blob)
        x[7, 0] = 1
        y, n = _call(x, blob)
    assert n == 1 and torch.equal(y, x + 1)
