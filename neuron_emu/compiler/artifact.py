"""The compiled artifact ("NEFF"): a versioned, pickle-free binary that travels inside the saved
TorchScript file as a uint8 buffer.

Layout: a 40-byte prefix  b"NEMUNEFF" | u32 format version | u32 flags | 16-byte uid | u64 header length,
then a UTF-8 JSON header, then 64-byte-aligned binary sections named in the header:
  instrs  int64 [n, 64]     instruction table (csrc/isa.h)
  deps    int64 [d]         dependency list
  buffers int64 [b, 3]      per buffer: numel, kind (0 intermediate, 1 constant), arena offset
  const.<buffer id> f32     constant data (weights, folded values)
The header's "ops" maps each op code used in `instrs` to the op's name: codes of ops registered at run
time differ between processes, so the loader resolves them by name (resolve_ops).
Everything is length- and bounds-checked on load; the C++ Program then validates every instruction
against the buffer sizes, so a corrupt file raises an error instead of reading out of bounds."""
from __future__ import annotations

import json
import struct
import uuid
from typing import Dict, Tuple

import numpy as np
import torch

MAGIC = b"NEMUNEFF"
FORMAT_VERSION = 2  # 2: instruction fields laid out by the op schema; the header names the ops used
PREFIX = struct.Struct("<8sII16sQ")
_ALIGN = 64
_DTYPES = {"int64": np.int64, "float32": np.float32}


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
                                "(load the library that defines it first, e.g. with neuron_emu.ops.load_library)") from None
    if instrs.ndim != 2 or instrs.shape[0] == 0:
        return instrs
    codes = instrs[:, 0]
    unknown = set(np.unique(codes).tolist()) - set(remap)
    if unknown:
        raise ArtifactError(f"{origin}: instruction op code(s) {sorted(unknown)} are not in the header's op table")
    if all(k == v for k, v in remap.items()):
        return instrs
    out = instrs.copy()
    for k, v in remap.items():
        out[codes == k, 0] = v
    return out


def read_uid(blob: torch.Tensor) -> bytes:
    return bytes(blob[16:32].numpy()) if blob.numel() >= PREFIX.size else b""


def deserialize(blob: torch.Tensor, origin: str = "model") -> Tuple[dict, Dict[str, np.ndarray]]:
    """Parse and bounds-check; returns (header, sections as zero-copy numpy views into `blob`)."""
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
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{origin}: corrupt header: {e}") from None
    data_start = _align(PREFIX.size + hlen)
    sections = {}
    for name, s in header.get("sections", {}).items():
        dtype = _DTYPES.get(s.get("dtype"))
        if dtype is None:
            raise ArtifactError(f"{origin}: section {name}: unsupported dtype {s.get('dtype')!r}")
        off, nbytes, shape = int(s["offset"]), int(s["nbytes"]), [int(x) for x in s["shape"]]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if off < 0 or off % _ALIGN or nbytes != count * np.dtype(dtype).itemsize or data_start + off + nbytes > raw.size:
            raise ArtifactError(f"{origin}: section {name} (offset {off}, {nbytes} bytes, shape {shape}) is out of bounds "
                                f"of the {raw.size}-byte artifact")
        sections[name] = raw[data_start + off:data_start + off + nbytes].view(dtype).reshape(shape)
    for req in ("instrs", "deps", "buffers"):
        if req not in sections:
            raise ArtifactError(f"{origin}: section {req!r} missing")
    return header, sections
