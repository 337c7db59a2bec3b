"""Each device's decision-log chain, checked as its records arrive.

An agent's decision-log event carries its spool record's place in a hash chain (CONTRACT 6.3: a
top-level ``pyagent`` object with ``seq``, ``hash`` and ``prev_hash``; ``deploy/systemd/README.md``,
"The spool"). A plain hash chain shows an edit only against a head known elsewhere: the server is
that elsewhere. It keeps each device's head (its newest record's seq and hash) and checks that each
record extends it.

Not every record becomes an event: a run that decided nothing (a collector that failed) is never
sent, an event the server refused waits aside, one dated ahead of the server's clock is not stored,
and the agent's bounded spool may drop records before they are sent. A record further ahead than the
next therefore leaves a **hole** (its seqs are counted as ``missing``, not as a break), remembered with
the hashes and instants at its edges; a late record that fits an edge of a hole (linked to the record
below it, or the one the record above it links to) and was decided between the two fills it. (A
record forged ahead of the log leaves a hole that the device's first real record decided after it
cannot fill: a break then, at the latest.) What is left is a **break**, counted, kept (the
latest), shown by the fleet API and the dashboard, and logged:

* ``fork``: the next seq, linked to another record than the head (the log was rewritten);
* ``behind``: a record at or behind the head that fills no hole (a replay, the log rolled back, or a
  new spool whose first record was not sent); the head goes back to it, so that the records after it
  are read against it;
* ``restart``: a new chain (seq 1 from 64 zeros: the spool was replaced or moved aside);
* ``unreadable``: chain fields that are not a seq and two SHA-256 digests.

A break is evidence for a person to look at, not a verdict: a device's compliance stays its last
decision's. The first chained record the server stores of a device starts its head. A decision stored
without chain fields, sent as the device itself (a token bound to it, or its id as ``labels.id``), for
a device that has a chain (an OPA sidecar's copy, which the agent's copy confirms when it comes with
``--engine opa``; or an event forged without them) is counted as **unconfirmed** until a chained
record with its decision id arrives; an OPA gateway's, sent as its own instance, is not. A record
sent again (stored, its answer lost) is not checked twice. Chain fields are taken from any agent
token: one not bound to the device (an OPA gateway's) can post them for it, which costs it a break
the next time the device's own records arrive. A new spool whose first records were not sent, and
whose first sent seq is past the old head, reads as a hole, not as a restart: the server cannot tell
the two chains apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from pyagent.logsetup import get_logger
from pyagent.server.store.base import DecisionRow
from pyagent.server.store.fleet import iso
from pyagent.server.store.rows import read_json, utc
from pyagent.server.store.schema import chains, decisions

log = get_logger("pyagent.server")

_DIGEST = re.compile(r"[0-9a-f]{64}")
GENESIS = "0" * 64
#: Decision ids looked up per statement (SQLite's bound on parameters is 32,766 by default).
_PER_READ = 1000
#: Holes remembered per device (the oldest are forgotten: their records can no longer fill them).
MAX_HOLES = 32
#: Unconfirmed decision ids remembered per device (their count is kept whole).
MAX_UNCONFIRMED_IDS = 32

WHAT = {
    "fork": "the record does not link to the head: the log was rewritten",
    "behind": "a record at or behind the head that fills no hole: a replay, the log rolled back, or a "
    "new spool whose first record was not sent",
    "restart": "a new chain started (seq 1): the agent's spool was replaced or moved aside",
    "unreadable": "the record's chain fields are not a seq and two SHA-256 digests",
}


@dataclass(frozen=True)
class Link:
    seq: int
    hash: str
    prev_hash: str


@dataclass
class Hole:
    """Seqs ``lo..hi`` not received; ``base``: the hash of record ``lo - 1``, ``top``: of record ``hi``
    (the one the record above the hole links to); ``base_at``, ``top_at``: the instants (RFC 3339) of
    the records below and above it, between which the missing ones were decided."""

    lo: int
    hi: int
    base: str
    top: str
    base_at: str | None
    top_at: str


@dataclass
class Head:
    """A device's head: its newest record's seq and hash (seq 0: none yet), its holes and breaks."""

    seq: int = 0
    hash: str = GENESIS
    at: datetime | None = None
    breaks: int = 0
    missing: int = 0
    holes: list[Hole] = field(default_factory=list)
    last_break: dict[str, Any] | None = None
    #: Decisions stored for the device without chain fields that no chained record has confirmed yet.
    unconfirmed: int = 0
    unconfirmed_ids: list[str] = field(default_factory=list)


def link_of(chain: str) -> Link | None:
    """The chain fields an event carried (stored as JSON); None when they are not well formed."""
    try:
        fields = json.loads(chain)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    seq, digest, prev = fields.get("seq"), fields.get("hash"), fields.get("prev_hash")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq < 2**62:
        return None
    if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
        return None
    if not (isinstance(prev, str) and _DIGEST.fullmatch(prev)):
        return None
    return Link(seq, digest, prev)


def step(head: Head, link: Link | None, at: datetime) -> str | None:
    """Take ``link`` (a record decided at ``at``) into ``head``; the kind of break it makes (see the
    module's doc), or None."""
    if link is None:
        return "unreadable"
    kind: str | None = None
    if head.seq == 0 or link.seq == head.seq + 1:
        kind = None if head.seq == 0 or link.prev_hash == head.hash else "fork"
    elif link.seq > head.seq + 1:
        below = _iso(head.at) if head.at is not None else None
        hole = Hole(head.seq + 1, link.seq - 1, head.hash, link.prev_hash, below, _iso(at))
        head.missing += hole.hi - hole.lo + 1
        head.holes = [*head.holes, hole][-MAX_HOLES:]
    elif _fills(head, link, at):
        return None
    else:
        kind = "restart" if link.seq == 1 and link.prev_hash == GENESIS else "behind"
        head.holes = []
    head.seq, head.hash, head.at = link.seq, link.hash, at
    return kind


def _fills(head: Head, link: Link, at: datetime) -> bool:
    """Whether ``link``, decided at ``at``, fills an edge of one of ``head``'s holes (and narrows it)."""
    when = _iso(at)
    for hole in head.holes:
        if not ((hole.base_at is None or hole.base_at <= when) and when <= hole.top_at):
            continue
        at_lo = link.seq == hole.lo and link.prev_hash == hole.base
        at_hi = link.seq == hole.hi and link.hash == hole.top
        if not (at_lo and at_hi if hole.lo == hole.hi else at_lo or at_hi):
            continue
        if at_lo:
            hole.lo, hole.base, hole.base_at = hole.lo + 1, link.hash, when
        else:
            hole.hi, hole.top, hole.top_at = hole.hi - 1, link.prev_hash, when
        if hole.lo > hole.hi:
            head.holes.remove(hole)
        head.missing -= 1
        return True
    return False


def _iso(at: datetime) -> str:
    """``at`` (UTC) as fixed-width RFC 3339, so that two compare as strings as they do as instants."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check(conn: Connection, rows: Sequence[DecisionRow], new: set[str], now: datetime) -> None:
    """Check the chained records of a batch against their devices' heads, in the ingest's transaction
    (before the chain fields of records stored without them are added), and store the heads.
    ``new``: the batch's decision ids the store did not hold before."""
    resent = _already_chained(conn, [r.decision_id for r in rows if r.chain and r.decision_id not in new])
    chained = [r for r in rows if r.chain and r.decision_id not in resent]
    # (sent as the device itself: by a token bound to it, or an agent's labels; an OPA gateway's events
    # about many devices, sent as its own instance, are no device's log)
    unchained = [r for r in rows if not r.chain and r.decision_id in new and r.sender == r.device_id]
    if not chained and not unchained:
        return
    heads = _locked_heads(conn, {r.device_id for r in chained}, {r.device_id for r in unchained}, now)
    for row in unchained:  # (an OPA's copy, confirmed when the agent's comes; or a forgery, never)
        head = heads.get(row.device_id)
        if head is not None and head.seq:
            head.unconfirmed += 1
            head.unconfirmed_ids = [*head.unconfirmed_ids, row.decision_id][-MAX_UNCONFIRMED_IDS:]
    links = [(row, link_of(row.chain or "")) for row in chained]
    broken: dict[str, list[str]] = {}
    for row, link in sorted(links, key=lambda pair: (pair[0].device_id, pair[1].seq if pair[1] else 0)):
        head = heads[row.device_id]
        if row.decision_id in head.unconfirmed_ids:
            head.unconfirmed_ids.remove(row.decision_id)
            head.unconfirmed -= 1
        kind = step(head, link, row.decided_at)
        if kind is not None:
            head.breaks += 1
            head.last_break = _break(kind, row, link, now)
            broken.setdefault(row.device_id, []).append(kind)
    for device, kinds in broken.items():  # (once per device and batch: a replayed batch is one line)
        log.warning("device %r: %d decision-log chain break(s) (%s)", device, len(kinds), ", ".join(kinds))
    for device, head in sorted(heads.items()):
        conn.execute(
            update(chains)
            .where(chains.c.device_id == device)
            .values(
                seq=head.seq,
                hash=head.hash,
                head_at=head.at,
                breaks=head.breaks,
                missing=head.missing,
                holes=json.dumps([asdict(h) for h in head.holes]) if head.holes else None,
                unconfirmed=head.unconfirmed,
                unconfirmed_ids=json.dumps(head.unconfirmed_ids) if head.unconfirmed_ids else None,
                last_break=json.dumps(head.last_break, sort_keys=True) if head.last_break else None,
                updated_at=now,
            )
        )


def _locked_heads(conn: Connection, chained: set[str], unchained: set[str], now: datetime) -> dict[str, Head]:
    """The heads of the devices with chained records (each row made first when missing) and of those
    with only unchained ones (when they have one), locked until the transaction ends (PostgreSQL;
    SQLite's transaction holds the write lock already), in device order: two replicas taking one
    device's records at once check them one after the other."""
    insert_fn = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    if chained:
        empty = {"seq": 0, "hash": GENESIS, "breaks": 0, "missing": 0, "unconfirmed": 0, "updated_at": now}
        conn.execute(
            insert_fn(chains).on_conflict_do_nothing(index_elements=["device_id"]),
            [{"device_id": device, **empty} for device in sorted(chained)],
        )
    wanted = sorted(chained | unchained)
    heads: dict[str, Head] = {}
    for first in range(0, len(wanted), _PER_READ):  # (in chunks: SQLite bounds a statement's parameters)
        chunk = wanted[first : first + _PER_READ]
        query = select(chains).where(chains.c.device_id.in_(chunk)).order_by(chains.c.device_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        heads.update(_heads(conn.execute(query)))
    return heads


def _heads(stored_rows: Any) -> dict[str, Head]:
    heads: dict[str, Head] = {}
    for stored in stored_rows:
        heads[stored.device_id] = Head(
            stored.seq,
            stored.hash,
            utc(stored.head_at) if stored.head_at is not None else None,
            stored.breaks,
            stored.missing,
            [Hole(**hole) for hole in read_json(stored.holes) or []],
            read_json(stored.last_break),
            stored.unconfirmed,
            read_json(stored.unconfirmed_ids) or [],
        )
    return heads


def _break(kind: str, row: DecisionRow, link: Link | None, now: datetime) -> dict[str, Any]:
    return {
        "kind": kind,
        "what": WHAT[kind],
        "decision_id": row.decision_id,
        "seq": link.seq if link is not None else None,
        "detected_at": iso(now),
    }


def _already_chained(conn: Connection, ids: list[str]) -> set[str]:
    """Of ``ids`` (stored before this batch), those whose stored copy has chain fields: sent again."""
    found: set[str] = set()
    for first in range(0, len(ids), _PER_READ):
        chunk = ids[first : first + _PER_READ]
        query = select(decisions.c.decision_id).where(
            decisions.c.decision_id.in_(chunk), decisions.c.chain.is_not(None)
        )
        found.update(conn.execute(query).scalars())
    return found


def chain_json(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A device's chain as the fleet API shows it: its head, the records it has not received
    (``missing``) and its breaks; None: no chained record."""
    if stored is None or not stored["seq"]:
        return None
    return {
        "seq": stored["seq"],
        "hash": stored["hash"],
        "missing": stored["missing"],
        "unconfirmed": stored["unconfirmed"],
        "unconfirmed_ids": read_json(stored["unconfirmed_ids"]) or [],
        "breaks": stored["breaks"],
        "last_break": read_json(stored["last_break"]),
    }
