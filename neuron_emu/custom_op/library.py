"""A loaded custom-op library: its NEURON_LIBRARY ops registered three ways from one description —
as GpSimd instructions of the emulated ISA (neuron_emu.ops.register_library_op, so compiled programs and
saved models carry them by name), as `torch.ops.<ns>.<op>` (a CPU kernel that runs the instruction through
the kernel-level API, a Meta kernel from the shape function) and as a lowering for `trace`.

Each op's instruction: operands = its tensor arguments then the output (fp32 buffers, holding the tensor's
values exactly); int fields t<j>_rank (rank | torch::ScalarType code << 8), t<j>_dims0, t<j>_dims1 per tensor
(dims packed 16 bits each: a dim is at most 65535) then one per int64_t argument; real fields one per
double/Scalar argument. The harness (runtime/harness.cpp) decodes the same layout and stages a non-float
tensor in its own element type for the kernel.
"""
from __future__ import annotations

import ctypes
import json
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import torch

from neuron_emu import _C
from neuron_emu.hardware import core_spec
from neuron_emu.isa import Instr
from neuron_emu.ops import register_library_op

TENSOR, DOUBLE, INT, SCALAR = 0, 1, 2, 3
KIND_SCHEMA = {TENSOR: "Tensor", DOUBLE: "float", INT: "int", SCALAR: "Scalar"}
MAX_OPS = 10            # functions per library [api 4.2]
MAX_DIMS, MAX_DIM = 8, 65535  # tensor limits [api 4.2]
MAX_TENSORS = 5         # 6 operands per instruction, the last is the output
MAX_REALS = 4
DEFAULT_TIMEOUT_S = 60.0
# torch dtype -> torch::ScalarType code of the device header: the dtypes an op's tensors may have [api 4.3]
DTYPE_CODES = {torch.uint8: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 5, torch.float32: 6,
               torch.bfloat16: 15}
CODE_DTYPES = {c: d for d, c in DTYPE_CODES.items()}
CODE_NAMES = {0: "kByte", 1: "kChar", 2: "kShort", 3: "kInt", 4: "kLong", 5: "kHalf", 6: "kFloat", 7: "kDouble",
              15: "kBFloat16"}
FP32_EXACT_INT = 1 << 24  # device buffers hold fp32 values: an int32 beyond this is not held exactly


class CustomOpError(RuntimeError):
    """A custom-op library cannot be loaded or an op cannot be called as asked."""


@dataclass
class CustomOp:
    library: "CustomOpLibrary"
    index: int
    name: str
    kernel: str
    kinds: List[int]
    registry_name: str = ""
    last_cost: dict = field(default_factory=dict)

    @property
    def qualname(self) -> str:
        return f"{self.library.ns}::{self.name}"

    @property
    def n_tensors(self) -> int:
        return sum(k == TENSOR for k in self.kinds)

    def schema(self) -> str:
        args = ", ".join(f"{KIND_SCHEMA[k]} a{i}" for i, k in enumerate(self.kinds))
        return f"{self.name}({args}) -> Tensor"

    def field_names(self) -> Tuple[List[str], List[str]]:
        ints = [f"t{j}_{s}" for j in range(self.n_tensors + 1) for s in ("rank", "dims0", "dims1")]
        ints += [f"i{a}" for a, k in enumerate(self.kinds) if k == INT]
        reals = [f"r{a}" for a, k in enumerate(self.kinds) if k in (DOUBLE, SCALAR)]
        return ints, reals

    # ---- argument checks and encoding ----
    def check_shape(self, shape, what: str) -> None:
        shape = tuple(int(s) for s in shape)
        if len(shape) > MAX_DIMS or any(s > MAX_DIM for s in shape):
            raise CustomOpError(f"{self.qualname}: {what} has shape {list(shape)}; GpSimd custom ops take tensors of at "
                                f"most {MAX_DIMS} dims with each dim <= {MAX_DIM}")

    def check_dtype(self, dtype, what: str) -> int:
        code = DTYPE_CODES.get(dtype)
        if code is None:
            raise CustomOpError(f"{self.qualname}: {what} has dtype {dtype}; GpSimd custom ops take tensors of dtype "
                                f"{', '.join(str(d)[6:] for d in DTYPE_CODES)}")
        return code

    def fields(self, shapes, out_shape, args, dtypes) -> dict:
        """`dtypes`: the torch dtypes of the tensor arguments then of the output."""
        f = {}
        for j, (shp, dt) in enumerate(zip(list(shapes) + [out_shape], dtypes)):
            packed = [0, 0]
            for d, s in enumerate(shp):
                packed[d // 4] |= int(s) << (16 * (d % 4))
            f[f"t{j}_rank"] = len(shp) | DTYPE_CODES[dt] << 8
            f[f"t{j}_dims0"], f[f"t{j}_dims1"] = packed[0], packed[1]
        for a, (k, v) in enumerate(zip(self.kinds, args)):
            if k == INT:
                f[f"i{a}"] = int(v)
            elif k in (DOUBLE, SCALAR):
                f[f"r{a}"] = float(v)
        return f

    def split_args(self, args, what_tensor=torch.Tensor):
        if len(args) != len(self.kinds):
            raise CustomOpError(f"{self.qualname}: expected {len(self.kinds)} arguments ({self.schema()}), got {len(args)}")
        tensors, scalars = [], []
        for i, (k, a) in enumerate(zip(self.kinds, args)):
            if k == TENSOR:
                if not isinstance(a, what_tensor):
                    raise CustomOpError(f"{self.qualname}: argument {i} must be a Tensor, got {type(a).__name__}")
                tensors.append(a)
            scalars.append(a)
        return tensors, scalars

    def output_shape(self, shapes, args, dtypes):
        """Runs the library's shape function on shape-only tensors: (shape, torch dtype) of the op's output."""
        f = self.fields(shapes, (), args, list(dtypes) + [torch.float32])
        ints, reals = self.field_names()
        iv = np.zeros(48, np.int64)
        rv = np.zeros(4, np.float64)
        for k, name in enumerate(ints):
            iv[k] = f.get(name, 0)
        for k, name in enumerate(reals):
            rv[k] = f[name]
        out = np.zeros(10, np.int64)
        err = ctypes.create_string_buffer(1024)
        rc = self.library.lib.nemu_customop_shape(
            self.index, iv.ctypes.data_as(ctypes.c_void_p), rv.ctypes.data_as(ctypes.c_void_p),
            out.ctypes.data_as(ctypes.c_void_p), err, len(err))
        if rc != 0:
            raise CustomOpError(err.value.decode(errors="replace"))
        if int(out[9]) not in CODE_DTYPES:
            raise CustomOpError(f"{self.qualname}: the shape function returns a tensor of dtype "
                                f"{CODE_NAMES.get(int(out[9]), int(out[9]))}; op outputs may be "
                                f"{', '.join(CODE_NAMES[c] for c in sorted(CODE_DTYPES))}")
        shape = [int(s) for s in out[1:1 + out[0]]]
        self.check_shape(shape, "the shape function's result")
        return shape, CODE_DTYPES[int(out[9])]

    def instr(self, shapes, out_shape, args, operands, dtypes) -> Instr:
        return Instr(self.registry_name, list(operands), self.fields(shapes, out_shape, args, dtypes))

    # ---- eager (CPU) ----
    def run_eager(self, *args) -> torch.Tensor:
        tensors, _ = self.split_args(args)
        arrays = []
        for j, t in enumerate(tensors):
            self.check_dtype(t.dtype, f"tensor argument {j}")
            self.check_shape(t.shape, f"tensor argument {j}")
            t = t.detach()
            if t.dtype == torch.int32 and t.numel() and int(t.abs().max()) > FP32_EXACT_INT:
                raise CustomOpError(f"{self.qualname}: tensor argument {j} (int32) holds values beyond +-2^24; the "
                                    f"emulator's device buffers hold fp32 values, which cannot represent them exactly")
            arrays.append(t.contiguous().to(torch.float32).numpy())  # the device buffer: the values in fp32
        shapes = [tuple(t.shape) for t in tensors]
        dtypes = [t.dtype for t in tensors]
        out_shape, out_dtype = self.output_shape(shapes, args, dtypes)
        out = torch.empty(out_shape, dtype=torch.float32)
        row = self.instr(shapes, out_shape, args, range(len(arrays) + 1), dtypes + [out_dtype]).encode()
        try:
            self.last_cost = _C.run_instr(row, arrays + [out.numpy()], core_spec(2))
        except ValueError as e:  # the registry prefixes its internal op name: the harness already names the op
            msg = str(e)
            raise CustomOpError(msg[len(self.registry_name) + 2:] if msg.startswith(self.registry_name + ": ")
                                else msg) from None
        return out if out_dtype == torch.float32 else out.to(out_dtype)  # exact: the harness wrote out_dtype values

    def run_meta(self, *args) -> torch.Tensor:
        tensors, _ = self.split_args(args)
        for j, t in enumerate(tensors):
            self.check_dtype(t.dtype, f"tensor argument {j}")
            self.check_shape(t.shape, f"tensor argument {j}")
        shape, dtype = self.output_shape([tuple(t.shape) for t in tensors], args, [t.dtype for t in tensors])
        return torch.empty(shape, dtype=dtype, device="meta")


class CustomOpLibrary:
    def __init__(self, so_path: str, name: str, multicore: bool, build_id: str):
        self.path, self.name, self.multicore, self.build_id = so_path, name, bool(multicore), build_id
        try:
            self.lib = ctypes.CDLL(so_path)
        except OSError as e:
            raise CustomOpError(f"custom_op: cannot load {so_path}: {e}") from None
        lib = self.lib
        lib.nemu_customop_describe.argtypes = [ctypes.c_char_p, ctypes.c_int64]
        lib.nemu_customop_init.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_char_p, ctypes.c_int64]
        lib.nemu_customop_set_timeout.argtypes = [ctypes.c_double]
        lib.nemu_customop_shape.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                            ctypes.c_char_p, ctypes.c_int64]
        buf = ctypes.create_string_buffer(1 << 16)
        lib.nemu_customop_describe(buf, len(buf))
        desc = json.loads(buf.value.decode())
        self.ns = desc["ns"]
        if desc["error"]:
            raise CustomOpError(f"custom_op.load(name={name!r}): {desc['error']}")
        if not self.ns:
            raise CustomOpError(f"custom_op.load(name={name!r}): the shape sources register no ops: "
                                f"add NEURON_LIBRARY(<library>, m) {{ m.def(...); }} (torchneuron/register.h)")
        if self.ns == "builtin":
            raise CustomOpError(f"custom_op.load(name={name!r}): the library name 'builtin' is reserved "
                                f"(NEURON_LIBRARY at {desc['file']}:{desc['line']})")
        if len(desc["ops"]) > MAX_OPS:
            raise CustomOpError(f"custom_op.load(name={name!r}): library {self.ns} defines {len(desc['ops'])} functions; "
                                f"a custom-op library may define at most {MAX_OPS}")
        self.ops: Dict[str, CustomOp] = {}
        for i, o in enumerate(desc["ops"]):
            op = CustomOp(self, i, o["name"], o["kernel"], list(o["kinds"]))
            if op.name in self.ops:
                raise CustomOpError(f"custom_op.load(name={name!r}): op {op.qualname} is defined twice")
            nreal = sum(k in (DOUBLE, SCALAR) for k in op.kinds)
            if op.n_tensors > MAX_TENSORS or nreal > MAX_REALS:
                raise CustomOpError(f"{op.qualname}: {op.n_tensors} tensor and {nreal} double/Scalar arguments; the "
                                    f"emulator supports up to {MAX_TENSORS} and {MAX_REALS}")
            self.ops[op.name] = op

    def check_kernels(self, kernels: dict, rejected: dict) -> None:
        for op in self.ops.values():
            if op.kernel in rejected:
                raise CustomOpError(f"{op.qualname}: kernel {op.kernel}: {rejected[op.kernel]}")
            if op.kernel not in kernels:
                raise CustomOpError(f"{op.qualname}: the kernel function {op.kernel!r} named by m.def() is not defined "
                                    f"(with external linkage) in the compute sources")

    def init(self, timeout_s: float) -> None:
        err = ctypes.create_string_buffer(1024)
        if self.lib.nemu_customop_init(int(self.multicore), float(timeout_s), err, len(err)) != 0:
            raise CustomOpError(err.value.decode(errors="replace"))

    def set_timeout(self, seconds: float) -> None:
        self.lib.nemu_customop_set_timeout(float(seconds))

    def register(self) -> None:
        for op in self.ops.values():
            op.registry_name = f"{self.ns}.{op.name}@{self.build_id[:12]}{'.mc' if self.multicore else ''}"
            ints, reals = op.field_names()
            register_library_op(self.path, op.registry_name,
                                operands=[f"t{j}" for j in range(op.n_tensors)] + ["out"],
                                ints=ints, reals=reals, engine="GpSimdE", writes=True,
                                check=f"nemu_customop_check_{op.index}", cost=f"nemu_customop_cost_{op.index}",
                                exec=f"nemu_customop_exec_{op.index}")
        from neuron_emu.custom_op import torch_ops
        torch_ops.register(self)


_lock = threading.Lock()
LOADED: Dict[str, CustomOpLibrary] = {}   # by .so path


def load_built(so_path: str, name: str, multicore: bool, build_id: str, kernels: dict, rejected: dict,
               timeout_s: float = None) -> CustomOpLibrary:
    import os
    if timeout_s is None:
        timeout_s = float(os.environ.get("NEURON_EMU_CUSTOM_OP_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    with _lock:
        key = so_path  # a multicore build is a separate file (build.py hashes the flag)
        lib = LOADED.get(key)
        if lib is None:
            lib = CustomOpLibrary(so_path, name, multicore, build_id)
            lib.check_kernels(kernels, rejected)
            lib.init(timeout_s)
            LOADED[key] = lib
        lib.register()
        return lib
