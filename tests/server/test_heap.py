"""The decision-log receiver gives freed memory back to the system at most once per interval."""

from __future__ import annotations

import time

import pytest

from pyagent.server import heap


def test_the_heap_is_trimmed_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    clock = [1000.0]

    def counted_trim(pad: int) -> int:
        calls.append(pad)
        return 1

    monkeypatch.setattr(heap, "_trim", counted_trim)
    monkeypatch.setattr(heap, "_next", [0.0])
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    done = [heap.trim_heap(), heap.trim_heap()]
    clock[0] += heap.TRIM_EVERY_SECONDS
    done.append(heap.trim_heap())
    assert (done, calls) == ([True, False, True], [0, 0])


def test_glibc_malloc_trim_is_found_on_this_machine() -> None:
    """Debian's Python runs on glibc: the real malloc_trim is what the server calls (and it answers)."""
    assert heap._malloc_trim() is not None
