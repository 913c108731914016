"""`torch_neuronx.xla_impl.custom_op` (neuron-api.md 4.1): build and load custom C++ operators for the GpSimd
engine. Sources compile with the system C++ compiler against the emulator's device headers
(neuron_emu/custom_op/include), so the documented sources build unmodified; ops become
`torch.ops.<lib>.<op>` and run in CPU eager, inside `torch_neuronx_emu.trace` and on the lazy device."""
from __future__ import annotations

import json
import os


from neuron_emu.custom_op import build as _build
from neuron_emu.custom_op import package as _package
from neuron_emu.custom_op.library import load_built as _load_built

__all__ = ["load", "load_library"]


def load(name, compute_srcs, shape_srcs, extra_cflags=[], extra_include_paths=[], build_directory=None,
         multicore=False, verbose=False):
    """Build the library `name` from compute (device) and shape (host) sources, register its ops, and when
    `build_directory` is given write `lib<name>.so` there for `load_library` in other processes."""
    if not isinstance(name, str) or not name:
        raise Exception(f"name must be a non-empty string, but found: {name!r}")
    if name == "builtin":
        raise Exception('custom_op.load: the library name "builtin" is reserved')
    b = _build.build(name, compute_srcs, shape_srcs, list(extra_cflags), list(extra_include_paths),
                     multicore=bool(multicore), verbose=verbose)
    lib = _load_built(b["so"], name, multicore, b["key"], b["kernels"], b["rejected"])
    if verbose:
        print(f"custom_op: {'cached' if b['cached'] else 'built'} {b['so']}: ops "
              f"{', '.join(f'torch.ops.{lib.ns}.{o}' for o in lib.ops)}")
    if build_directory is not None:
        os.makedirs(build_directory, exist_ok=True)
        with open(b["so"], "rb") as fh:
            so_bytes = fh.read()
        meta = _package.metadata(name, lib.ns, lib.ops.values(), multicore, b["key"], b["kernels"], b["rejected"],
                                 _build.header_version())
        _package.write_archive(os.path.join(build_directory, f"lib{name}.so"),
                               {_package.METADATA: meta, "computelib.so": so_bytes})


def load_library(libname, verbose=False):
    """Load a library file written by `load(..., build_directory=...)` and register its ops."""
    if not isinstance(libname, str):
        raise Exception(f"libname must be a string, but found: {type(libname)}")
    if not os.path.isfile(libname):
        raise Exception(f'unable to find library file: "{libname}"')
    members = _package.read_archive(libname)
    if _package.METADATA not in members:
        raise Exception(f"Unable to find metadata in {libname}")
    try:
        meta = json.loads(members[_package.METADATA].decode())
    except ValueError:
        raise Exception(f"Unable to find metadata in {libname} (metadata.json is not valid JSON)") from None
    shapelib = meta.get("shapelib")
    if not shapelib or shapelib not in members:
        raise Exception(f"Unable to find shapelib in {libname}")
    for cl in meta.get("computelibs", {}).get("names", []):
        if cl not in members:
            raise Exception(f"Unable to find computelib {cl} in {libname}")
    if meta.get("versions", {}).get("header") != _build.header_version():
        # same rule as a cached build: a library built against other device headers is not ABI-compatible
        raise Exception(f"{libname} was built against custom-op headers {meta.get('versions', {}).get('header')}, "
                        f"this emulator has {_build.header_version()}: rebuild it with custom_op.load")
    d = _package.unpack_dir(libname)
    so = os.path.join(d, f"lib{meta['name']}customop.so")
    if not os.path.exists(so):
        tmp = f"{so}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(members[shapelib])
        os.replace(tmp, so)
    lib = _load_built(so, meta["name"], meta.get("multicore", False), meta["build_id"], meta.get("kernels", {}),
                      meta.get("rejected", {}))
    if verbose:
        print(f"custom_op: loaded {libname}: ops {', '.join(f'torch.ops.{lib.ns}.{o}' for o in lib.ops)}")

