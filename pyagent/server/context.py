"""What every handler needs: the store, the long-poll notifier, the settings."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from pyagent.bundles.verify import VerificationConfig
from pyagent.server.auth import require
from pyagent.server.lazy_events import ReportCache
from pyagent.server.notify import Notifier
from pyagent.server.settings import ServerSettings
from pyagent.server.store.base import Grant, Store

_CACHED_BUNDLES = 16


@dataclass
class ServerContext:
    store: Store
    settings: ServerSettings
    notifier: Notifier
    verification: VerificationConfig | None
    _contents: OrderedDict[tuple[int, str], bytes] = field(default_factory=OrderedDict)
    #: Reports of committed batches, by their bytes: see :mod:`pyagent.server.lazy_events`.
    report_cache: ReportCache = field(default_factory=ReportCache)

    async def authorize(self, request: Request, need: str) -> Grant:
        return await run_in_threadpool(require, request, self.store, need)

    async def bundle_content(self, revision_id: int, target: str) -> bytes:
        """A published bundle's bytes. Published revisions never change, so a few are kept in memory
        (a cache of immutable content: any replica answers the same)."""
        key = (revision_id, target)
        content = self._contents.get(key)
        if content is None:
            content = await run_in_threadpool(self.store.bundle_content, revision_id, target)
            self._contents[key] = content
            while len(self._contents) > _CACHED_BUNDLES:
                self._contents.popitem(last=False)
        else:
            self._contents.move_to_end(key)
        return content
