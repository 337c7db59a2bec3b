"""Shipping results to a collector: HTTP POST, JSON, at least once, idempotently.

Each record is one request, oldest first. The record's stable id is both the ``Idempotency-Key``
header and the ``id`` in the body, so a collector that stores by that key keeps one copy however
often a record is re-sent. A record is marked shipped only after a 2xx answer; any other answer,
a redirect, a timeout or a refused connection stops shipping until the next run (the order is kept).

The body::

    {"id": "<uuid>", "seq": 12, "hash": "<digest>", "prev_hash": "<digest>",
     "record": {...the record exactly as hashed...},
     "chain": {"chain_id", "mac", "key_id", "head": {"seq", "hash", "id"}, "anchor": {"seq", "hash"},
               "dropped", "dropped_unshipped"},
     "agent": {"version": "0.1.0"}}

``chain.head`` anchors the decision log at the collector: a later head that does not extend an
earlier one means the local log was rewritten, truncated or rolled back.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Any

from pyagent import __version__
from pyagent.agent.settings import AgentSettings, read_secret
from pyagent.agent.store import ChainState, RawRecord, Spool, utc_now

MAX_PER_RUN = 1000
MAX_RESPONSE_BYTES = 64 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer that is not 2xx: never re-POST a record somewhere else."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message, newurl: str
    ) -> urllib.request.Request | None:
        return None


@dataclass(frozen=True)
class Collector:
    """Where results go, and how to authenticate."""

    url: str
    token: str | None = None
    timeout: float = 10.0
    ca: Path | None = None

    @classmethod
    def from_settings(cls, settings: AgentSettings) -> Collector | None:
        if settings.collector_url is None:
            return None
        token = None
        if settings.collector_token_file is not None:
            token = read_secret(
                settings.collector_token_file, what="collector token (agent.collector_token_file)"
            )
        return cls(settings.collector_url, token, settings.collector_timeout, settings.collector_ca)

    def _opener(self) -> urllib.request.OpenerDirector:
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.url.startswith("https:"):
            context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        return urllib.request.build_opener(*handlers)

    def post(self, body: bytes, idempotency_key: str) -> str | None:
        """POST one record; None on a 2xx answer, else a one-line reason."""
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "User-Agent": f"pyagent/{__version__}",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener().open(request, timeout=self.timeout) as response:
                response.read(MAX_RESPONSE_BYTES)
                status = int(response.status)
        except urllib.error.HTTPError as err:
            err.close()
            return f"{self.url}: HTTP {err.code} {err.reason}"
        except urllib.error.URLError as err:
            return f"{self.url}: cannot reach the collector: {err.reason}"
        except (OSError, http.client.HTTPException) as err:
            return f"{self.url}: cannot reach the collector: {type(err).__name__}: {err}"
        if not 200 <= status < 300:
            return f"{self.url}: HTTP {status}"
        return None


@dataclass(frozen=True)
class ShipResult:
    """What one shipping pass did."""

    sent: int
    pending: int
    error: str | None


def payload(row: RawRecord, state: ChainState) -> bytes:
    """The request body for ``row`` (see the module docstring)."""
    record: Any = json.loads(row.body)
    document = {
        "id": row.id,
        "seq": row.seq,
        "hash": row.hash,
        "prev_hash": row.prev_hash,
        "record": record,
        "chain": state.chain_json(),
        "agent": {"version": __version__},
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ship_pending(spool: Spool, collector: Collector, *, limit: int = MAX_PER_RUN) -> ShipResult:
    """Send the oldest unshipped records, stopping at the first failure; persists the outcome."""
    sent = 0
    error: str | None = None
    state = spool.state()
    for row in spool.pending(limit):
        try:
            body = payload(row, state)
        except ValueError as err:
            error = f"record seq {row.seq} is not JSON ({err}); run `pyagent log verify`"
            break
        error = collector.post(body, row.id)
        if error is not None:
            break
        spool.mark_shipped(row.seq, utc_now())
        sent += 1
    spool.note_ship(at=utc_now(), error=error)
    return ShipResult(sent=sent, pending=spool.counts()[1], error=error)
