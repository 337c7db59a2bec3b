"""Giving freed memory back to the system, now and then, in the decision-log receiver's process.

A batch's body is megabytes that are parsed, stored and freed in worker threads; glibc's allocator keeps
each thread's arena at its peak and hands little back, so a busy server's resident memory crept up with
the number of batches rather than staying flat. :func:`trim_heap` asks glibc (``malloc_trim``) to
return the free pages, at most once every :data:`TRIM_EVERY_SECONDS` in a process. Elsewhere than glibc
there is no such call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable

__all__ = ["TRIM_EVERY_SECONDS", "trim_heap"]

TRIM_EVERY_SECONDS = 2.0


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    function = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only
    if function is None:
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    return function  # type: ignore[no-any-return]


_trim = _malloc_trim()
_lock = threading.Lock()
_next = [0.0]


def trim_heap() -> bool:
    """Return free heap pages to the system if the last time was long enough ago; True if it did."""
    if _trim is None:
        return False
    now = time.monotonic()
    with _lock:
        if now < _next[0]:
            return False
        _next[0] = now + TRIM_EVERY_SECONDS
    _trim(0)
    return True
