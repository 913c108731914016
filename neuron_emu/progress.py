"""A progress line for compiles that take over a second (the real neuronx-cc prints dots while it works).

Shown on stderr when it is a terminal, or always with NEURON_EMU_PROGRESS=1 (never with NEURON_EMU_PROGRESS=0):
after `delay_s` a line "Compiling <what> ..... 3.2 s" grows a dot every half second and ends with the status."""
from __future__ import annotations

import os
import sys
import threading
import time


def enabled(stream=None) -> bool:
    flag = os.environ.get("NEURON_EMU_PROGRESS")
    if flag in ("0", "1"):
        return flag == "1"
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class compile_progress:
    """Context manager: the progress line for the block it wraps (nothing unless enabled and over delay_s)."""

    def __init__(self, what: str, delay_s: float = 1.0, tick_s: float = 0.5, stream=None):
        self.what, self.delay_s, self.tick_s = what, delay_s, tick_s
        self.stream = stream or sys.stderr
        self._thread = None

    def __enter__(self):
        if enabled(self.stream):
            self._done = threading.Event()
            self._shown = False
            self._t0 = time.perf_counter()
            self._thread = threading.Thread(target=self._run, name="neuron-emu-progress", daemon=True)
            self._thread.start()
        return self

    def _run(self):
        if self._done.wait(self.delay_s):
            return
        self._shown = True
        self.stream.write(f"Compiling {self.what} ")
        while not self._done.wait(self.tick_s):
            self.stream.write(".")
            self.stream.flush()

    def __exit__(self, exc_type, exc, tb):
        if self._thread is None:
            return False
        self._done.set()
        self._thread.join()
        self._thread = None
        if self._shown:
            status = "PASS" if exc_type is None else "FAIL"
            self.stream.write(f" {time.perf_counter() - self._t0:.1f} s, Compiler status {status}\n")
            self.stream.flush()
        return False
