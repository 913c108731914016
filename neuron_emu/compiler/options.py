"""neuronx-cc command-line flags accepted through `compiler_args`, parsed as the real CLI does.

Emulated compiler level: neuronx-cc 2.22 (Neuron SDK 2.27+), where `--auto-cast` defaults to
`none` (before 2.27 it was `matmult`; docs/reference/neuron-api.md section 2.10).
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

from neuron_emu.dtypes import AUTO_CAST_TYPES
from neuron_emu.isa import DType

EMULATED_NEURONX_CC_VERSION = "2.22.12471.0+emu"
# Inf1's compiler (torch_neuron_emu parses its flags): its own name and version in artifacts, errors and logs.
# ASSUMPTION: 1.x, the neuron-cc line; the exact last release is not in docs/reference.
EMULATED_NEURON_CC_VERSION = "1.0.0.0+emu"


class CompilerArgumentError(ValueError):
    pass


@dataclass
class CompilerOptions:
    target: str = "trn1"
    model_type: str = "generic"
    auto_cast: str = "none"
    auto_cast_type: str = "bf16"
    optlevel: int = 2
    mixed_precision_accumulation: bool = True
    fast_loading: bool = False
    verbose: str = "warning"
    logfile: Optional[str] = None
    argv: List[str] = field(default_factory=list)

    @property
    def cast_dtype(self) -> DType:
        return AUTO_CAST_TYPES[self.auto_cast_type]

    @property
    def matmul_dtype(self) -> DType:
        """Input dtype of TensorE ops: the auto-cast type unless auto-cast is none."""
        return DType.F32 if self.auto_cast == "none" else self.cast_dtype

    @property
    def compiler(self) -> str:
        """The real compiler of this target, whose wording errors and logs use."""
        return "neuron-cc" if self.target == "inf1" else "neuronx-cc"

    @property
    def compiler_version(self) -> str:
        return EMULATED_NEURON_CC_VERSION if self.target == "inf1" else EMULATED_NEURONX_CC_VERSION

    def command_line(self, workdir: str = "<workdir>") -> str:
        if self.target == "inf1":  # torch-neuron's subprocess line (neuron-api.md 1.2, #709)
            return " ".join(["neuron-cc", "compile", f"{workdir}/graph_def.pb", "--framework", "TENSORFLOW",
                             "--pipeline", "compile", "SaveTemps", "--output", f"{workdir}/graph_def.neff"]
                            + [shlex.quote(a) for a in self.argv] + ["--verbose", "35"])
        return " ".join(["neuronx-cc", "compile", f"{workdir}/model", "--framework", "XLA", "--target", self.target,
                         "--output", f"{workdir}/graph.neff"] + [shlex.quote(a) for a in self.argv])


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit the user's process
        raise CompilerArgumentError(f"neuronx-cc: error: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="neuronx-cc compile", add_help=False, allow_abbrev=False)
    p.add_argument("--target", choices=["inf2", "trn1", "trn1n"])
    p.add_argument("--model-type", choices=["generic", "transformer", "unet-inference"])
    p.add_argument("--auto-cast", choices=["none", "matmult", "all"])
    p.add_argument("--auto-cast-type", choices=sorted(AUTO_CAST_TYPES))
    p.add_argument("--optlevel", "-O", type=int, choices=[1, 2, 3])
    p.add_argument("--enable-mixed-precision-accumulation", action="store_true", default=None)
    p.add_argument("--disable-mixed-precision-accumulation", action="store_true", default=None)
    p.add_argument("--enable-fast-loading-neuron-binaries", action="store_true", default=None)
    p.add_argument("--enable-saturate-infinity", action="store_true", default=None)
    p.add_argument("--enable-fast-context-switch", action="store_true", default=None)
    p.add_argument("--verbose", choices=["debug", "info", "warning", "error", "critical", "35"])
    p.add_argument("--logfile")
    p.add_argument("--framework", choices=["XLA"])
    return p


def parse_compiler_args(compiler_args: Union[None, str, Sequence[str]], default_target: str = "trn1") -> CompilerOptions:
    """Parse `compiler_args` (a shell-like string or a list). Unknown or malformed flags raise
    CompilerArgumentError naming the flag."""
    if compiler_args is None:
        argv: List[str] = []
    elif isinstance(compiler_args, str):
        try:
            argv = shlex.split(compiler_args)
        except ValueError as e:
            raise CompilerArgumentError(f"compiler_args {compiler_args!r} cannot be split into flags: {e}") from None
    elif isinstance(compiler_args, (list, tuple)) and all(isinstance(a, str) for a in compiler_args):
        argv = list(compiler_args)
    else:
        raise CompilerArgumentError(f"compiler_args must be a string or a list of strings, got "
                                    f"{type(compiler_args).__name__} {compiler_args!r}")
    # -O2 and -O=2 spellings, as neuronx-cc accepts
    norm = []
    for a in argv:
        if len(a) == 3 and a.startswith("-O") and a[2].isdigit():
            norm += ["-O", a[2]]
        else:
            norm.append(a)
    ns, unknown = _parser().parse_known_args(norm)
    if unknown:
        raise CompilerArgumentError(f"neuronx-cc: error: unrecognized arguments: {' '.join(unknown)}")
    o = CompilerOptions(target=default_target, argv=argv)
    if ns.target:
        o.target = ns.target
    if ns.model_type:
        o.model_type = ns.model_type
    if ns.auto_cast:
        o.auto_cast = ns.auto_cast
    if ns.auto_cast_type:
        o.auto_cast_type = ns.auto_cast_type
    if ns.optlevel:
        o.optlevel = ns.optlevel
    if ns.disable_mixed_precision_accumulation:
        o.mixed_precision_accumulation = False
    if ns.enable_fast_loading_neuron_binaries:
        o.fast_loading = True
    if ns.verbose:
        o.verbose = ns.verbose
    o.logfile = ns.logfile
    return o
