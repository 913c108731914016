"""-DSTACK_SIZE has a meaning: a kernel runs on a stack of that many bytes (default 8 KB, "declare stack > ~8 KB"),
so one that needs more fails with an error naming the op and the declared size, never a crash; declaring enough
makes it run. The library stays usable after an overflow (the guard page kept the host's memory intact)."""
import os

import pytest
import torch

from neuron_emu.custom_op.library import CustomOpError
from torch_neuronx_emu.xla_impl import custom_op

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "custom_op_src")


def load(**kw):
    custom_op.load("stack" + "".join(f.split("=")[-1] for f in kw.get("extra_cflags", [])),
                   [os.path.join(SRC, "stack.cpp")], [os.path.join(SRC, "stack_shape.cpp")], **kw)
    return torch.ops.stack_ops


def test_kernel_over_the_default_stack_fails_and_runs_with_stack_size_declared():
    x = torch.randn(50)
    want = x + (torch.arange(50) * 7 % 3072).float()
    ops = load()
    with pytest.raises(CustomOpError, match=r"^stack_ops::big_local: the kernel used at least (1[2-9]|2\d)\d{3} bytes "
                                            r"of stack, more than its 8192-byte STACK_SIZE \(the default; declare more "
                                            r"with extra_cflags=\['-DSTACK_SIZE=<bytes>'\], at most 409600\) on GpSimd "
                                            r"core 0$"):
        ops.big_local(x)
    ops = load(extra_cflags=["-DSTACK_SIZE=20000"])
    torch.testing.assert_close(ops.big_local(x), want, rtol=0, atol=0)
    ops = load(extra_cflags=["-DSTACK_SIZE=12000"])  # declared, but not enough
    with pytest.raises(CustomOpError, match=r"more than its 12000-byte STACK_SIZE \(declare more"):
        ops.big_local(x)


def test_stack_overflow_is_an_error_naming_the_op_and_the_library_keeps_working():
    ops = load(extra_cflags=["-DSTACK_SIZE=20000"])
    x = torch.randn(50)
    for op in (ops.recurse, ops.huge_frame):
        with pytest.raises(CustomOpError, match=r"^stack_ops::(recurse|huge_frame): stack overflow on GpSimd core 0: "
                                                r"the kernel ran past its 20000-byte STACK_SIZE"):
            op(x)
    torch.testing.assert_close(ops.big_local(x), x + (torch.arange(50) * 7 % 3072).float(), rtol=0, atol=0)
