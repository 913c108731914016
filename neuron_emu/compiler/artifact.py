"""The compiled artifact ("NEFF"): a versioned, pickle-free binary that travels inside the saved
TorchScript file as a uint8 buffer.

Layout: a 40-byte prefix  b"NEMUNEFF" | u32 format version | u32 flags | 16-byte uid | u64 header length,
then a UTF-8 JSON header, then 64-byte-aligned binary sections named in the header:
  instrs  int64 [n, 64]     instruction table (csrc/isa.h)
  deps    int64 [d]         dependency list
  buffers int64 [b, 3]      per buffer: numel, kind (0 intermediate, 1 constant, 2 constant stored in bf16,
                            3 constant stored in fp16: see const_storage.py), arena offset
  const.<buffer id>         constant data (weights, folded values): float32, or uint16 bf16 bit patterns
                            (kind 2), or float16 (kind 3)
The header's "ops" maps each op code used in `instrs` to the op's name: codes of ops registered at run
time differ between processes, so the loader resolves them by name (resolve_ops).
Everything is length- and bounds-checked on load; the C++ Program then validates every instruction
against the buffer sizes, so a corrupt file raises an error instead of reading out of bounds."""
from __future__ import annotations

import json
import math
import struct
import uuid
from typing import Dict, Tuple

import numpy as np
import torch

MAGIC = b"NEMUNEFF"
FORMAT_VERSION = 2  # 2: instruction fields laid out by the op schema; the header names the ops used
PREFIX = struct.Struct("<8sII16sQ")
_ALIGN = 64
_DTYPES = {"int64": np.int64, "float32": np.float32, "uint16": np.uint16, "float16": np.float16}


class ArtifactError(RuntimeError):
    pass


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def serialize(meta: dict, sections: Dict[str, np.ndarray]) -> torch.Tensor:
    """Write header + sections into one uint8 tensor (64-byte aligned storage, no intermediate bytes copies)."""
    uid = uuid.uuid4().bytes
    table = {}
    pos = 0
    for name, arr in sections.items():
        table[name] = {"offset": pos, "nbytes": int(arr.nbytes), "dtype": str(arr.dtype), "shape": list(arr.shape)}
        pos = _align(pos + arr.nbytes)
    header = dict(meta, sections=table, format="neuron-emu-neff", format_version=FORMAT_VERSION)
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    data_start = _align(PREFIX.size + len(hbytes))
    blob = torch.zeros(data_start + pos, dtype=torch.uint8)
    view = blob.numpy()
    view[:PREFIX.size] = np.frombuffer(PREFIX.pack(MAGIC, FORMAT_VERSION, 0, uid, len(hbytes)), dtype=np.uint8)
    view[PREFIX.size:PREFIX.size + len(hbytes)] = np.frombuffer(hbytes, dtype=np.uint8)
    for name, arr in sections.items():
        off = data_start + table[name]["offset"]
        view[off:off + arr.nbytes] = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    return blob


def with_header(blob: torch.Tensor, **fields) -> torch.Tensor:
    """A new artifact: the same program with `fields` added to its header (pipeline stage, I/O casts)."""
    header, sections = deserialize(blob)
    meta = {k: v for k, v in header.items() if k not in ("sections", "format", "format_version")}
    meta.update(fields)
    return serialize(meta, dict(sections))


def op_names(instrs) -> Dict[str, str]:
    """The header's op table for the instructions being serialized: {code: op name}."""
    from neuron_emu.isa import schema
    return {str(schema(ins.op).code): schema(ins.op).name for ins in instrs}


def resolve_ops(header: dict, instrs: np.ndarray, origin: str = "model") -> np.ndarray:
    """`instrs` with each op code replaced by this process's code for the op the header names. Returns the
    table itself when nothing changes (built-in ops), else a copy; ArtifactError for an op not registered here."""
    from neuron_emu.isa import schema
    table = header.get("ops")
    if not isinstance(table, dict):
        raise ArtifactError(f"{origin}: header has no op table")
    remap = {}
    for code, name in table.items():
        try:
            here = schema(str(name)).code
            remap[int(code)] = here
        except (KeyError, ValueError):
            raise ArtifactError(f"{origin}: the program uses op {name!r}, which is not registered in this process "
                                "(load the library that defines it first, e.g. torch_neuronx.xla_impl.custom_op.load_library)") from None
    if instrs.ndim != 2 or instrs.shape[0] == 0:
        return instrs
    codes = instrs[:, 0]
    unknown = ~np.isin(codes, np.fromiter(remap, dtype=np.int64, count=len(remap)))
    if unknown.any():
        i = int(np.argmax(unknown))
        raise ArtifactError(f"{origin}: section 'instrs': instruction {i}: op code {int(codes[i])} is not in the "
                            f"header's op table {sorted(remap)}")
    if all(k == v for k, v in remap.items()):
        return instrs
    out = instrs.copy()
    for k, v in remap.items():
        out[codes == k, 0] = v
    return out


def read_uid(blob: torch.Tensor) -> bytes:
    return bytes(blob[16:32].numpy()) if blob.numel() >= PREFIX.size else b""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_MAX_NUMEL = 1 << 62  # any element count above this is corrupt (and would overflow int64 byte counts)


def _shape(v, where: str) -> list:
    """A header shape: a list of non-negative ints whose product fits int64; ArtifactError naming `where`."""
    if not isinstance(v, list) or not all(_is_int(x) and x >= 0 for x in v):
        raise ArtifactError(f"{where}: shape must be a list of non-negative integers, got {v!r:.80}")
    if math.prod(v) > _MAX_NUMEL:
        raise ArtifactError(f"{where}: shape {v} has more than 2^62 elements")
    return v


def io_dtype_names() -> Dict[str, int]:
    """Header dtype name ("float32", "int64", ...) -> IoDType code, for every host dtype IoIn/IoOut convert."""
    from neuron_emu.dtypes import IO_DTYPES
    return {str(t).replace("torch.", ""): int(code) for t, code in IO_DTYPES.items()}


def check_header(header, origin: str = "model") -> dict:
    """Validate the header fields the runtime reads before anything is sized from them: core_generation,
    arena_floats, inputs/outputs (list of {shape, dtype}), ops, source_ops. ArtifactError names the field."""
    if not isinstance(header, dict):
        raise ArtifactError(f"{origin}: header is a JSON {type(header).__name__}, expected an object")
    gen = header.get("core_generation", 2)
    if not _is_int(gen):
        raise ArtifactError(f"{origin}: header field 'core_generation' must be an integer, got {gen!r:.80}")
    arena = header.get("arena_floats")
    if not _is_int(arena) or not 0 <= arena <= _MAX_NUMEL:
        raise ArtifactError(f"{origin}: header field 'arena_floats' must be an integer in [0, 2^62], got {arena!r:.80}")
    names = io_dtype_names()
    for kind in ("inputs", "outputs"):
        ios = header.get(kind)
        if not isinstance(ios, list):
            raise ArtifactError(f"{origin}: header field {kind!r} must be a list, got {type(ios).__name__}")
        for i, d in enumerate(ios):
            where = f"{origin}: header {kind}[{i}]"
            if not isinstance(d, dict):
                raise ArtifactError(f"{where} must be an object, got {type(d).__name__}")
            _shape(d.get("shape"), where)
            if not isinstance(d.get("dtype"), str) or d["dtype"] not in names:
                raise ArtifactError(f"{where}: dtype {d.get('dtype')!r:.80} is not one of {sorted(names)}")
    ops = header.get("ops")
    if not isinstance(ops, dict) or not all(isinstance(k, str) and k.isdigit() and len(k) < 10 and isinstance(v, str)
                                            for k, v in ops.items()):
        raise ArtifactError(f"{origin}: header field 'ops' must map op codes to op names")
    weights = header.get("weights", [])  # separate weights: the trailing inputs' state-dict names
    if (not isinstance(weights, list) or len(weights) > len(header["inputs"])
            or not all(isinstance(n, list) and n and all(isinstance(x, str) for x in n) for n in weights)):
        raise ArtifactError(f"{origin}: header field 'weights' must be a list of name lists, one per trailing input")
    src = header.get("source_ops", [])
    if not isinstance(src, list) or not all(isinstance(x, str) for x in src):
        raise ArtifactError(f"{origin}: header field 'source_ops' must be a list of strings")
    return header


def io_table(header: dict):
    """(inputs, outputs) of a checked header as the C++ Program takes them: per I/O, (numel, IoDType code)."""
    names = io_dtype_names()
    return tuple([(math.prod(d["shape"]), names[d["dtype"]]) for d in header[kind]] for kind in ("inputs", "outputs"))


# the sections every artifact has: dtype and number of dimensions (the second dimension where fixed)
_REQUIRED = {"instrs": ("int64", 2, 64), "deps": ("int64", 1, None), "buffers": ("int64", 2, 3)}


def deserialize(blob: torch.Tensor, origin: str = "model") -> Tuple[dict, Dict[str, np.ndarray]]:
    """Parse and bounds-check; returns (header, sections as zero-copy numpy views into `blob`). Every problem is
    an ArtifactError naming the origin, the section and the field."""
    if not isinstance(blob, torch.Tensor):
        raise ArtifactError(f"{origin}: compiled artifact must be a tensor, got {type(blob).__name__}")
    if blob.dtype != torch.uint8 or blob.dim() != 1 or not blob.is_contiguous():
        raise ArtifactError(f"{origin}: compiled artifact must be a contiguous 1-D uint8 tensor, got {blob.dtype} {tuple(blob.shape)}")
    raw = blob.numpy()
    if raw.size < PREFIX.size:
        raise ArtifactError(f"{origin}: artifact truncated ({raw.size} bytes)")
    magic, version, _flags, _uid, hlen = PREFIX.unpack(bytes(raw[:PREFIX.size]))
    if magic != MAGIC:
        raise ArtifactError(f"{origin}: not a neuron-emu artifact (bad magic {magic!r})")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"{origin}: artifact format version {version} is not supported (this runtime reads "
                            f"version {FORMAT_VERSION}); recompile the model with this version of neuron-emu")
    if PREFIX.size + hlen > raw.size:
        raise ArtifactError(f"{origin}: header of {hlen} bytes runs past the end of the {raw.size}-byte artifact")
    try:
        header = json.loads(bytes(raw[PREFIX.size:PREFIX.size + hlen]).decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ArtifactError(f"{origin}: corrupt header: {type(e).__name__}: {e}"[:500]) from None
    check_header(header, origin)
    data_start = _align(PREFIX.size + hlen)
    table = header.get("sections")
    if not isinstance(table, dict):
        raise ArtifactError(f"{origin}: header field 'sections' must be an object")
    sections = {}
    for name, s in table.items():
        where = f"{origin}: section {name!r:.60}"
        if not isinstance(s, dict):
            raise ArtifactError(f"{where}: entry must be an object")
        dtype = _DTYPES.get(s.get("dtype")) if isinstance(s.get("dtype"), str) else None
        if dtype is None:
            raise ArtifactError(f"{where}: unsupported dtype {s.get('dtype')!r:.80}")
        off, nbytes = s.get("offset"), s.get("nbytes")
        for field, v in (("offset", off), ("nbytes", nbytes)):
            if not _is_int(v) or v < 0:
                raise ArtifactError(f"{where}: field {field!r} must be a non-negative integer, got {v!r:.80}")
        shape = _shape(s.get("shape"), where)
        count = math.prod(shape)
        if off % _ALIGN or nbytes != count * np.dtype(dtype).itemsize or data_start + off + nbytes > raw.size:
            raise ArtifactError(f"{where} (offset {off}, {nbytes} bytes, shape {shape}) is out of bounds "
                                f"of the {raw.size}-byte artifact")
        sections[name] = raw[data_start + off:data_start + off + nbytes].view(dtype).reshape(shape)
    for req, (dt, ndim, cols) in _REQUIRED.items():
        if req not in sections:
            raise ArtifactError(f"{origin}: section {req!r} missing")
        a = sections[req]
        if a.dtype != np.dtype(dt) or a.ndim != ndim or (cols is not None and a.shape[1] != cols):
            want = f"{dt} [n{', ' + str(cols) if cols else ''}]"
            raise ArtifactError(f"{origin}: section {req!r} is {a.dtype} {list(a.shape)}, expected {want}")
    kinds = sections["buffers"][:, 1]
    bad = np.nonzero((kinds < 0) | (kinds > 3))[0]
    if bad.size:
        raise ArtifactError(f"{origin}: buffers[{int(bad[0])}]: kind {int(kinds[bad[0]])} is not 0 (intermediate), "
                            "1 (constant), 2 (constant in bf16) or 3 (constant in fp16)")
    return header, sections
