"""The library file `lib<name>.so` that `custom_op.load(..., build_directory=...)` writes: as in the real SDK,
an `ar` archive of the compiled library and `metadata.json`; `load_library` unpacks it to a directory keyed
by the archive's md5 and loads it in any process."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Dict

AR_MAGIC = b"!<arch>\n"
METADATA = "metadata.json"


def write_archive(path: str, members: Dict[str, bytes]) -> None:
    out = bytearray(AR_MAGIC)
    for name, data in members.items():
        if len(name) > 15:
            raise ValueError(f"archive member name {name!r} is longer than 15 characters")
        hdr = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'644':<8}{len(data):<10}`\n".encode()
        out += hdr + data + (b"\n" if len(data) % 2 else b"")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(out)
    os.replace(tmp, path)


def read_archive(path: str) -> Dict[str, bytes]:
    with open(path, "rb") as fh:
        blob = fh.read()
    if not blob.startswith(AR_MAGIC):
        return {}
    members, pos = {}, len(AR_MAGIC)
    while pos + 60 <= len(blob):
        hdr = blob[pos:pos + 60]
        name = hdr[:16].decode(errors="replace").strip().rstrip("/")
        try:
            size = int(hdr[48:58].decode().strip())
        except ValueError:
            break
        members[name] = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def unpack_dir(path: str) -> str:
    with open(path, "rb") as fh:
        md5 = hashlib.md5(fh.read()).hexdigest()
    d = os.path.join(tempfile.gettempdir(), f"neuron-custom-ops-{os.getuid()}", md5)
    os.makedirs(d, exist_ok=True)
    return d


def metadata(name: str, ns: str, ops, multicore: bool, build_id: str, kernels, rejected, header_version) -> bytes:
    return json.dumps({
        "versions": {"format": 1, "header": header_version},
        "name": name, "multicore": bool(multicore), "build_id": build_id,
        "shapelib": "computelib.so",  # shape and compute code share one library here
        "computelibs": {"names": ["computelib.so"]},
        "ops": {ns: {op.name: {"fn": op.kernel, "schema": op.schema()} for op in ops}},
        "kernels": kernels, "rejected": rejected,
    }, indent=1).encode()
