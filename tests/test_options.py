import pytest

from neuron_emu.compiler.options import CompilerArgumentError, parse_compiler_args
from neuron_emu.isa import DType


def test_defaults_follow_current_neuronx_cc():
    o = parse_compiler_args(None)
    assert o.auto_cast == "none" and o.auto_cast_type == "bf16" and o.optlevel == 2 and o.model_type == "generic"
    assert o.matmul_dtype == DType.F32


def test_string_and_list_forms():
    a = parse_compiler_args("--auto-cast matmult --auto-cast-type fp16 -O3 --target inf2 --model-type transformer")
    b = parse_compiler_args(["--auto-cast=matmult", "--auto-cast-type=fp16", "--optlevel", "3", "--target=inf2",
                             "--model-type=transformer"])
    for o in (a, b):
        assert (o.auto_cast, o.auto_cast_type, o.optlevel, o.target, o.model_type) == ("matmult", "fp16", 3, "inf2", "transformer")
    assert a.matmul_dtype == DType.FP16


def test_rightmost_wins_and_flags():
    o = parse_compiler_args("--auto-cast-type fp16 --auto-cast-type bf16 --enable-fast-loading-neuron-binaries "
                            "--enable-mixed-precision-accumulation --verbose info --logfile /tmp/x.log")
    assert o.auto_cast_type == "bf16" and o.fast_loading and o.verbose == "info" and o.logfile == "/tmp/x.log"


@pytest.mark.parametrize("args,flag", [("--bogus", "--bogus"), ("--auto-cast sometimes", "--auto-cast"),
                                       ("-O 7", "-O"), ("--target inf9", "--target")])
def test_errors_name_the_flag(args, flag):
    with pytest.raises(CompilerArgumentError, match=flag):
        parse_compiler_args(args)
