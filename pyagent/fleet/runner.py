"""Running many decisions: bounded batches over a process pool, results in input order.

Memory stays flat in the number of devices: at most ``jobs * 2`` batches are in flight, and
results are handed on as soon as their batch is done.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from pyagent.engines.base import EngineSettings
from pyagent.engines.select import build_engine
from pyagent.fleet import worker
from pyagent.fleet.sources import Item

BATCH = 500


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def run(
    items: Iterator[Item],
    settings: Sequence[EngineSettings],
    *,
    at: str,
    org: str | None,
    jobs: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """One list of device results (one per engine) for each item, in order."""
    for s in settings:  # fail fast, in this process, on settings that cannot work (exit 2 or 3)
        build_engine(s).close()
    jobs = jobs or default_jobs()
    batches = _batches(items, BATCH)
    if jobs == 1:
        worker.init(settings)
        for batch in batches:
            yield from worker.decide_batch(batch, at, org)
        return
    context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=worker.init, initargs=(list(settings),)
    ) as pool:
        pending: deque[Future[list[list[dict[str, Any]]]]] = deque()
        for batch in batches:
            pending.append(pool.submit(worker.decide_batch, batch, at, org))
            if len(pending) >= jobs * 2:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    while True:
        batch = list(itertools.islice(items, size))
        if not batch:
            return
        yield batch
