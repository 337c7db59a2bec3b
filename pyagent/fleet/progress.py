"""A progress line on stderr, only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def with_progress(items: Iterable[T], *, label: str, enabled: bool | None = None) -> Iterator[T]:
    show = (sys.stderr is not None and sys.stderr.isatty()) if enabled is None else enabled
    start = time.monotonic()
    count = 0
    last = 0.0
    for item in items:
        count += 1
        now = time.monotonic()
        if show and now - last > 0.2:
            rate = count / max(now - start, 1e-9)
            sys.stderr.write(f"\r{label}: {count} devices ({rate:,.0f}/s)")
            sys.stderr.flush()
            last = now
        yield item
    if show:
        sys.stderr.write(f"\r{label}: {count} devices in {time.monotonic() - start:.1f} s\n")
        sys.stderr.flush()
