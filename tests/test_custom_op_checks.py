"""The checks the emulator adds to custom C++ operators (beyond the real SDK, which corrupts memory silently):
bounds-checked accessors and TCM transfers, inputs never modified, multicore overlap / unwritten-output
detection, faults and hangs in user code turned into errors naming the op; printf; scalar arguments."""
import os

import pytest
import torch

from neuron_emu.custom_op.library import LOADED, CustomOpError
from torch_neuronx_emu.xla_impl import custom_op

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "custom_op_src")


@pytest.fixture(scope="module")
def faulty():
    custom_op.load("faulty", [os.path.join(SRC, "faulty.cpp")], [os.path.join(SRC, "faulty_shape.cpp")])
    lib = next(lib for lib in LOADED.values() if lib.ns == "faulty_ops")
    lib.set_timeout(0.5)
    yield torch.ops.faulty_ops
    lib.set_timeout(60.0)


@pytest.fixture(scope="module")
def mc_faulty():
    custom_op.load("mcfaulty", [os.path.join(SRC, "multicore_faulty.cpp")],
                   [os.path.join(SRC, "multicore_faulty_shape.cpp")], multicore=True)
    return torch.ops.mc_faulty_ops


def test_out_of_bounds_accessor_read_and_write_name_op_tensor_index_core(faulty):
    x = torch.randn(3, 4)
    with pytest.raises(CustomOpError, match=r"^faulty_ops::oob_read: out-of-bounds access of argument 0 \(input, shape "
                                            r"\[3, 4\]\) at index \[3\]\[\.\]: index 3 is outside dim 0 of size 3 on GpSimd core 0$"):
        faulty.oob_read(x)
    with pytest.raises(CustomOpError, match=r"^faulty_ops::oob_write: out-of-bounds access of the op's output "
                                            r"\(get_dst_tensor\(\), shape \[3, 4\]\) at index \[0\]\[4\]: .* core 0$"):
        faulty.oob_write(x)


def test_tcm_transfer_past_its_tcm_malloc_block(faulty):
    faulty.tcm_overflow(torch.randn(8, 8))  # 256 bytes fit the block exactly
    with pytest.raises(CustomOpError, match=r"faulty_ops::tcm_overflow: tensor_to_tcm of 65 elements of argument 0 .*"
                                            r"does not lie inside a tcm_malloc\(\) block"):
        faulty.tcm_overflow(torch.randn(65))


def test_inputs_are_never_modified_and_printf_is_shown_after_the_op(faulty, monkeypatch, capfd):
    v = torch.arange(5.0)
    monkeypatch.delenv("NEURON_RT_LOG_LEVEL", raising=False)
    torch.testing.assert_close(faulty.scribble(v), 2 * torch.arange(5.0), rtol=0, atol=0)
    torch.testing.assert_close(v, torch.arange(5.0), rtol=0, atol=0)  # the kernel wrote -1 into a private copy
    assert "scribbled" not in capfd.readouterr().out  # printf needs NEURON_RT_LOG_LEVEL >= INFO
    monkeypatch.setenv("NEURON_RT_LOG_LEVEL", "INFO")
    monkeypatch.setenv("NEURON_RT_GPSIMD_STDOUT_QUEUE_SIZE_BYTES", "1000")  # not a power of two: disabled
    faulty.scribble(v)
    assert "scribbled" not in capfd.readouterr().out
    monkeypatch.setenv("NEURON_RT_GPSIMD_STDOUT_QUEUE_SIZE_BYTES", "1024")
    faulty.scribble(v)
    out = capfd.readouterr().out
    assert "INFO  TDRV:pool_stdio_queue_consume_all_entries    Printing stdout from GPSIMD:\nscribbled 5 elements\n" in out


def test_scalar_arguments_and_library_ops(faulty):
    x = torch.randn(4, 6)
    # each device op computes in double and stores to the kFloat tensor: exact products/sums of two floats,
    # rounded once, i.e. eager fp32's correctly rounded add then mul
    torch.testing.assert_close(faulty.affine(x, 0.5, 3), (x + 0.5) * 3, rtol=0, atol=0)
    assert str(faulty.affine.default._schema) == "faulty_ops::affine(Tensor a0, float a1, int a2) -> Tensor"


def test_multicore_overlap_unwritten_and_accessor_are_reported(mc_faulty):
    y = torch.randn(100)
    with pytest.raises(CustomOpError, match=r"mc_faulty_ops::overlapping: overlapping multicore writes: element 12 of "
                                            r"the op's output .* written by GpSimd core 0 and by core 1"):
        mc_faulty.overlapping(y)
    with pytest.raises(CustomOpError, match=r"mc_faulty_ops::gappy: 4 of 100 elements of the op's output were written "
                                            r"by no GpSimd core \(first: element 96\)"):
        mc_faulty.gappy(y)
    torch.testing.assert_close(mc_faulty.gappy(torch.arange(96.0)), torch.arange(96.0), rtol=0, atol=0)
    with pytest.raises(CustomOpError, match=r"accessor\(\) is single-core only: a multicore kernel must use "
                                            r"tcm_accessor\(\)"):
        mc_faulty.uses_accessor(y)


def test_abort_and_hang_in_user_code_become_errors(faulty):
    x = torch.randn(2, 2)
    with pytest.raises(CustomOpError, match=r"faulty_ops::aborts: the kernel crashed with abort\(\) \(SIGABRT\) on GpSimd core 0"):
        faulty.aborts(x)
    with pytest.raises(CustomOpError, match=r"faulty_ops::spins: the kernel did not finish within 0.5 s on GpSimd core 0"):
        faulty.spins(x)
    # the library keeps working after both
    torch.testing.assert_close(faulty.scribble(torch.ones(3)), 2 * torch.ones(3), rtol=0, atol=0)


def test_segfault_in_user_code_is_an_error_and_fences_the_library(faulty):
    """Last in this module: a memory fault may have corrupted the process, so the library refuses further calls."""
    with pytest.raises(CustomOpError, match=r"faulty_ops::segv: the kernel crashed with a segmentation fault \(SIGSEGV\) "
                                            r"on GpSimd core 0"):
        faulty.segv(torch.randn(2, 2))
    with pytest.raises(CustomOpError, match=r"faulty_ops::scribble: refused: a memory fault in faulty_ops::segv earlier"):
        faulty.scribble(torch.ones(3))
