"""Builds a run-time registered op (neuron_emu.ops.register_library_op) from C source for a test."""
import shutil
import subprocess

import pytest

from neuron_emu.ops import ABI_HEADER, register_library_op


def build_library_op(directory, name: str, source: str, **fields) -> tuple:
    """Compile `source` (defining <name>_check/_cost/_exec) into a library in `directory` and register the op
    with `fields` (operands, ints, reals); (its code, the library's path). Skips the test without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    src, lib = directory / f"{name}.c", directory / f"lib{name}.so"
    src.write_text(source)
    subprocess.run([cc, "-shared", "-fPIC", "-O2", f"-I{ABI_HEADER.rsplit('/', 1)[0]}", str(src), "-o", str(lib)],
                   check=True)
    return register_library_op(str(lib), name, **fields), str(lib)
