"""Compiles the custom-op harness objects into the package (neuron_emu/custom_op/prebuilt/), so that the first
`custom_op.load` on a machine compiles only the user's sources. Run by setup.py after the extension is built:

    python -m neuron_emu.custom_op.prebuild [DEST_DIR]

The objects are named by the same key as the build cache's (headers + harness, compiler, flags): with another
compiler (CXX) or edited headers they do not match and the harness is compiled into the cache as before."""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from neuron_emu.custom_op import build


def main(dest: str = build.PREBUILT_DIR) -> list:
    os.makedirs(dest, exist_ok=True)
    cxx = build.compiler()
    keep = f"harness-{build.harness_key(cxx)}-"
    for f in os.listdir(dest):  # objects of earlier header versions are dead weight in the package
        if f.startswith("harness-") and not f.startswith(keep):
            os.remove(os.path.join(dest, f))
    with ThreadPoolExecutor(max_workers=max(1, min(3, os.cpu_count() or 1))) as pool:
        objs = [f.result() for f in build._harness_objects(cxx, False, pool, out_dir=dest)]
    return objs


if __name__ == "__main__":
    for o in main(*sys.argv[1:2]):
        print(o)
