"""A progress line for compiles that take over a second (the real neuronx-cc prints dots while it works).

Shown on stderr when it is a terminal, or always with NEURON_EMU_PROGRESS=1 (never with NEURON_EMU_PROGRESS=0):
after `delay_s` a line "Compiling <what> ..... 3.2 s" grows a dot every half second and ends with the status."""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager


def enabled(stream=None) -> bool:
    flag = os.environ.get("NEURON_EMU_PROGRESS")
    if flag in ("0", "1"):
        return flag == "1"
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


@contextmanager
def compile_progress(what: str, delay_s: float = 1.0, tick_s: float = 0.5, stream=None):
    stream = stream or sys.stderr
    if not enabled(stream):
        yield
        return
    done = threading.Event()
    shown = []
    t0 = time.perf_counter()

    def run():
        if done.wait(delay_s):
            return
        shown.append(True)
        stream.write(f"Compiling {what} ")
        while not done.wait(tick_s):
            stream.write(".")
            stream.flush()

    th = threading.Thread(target=run, name="neuron-emu-progress", daemon=True)
    th.start()
    status = "FAIL"
    try:
        yield
        status = "PASS"
    finally:
        done.set()
        th.join()
        if shown:
            stream.write(f" {time.perf_counter() - t0:.1f} s, Compiler status {status}\n")
            stream.flush()
