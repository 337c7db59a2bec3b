"""The decision-log plug-in: the spool's records uploaded as OPA decision-log events (Decision Log API).

``POST service.url + resource`` (default ``/logs``), a gzip-compressed JSON array of events, oldest
first, each batch at most ``upload_size_limit_bytes`` compressed. A record is marked shipped only after
a 2xx answer. An answer that refuses the events themselves (400, 413, 422) is bisected down to the
event that causes it, which is *set aside* with the server's reason: kept in the spool, listed by
``agent status``, never dropped silently, and out of the queue, so that one event the server refuses
does not hold back the newer ones. So is an event that ``pyagent server`` refuses as another device's
than the one the token is bound to (403 ``forbidden_device``: spooled before the device got a new id
and token), unless it is about this device: then the token is bound to another one, and the upload
stops as for any 403. Set-aside events are offered again at the start of every later upload (at
most ``RETRY_PER_PASS``, those refused longest ago first; one request for them all, and one each if
that is refused) until a 2xx, as OPA resends what was not taken. Anything else (no answer, a
redirect, 401, 403, 404, 5xx) stops the upload until the next attempt, in an exponential backoff.

An event (OPA's fields, and the chain's)::

    {"decision_id": "...", "labels": {"id": "<device id>", "version": "<pyagent>", ...[labels]},
     "bundles": {"pyagent": {"revision": "..."}}, "path": "pyagent/decision",
     "input": {"at": "...", "report": {...}}, "result": {...the decision...}, "timestamp": "...",
     "metrics": {"timer_pyagent_decide_ns": 123}, "pyagent": {"seq": 12, "hash": "...", "prev_hash": "..."}}

A record without a policy input (a run that failed before it had a report) cannot be an event: it is
set aside at once, with its outcome and error as the reason, and not offered again. An event over
``upload_size_limit_bytes`` even alone, gzipped, is set aside too, and offered again once the limit is
higher.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyagent import __version__
from pyagent.agent.chain import ChainKey
from pyagent.agent.http import BodyTooLarge, Reply, ServiceClient, TransportError, backoff
from pyagent.agent.store import RawRecord, Spool, utc_now
from pyagent.agent.verify import sound_body
from pyagent.config.opa import DecisionLogs
from pyagent.errors import PyagentError

DECISION_PATH = "pyagent/decision"
MAX_PER_PASS = 5000
RETRY_PER_PASS = 50
REFUSED = (400, 413, 422)
#: ``pyagent server``'s 403 for an event about another device than the one the token is bound to
#: (``token add --device``): that event's fault, so it is set aside like a 400, not a stop that
#: would hold back every newer event (a spooled event of a device since given a new id and token);
#: unless the event is this device's own: then the token is at fault, and the upload stops.
DEVICE_REFUSED = "forbidden_device"
GZIP_TAIL = 16  # what closing a gzip stream adds at most: the final block, CRC-32 and length
BACKOFF_BASE = 1.0

Notify = Callable[[str, str, dict[str, object]], None]


def event_of(row: RawRecord, labels: Mapping[str, str], key: ChainKey | None = None) -> dict[str, Any] | str:
    """The decision-log event of a spool record, or why the record cannot be one: with the chain's
    ``key``, a record whose body no longer gives its hash (edited on disk) is never sent as it is."""
    body: Any
    if key is not None:  # the body as the check read it: parsed once
        body = sound_body(row, key)
        if body is None:
            return f"record seq {row.seq} does not give its hash (edited?); run `pyagent log verify`"
    else:
        try:
            body = json.loads(row.body)
        except ValueError:
            return f"record seq {row.seq} is not JSON; run `pyagent log verify`"
    policy_input = body.get("input") if isinstance(body, dict) else None
    report = policy_input.get("report") if isinstance(policy_input, dict) else None
    if not isinstance(policy_input, dict) or not isinstance(report, dict):
        outcome = body.get("outcome") if isinstance(body, dict) else None
        error = body.get("error") if isinstance(body, dict) else None
        return f"no policy input to log: the run was {outcome or 'not a decision'}" + (
            f" ({error})" if error else ""
        )
    device = report.get("device")
    device_id = device.get("id") if isinstance(device, dict) else None
    decision = body.get("decision") if isinstance(body.get("decision"), dict) else None
    event: dict[str, Any] = {
        "decision_id": (decision or {}).get("decision_id") or body.get("id") or row.id,
        "labels": {**labels, "id": device_id or body.get("device_id") or "unknown", "version": __version__},
        "path": DECISION_PATH,
        "input": policy_input,
        "timestamp": policy_input.get("at") or body.get("recorded_at"),
        "metrics": body.get("metrics") or {},
        "pyagent": {"seq": row.seq, "hash": row.hash, "prev_hash": row.prev_hash},
    }
    if isinstance(body.get("bundles"), dict) and body["bundles"]:
        event["bundles"] = body["bundles"]
    if decision is not None:
        event["result"] = decision
    elif isinstance(body.get("error"), str):  # as OPA logs a failed evaluation: no result, its error
        event["error"] = {
            "code": _ERROR_CODES.get(str(body.get("outcome")), "pyagent_error"),
            "message": body["error"],
        }
    return event


#: A failed run's outcome as the code of the decision-log event's ``error`` (OPA's events carry
#: ``{"code", "message"}`` for a failed evaluation).
_ERROR_CODES = {"invalid": "invalid_input", "no-decision": "no_decision"}


def gzip_batches(
    events: list[tuple[int, bytes]], limit: int
) -> tuple[list[list[tuple[int, bytes]]], list[int]]:
    """Split encoded events (seq, JSON) into batches whose gzip-compressed JSON array is at most
    ``limit`` bytes, in order; and the seqs of events too large to fit even alone."""
    batches: list[list[tuple[int, bytes]]] = []
    too_large: list[int] = []
    current: list[tuple[int, bytes]] = []
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    size = len(compressor.compress(b"["))
    for seq, encoded in events:
        trial = compressor.copy()
        chunk = trial.compress((b"," if current else b"") + encoded) + trial.flush(zlib.Z_SYNC_FLUSH)
        if size + len(chunk) + GZIP_TAIL <= limit:
            current.append((seq, encoded))
            compressor, size = trial, size + len(chunk)
            continue
        if current:
            batches.append(current)
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        size = len(compressor.compress(b"["))
        chunk = compressor.compress(encoded) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if size + len(chunk) + GZIP_TAIL > limit:
            # the estimate counts a flush the sent array does not have: measured exactly, it may fit
            if len(gzip_array([(seq, encoded)])) <= limit:
                batches.append([(seq, encoded)])
            else:
                too_large.append(seq)
            current = []
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
            size = len(compressor.compress(b"["))
            continue
        current = [(seq, encoded)]
        size += len(chunk)
    if current:
        batches.append(current)
    return batches, too_large


def gzip_array(batch: list[tuple[int, bytes]]) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = [
        compressor.compress(b"[" + b",".join(encoded for _, encoded in batch) + b"]"),
        compressor.flush(),
    ]
    return b"".join(parts)


@dataclass
class UploadState:
    """The last upload, for status messages and ``agent status``."""

    last_attempt_at: str | None = None
    last_ok_at: str | None = None
    last_error: str | None = None
    http_code: int | None = None
    """The HTTP status that made the last upload fail (None when it failed without an answer)."""
    sent: int = 0
    set_aside: int = 0  # records set aside now
    changes: int = 0  # how often that list, or failing vs not, changed (for status messages)


class DecisionLogPlugin:
    """Uploads a spool's pending records to ``[decision_logs]``."""

    def __init__(
        self,
        config: DecisionLogs,
        client: ServiceClient,
        labels: Mapping[str, str],
        *,
        notify: Notify | None = None,
        rng: random.Random | None = None,
        device_id: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.device_id = device_id
        """This device's id: a ``forbidden_device`` refusal of its own events means the token is bound
        to another device (a typo, or an id changed without a new token), not that they are stale."""
        self._devices: dict[int, str] = {}  # seq -> the device an event is about
        self.client = client
        self.labels = dict(labels)
        self.notify = notify or (lambda event, text, fields: None)
        self._rng = rng or random.Random()
        self._failures = 0
        self._retrying: set[int] = set()
        self._aside_now = 0
        """Events set aside in the step under way."""
        self._answer_code: int | None = None
        """The HTTP status of the answer that failed this upload, if one came."""
        self.state = UploadState()

    def step(self, spool: Spool) -> float:
        """Upload what is pending (oldest first); returns the seconds until the next attempt."""
        at = utc_now()
        self.state.last_attempt_at = at
        self._answer_code = None
        self._aside_now, sent_before = 0, self.state.sent
        error = self.upload(spool)
        if error is None and self._aside_now and self.state.sent == sent_before:
            # every event offered was set aside (refused, or too large): not an upload that went well
            error = f"none of the {self._aside_now} event(s) offered was accepted: set aside (agent status)"
        self.state.http_code = self._answer_code  # with the outcome: a status sent meanwhile keeps the last
        spool.note_ship(at=at, error=error)
        self.state.changes += (error is None) != (self.state.last_error is None)  # OK <-> failing: report it
        self.state.last_error = error
        if error is None:
            self.state.last_ok_at = at
            self._failures = 0
            return self._rng.uniform(self.config.min_delay, self.config.max_delay)
        self.notify("upload_failed", f"decision logs: {error}", {"error": error})
        self._failures += 1
        return backoff(self._failures, base=BACKOFF_BASE, cap=self.config.max_delay, rng=self._rng)

    def upload(self, spool: Spool) -> str | None:
        """Offer the set-aside events again, then send every pending record; None when all went (or
        were set aside), else why it stopped."""
        self._devices = {}  # (of this upload's events only)
        refused = spool.to_retry(RETRY_PER_PASS, upload_limit=self.config.upload_size_limit_bytes)
        self._retrying = {row.seq for row in refused}
        try:
            error = self._send(spool, refused, again=True) if refused else None
            while error is None:
                rows = spool.pending(MAX_PER_PASS)
                error = self._send(spool, rows) if rows else None
                if len(rows) < MAX_PER_PASS:
                    break
        finally:
            count = spool.set_aside_list(0)[0]
            self.state.changes += count != self.state.set_aside
            self.state.set_aside = count
        return error

    def _send(self, spool: Spool, rows: list[RawRecord], *, again: bool = False) -> str | None:
        events: list[tuple[int, bytes]] = []
        ids: dict[int, str] = {}
        for row in rows:
            event = event_of(row, self.labels, spool.key)
            if isinstance(event, str):
                self._set_aside(spool, row.seq, row.id, event, retry=False)
                continue
            ids[row.seq] = row.id
            self._devices[row.seq] = str(event["labels"]["id"])
            events.append((row.seq, json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()))
        batches, too_large = gzip_batches(events, self.config.upload_size_limit_bytes)
        limit = self.config.upload_size_limit_bytes
        for seq in too_large:
            reason = f"the event is over upload_size_limit_bytes ({limit}) even gzipped, alone"
            self._set_aside(spool, seq, ids[seq], reason, retry=False, size_limit=limit)
        for batch in batches:
            error = self._deliver(spool, batch, ids, split=not again)
            if error is not None:
                return error
        return None

    def _deliver(
        self, spool: Spool, batch: list[tuple[int, bytes]], ids: Mapping[int, str], *, split: bool = True
    ) -> str | None:
        """Send ``batch``; a refusal is split in halves down to the event refused (``split``), or, for
        events offered again (most of them refused before, likely again), one request each at once:
        n requests, not the 2n - 1 of halving a batch of refusals."""
        try:
            reply = self.client.request(
                "POST",
                self.config.resource,
                timeout=self.client.service.timeout,
                max_body=64 * 1024,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                body=gzip_array(batch),
            )
        except BodyTooLarge:  # (bounded so only in a 2xx: taken, as OPA reads a 2xx by its status alone)
            self._shipped(spool, batch, None)
            return None
        except (TransportError, PyagentError) as err:
            return str(err)
        if 200 <= reply.status < 300:
            self._shipped(spool, batch, reply)
            return None
        forbidden = reply.status == 403 and reply.error_code() == DEVICE_REFUSED
        if (reply.status not in REFUSED and not forbidden) or (forbidden and self._all_mine(batch)):
            self._answer_code = reply.status
            return f"{self.client.url(self.config.resource)}: {reply.message()}"
        if len(batch) == 1:
            seq = batch[0][0]
            reason = f"refused by {self.client.url(self.config.resource)}: {reply.message()}"
            self._set_aside(spool, seq, ids[seq], reason, retry=True)
            return None
        if not split:
            for one in batch:
                error = self._deliver(spool, [one], ids)
                if error is not None:
                    return error
            return None
        middle = len(batch) // 2
        return self._deliver(spool, batch[:middle], ids) or self._deliver(spool, batch[middle:], ids)

    def _shipped(self, spool: Spool, batch: list[tuple[int, bytes]], reply: Reply | None) -> None:
        spool.mark_shipped_many([seq for seq, _ in batch], utc_now())
        self.state.sent += len(batch)
        if reply is not None:
            self._told_ignored(reply, len(batch))

    def _told_ignored(self, reply: Reply, sent: int) -> None:
        """A pyagent server acknowledges events it does not store (its answer's ``ignored``): for an
        agent's own decisions, ones dated over five minutes ahead of the server's clock. They are not
        sent again (they would be ignored again), and never dropped unsaid: told here."""
        try:
            answer = json.loads(reply.body) if reply.body else None
        except (ValueError, RecursionError):
            return
        ignored = answer.get("ignored") if isinstance(answer, dict) else None
        if isinstance(ignored, int) and not isinstance(ignored, bool) and ignored > 0:
            text = (
                f"decision logs: {self.client.url(self.config.resource)} acknowledged {min(ignored, sent)} "
                f"of {sent} event(s) without storing them (a decision dated ahead of the server's clock: "
                "check this machine's clock)"
            )
            self.notify("upload_ignored", text, {"ignored": ignored, "sent": sent})

    def _all_mine(self, batch: list[tuple[int, bytes]]) -> bool:
        """Every event of ``batch`` is about this device (so a refusal is the token's, not theirs)."""
        mine = self.device_id() if self.device_id is not None else None
        return mine is not None and all(self._devices.get(seq) == mine for seq, _ in batch)

    def _set_aside(
        self,
        spool: Spool,
        seq: int,
        record_id: str,
        reason: str,
        *,
        retry: bool,
        size_limit: int | None = None,
    ) -> None:
        again = seq in self._retrying
        self._aside_now += 1
        spool.set_aside(seq, utc_now(), reason, retry=retry, size_limit=size_limit)
        if again:  # refused once more: its entry says when and why, without a new notice
            return
        self.notify(
            "event_set_aside",
            f"decision logs: record seq {seq} set aside: {reason}",
            {"seq": seq, "id": record_id, "reason": reason},
        )
