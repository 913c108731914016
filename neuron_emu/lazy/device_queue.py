"""Asynchronous execution of cached steps: `mark_step(wait=False)` (torch_xla's default) hands a step whose
program is loaded to one worker thread per device and returns, so Python records the next step while the kernels
run (they release the GIL). The step's outputs are device data whose buffer the worker fills (`DeviceData.t` is
None until then). Race-free by construction: one worker runs steps in submission order, so a step's inputs are
filled before it reads them; the main thread reads a buffer only after `wait()` (`.cpu()`, `.item()`, print, CPU
fallbacks) and every other sync (a graph walk, a compile, a run on the main thread) waits first, so two programs
never run at once. A failed step is re-raised by the next wait; the steps queued after it do not run. Reading a
metric settles the queue first, so ExecuteTime counts every step issued."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional

_pool: Optional[ThreadPoolExecutor] = None
_last: Optional[Future] = None
_error: Optional[BaseException] = None
_lock = threading.Lock()
_NAME = "neuron-emu-device"


def _guard(job: Callable[[], None]) -> None:
    global _error
    if _error is not None:   # an earlier step failed: this one's inputs may be missing
        return
    try:
        job()
    except BaseException as e:  # kept for the main thread's next wait
        _error = e


def submit(job: Callable[[], None]) -> None:
    global _pool, _last
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix=_NAME)
        _last = _pool.submit(_guard, job)


def busy() -> bool:
    return _last is not None


def settle() -> None:
    """Let the steps in flight finish, raising nothing (metrics readers: ExecuteTime is recorded by the worker)."""
    last = _last
    if last is not None and not threading.current_thread().name.startswith(_NAME):   # (never on the worker)
        last.exception()


def wait() -> None:
    """Block until every submitted step has run; a failure of one is raised here (once)."""
    global _last, _error
    with _lock:
        last, _last = _last, None
    if last is not None:
        last.result()
    if _error is not None:
        e, _error = _error, None
        raise RuntimeError(f"a step executed asynchronously on the device failed: {e}") from e
