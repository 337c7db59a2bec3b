"""What every handler needs: the store, the long-poll notifier, the settings."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from pyagent.bundles.verify import VerificationConfig
from pyagent.logsetup import get_logger
from pyagent.server.auth import require
from pyagent.server.errors import HttpError
from pyagent.server.lazy_events import ReportCache
from pyagent.server.notify import Notifier
from pyagent.server.settings import ServerSettings
from pyagent.server.store.base import Grant, Store

log = get_logger("pyagent.server")

_CACHED_BUNDLES = 16
T = TypeVar("T")
#: How long a store call of an agent's or an OPA's request (its token, a bundle, an upload) may take
#: before the request is answered 503, as /health is: a database that holds a pooled connection and
#: never answers (its processes stopped) held those requests for good. (The call's thread runs on;
#: an upload stored after all is stored once when it is sent again: events are kept by decision_id.)
STORE_CALL_SECONDS = 10.0


@dataclass
class ServerContext:
    store: Store
    settings: ServerSettings
    notifier: Notifier
    verification: VerificationConfig | None
    _contents: OrderedDict[tuple[int, str], bytes] = field(default_factory=OrderedDict)
    #: Reports of committed batches, by their bytes: see :mod:`pyagent.server.lazy_events`.
    report_cache: ReportCache = field(default_factory=ReportCache)
    _reader_slots: anyio.Semaphore | None = None
    #: Long polls held now in this process (:func:`pyagent.server.protocol.held_poll_limit`).
    held_polls: int = 0

    async def read(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A reader's question (fleet API, dashboard) asked in the thread pool, at most
        ``reader_queries`` at once in this process: however many readers ask, the threads and database
        connections that ingest, bundle downloads and ``/health`` need stay free (150 history queries
        at once had made ``/health`` a 503 and an upload wait 45 s). One that waits for its turn past
        ``query_timeout_seconds`` is answered 503 ``busy``."""
        if self._reader_slots is None:  # (made in the event loop, on first use)
            self._reader_slots = anyio.Semaphore(self.settings.reader_queries)
        slots = self._reader_slots
        with anyio.move_on_after(self.settings.query_timeout_seconds) as waiting:
            await slots.acquire()
        if waiting.cancelled_caught:
            raise HttpError(
                503,
                "busy",
                f"all {self.settings.reader_queries} reader query slots of this server process are busy; "
                "ask again shortly",
                headers={"Retry-After": "5"},
            )
        try:
            return await run_in_threadpool(func, *args, **kwargs)
        finally:
            slots.release()

    async def call(self, func: Callable[..., T], *args: Any, seconds: float | None = None) -> T:
        """``func(*args)`` in the thread pool, answered 503 past ``seconds`` (:data:`STORE_CALL_SECONDS`
        unless given: /health's is shorter)."""
        seconds = STORE_CALL_SECONDS if seconds is None else seconds
        try:
            return await asyncio.wait_for(run_in_threadpool(func, *args), seconds)
        except TimeoutError:
            log.warning(
                "the database did not answer within %g s (%s)", seconds, getattr(func, "__name__", func)
            )
            raise HttpError(503, "unavailable", "the database is not available") from None

    async def authorize(self, request: Request, need: str) -> Grant:
        return await self.call(require, request, self.store, need)

    async def bundle_content(self, revision_id: int, target: str) -> bytes:
        """A published bundle's bytes. Published revisions never change, so a few are kept in memory
        (a cache of immutable content: any replica answers the same)."""
        key = (revision_id, target)
        content = self._contents.get(key)
        if content is None:
            content = await self.call(self.store.bundle_content, revision_id, target)
            self._contents[key] = content
            while len(self._contents) > _CACHED_BUNDLES:
                self._contents.popitem(last=False)
        else:
            self._contents.move_to_end(key)
        return content
