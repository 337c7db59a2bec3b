"""Running many decisions: bounded batches over a process pool, results in input order.

Memory stays flat in the number of devices: at most ``jobs * 2`` batches are in flight, and
results are handed on as soon as their batch is done.

Start-up is kept small, because on a 2-core machine it decides whether a pool pays off at all:
a run of one batch is decided in this process (no pool); pool workers are forked from a forkserver
that has already imported the worker code (and the main module), so each one only builds its
engines, which the compiled-module cache makes cheap (see ``pyagent/engines/wasm/modcache.py``).
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
from pyagent.fleet import worker
from pyagent.fleet.sources import Item

BATCH = 500
#: Modules the forkserver imports once, so that forked workers start with them loaded.
_PRELOAD = ["__main__", "pyagent.fleet.worker"]


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
    jobs = jobs or default_jobs()
    worker.init(settings)  # built here first: settings that cannot work fail fast (exit 2 or 3)
    batches = _batches(items, BATCH)
    head = list(itertools.islice(batches, 2 if jobs > 1 else 1))
    if len(head) < 2:  # a single batch, or jobs=1: decided in this process with those engines
        for batch in itertools.chain(head, batches):
            yield from worker.decide_batch(batch, at, org)
        return
    worker.init([])  # the workers build their own
    yield from _pooled(itertools.chain(head, batches), settings, at, org, jobs)


def _pooled(
    batches: Iterator[list[Item]], settings: Sequence[EngineSettings], at: str, org: str | None, jobs: int
) -> Iterator[list[dict[str, Any]]]:
    context: multiprocessing.context.BaseContext
    if os.name == "posix":
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(_PRELOAD)
        context = forkserver
    else:
        context = multiprocessing.get_context("spawn")
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
