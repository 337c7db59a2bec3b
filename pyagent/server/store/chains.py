"""Each device's decision-log chain, checked as its records arrive.

An agent's decision-log event carries its spool record's place in a hash chain (CONTRACT 6.3: a
top-level ``pyagent`` object with ``seq``, ``hash`` and ``prev_hash``; ``deploy/systemd/README.md``,
"The spool"). A plain hash chain shows an edit only against a head known elsewhere: the server is
that elsewhere. It keeps each device's head (the highest ``seq`` it has stored, and its hash) and
checks that each new record extends it. A record that does not is a **break**, counted and kept (the
latest) on the device, shown by the fleet API and the dashboard, and logged:

* ``fork``: the next seq, linked to another record than the head (the log was rewritten);
* ``gap``: seqs missing between the head and the record (records deleted, dropped by the agent's
  bounded spool before they were sent, or a record forged ahead of the log);
* ``behind``: a new record at or behind the head (replayed, or the log rolled back);
* ``restart``: a new chain (seq 1 from 64 zeros: the spool was replaced or moved aside);
* ``unreadable``: chain fields that are not a seq and two SHA-256 digests.

A break is evidence for a person to look at, not a verdict: a device's compliance stays its last
decision's. The first record the server sees of a device starts its head. Events without chain
fields (an OPA's) are not checked; the agent's copy of a decision its OPA logged first brings them
(``--engine opa``). A record sent again (the agent's upload was stored but its answer lost) is not
checked twice: only records new to the server, or whose stored copy had no chain, are.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from pyagent.server.store.base import DecisionRow
from pyagent.server.store.schema import chains, decisions

log = logging.getLogger("pyagent.server")

_DIGEST = re.compile(r"[0-9a-f]{64}")
GENESIS = "0" * 64
#: Decision ids looked up per statement (SQLite's bound on parameters is 32,766 by default).
_PER_READ = 1000

WHAT = {
    "fork": "the record does not link to the head: the log was rewritten",
    "gap": "records are missing between the head and this one: deleted, dropped by the agent's bounded "
    "spool before they were sent, or this one forged ahead of the log",
    "behind": "a new record at or behind the head: replayed, or the log rolled back",
    "restart": "a new chain started (seq 1): the agent's spool was replaced or moved aside",
    "unreadable": "the record's chain fields are not a seq and two SHA-256 digests",
}


@dataclass(frozen=True)
class Link:
    seq: int
    hash: str
    prev_hash: str


@dataclass
class Head:
    """A device's head: the highest seq stored and its hash (seq 0: no record yet), and its breaks."""

    seq: int = 0
    hash: str = GENESIS
    breaks: int = 0
    last_break: dict[str, Any] | None = None


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


def judge(head: Head, link: Link | None) -> str | None:
    """The kind of break ``link`` makes after ``head`` (see the module's doc), or None."""
    if link is None:
        return "unreadable"
    if head.seq == 0:  # the first record seen of the device starts its head
        return None
    if link.seq == head.seq + 1:
        return None if link.prev_hash == head.hash else "fork"
    if link.seq == 1 and link.prev_hash == GENESIS:
        return "restart"
    return "gap" if link.seq > head.seq + 1 else "behind"


def advance(head: Head, link: Link | None, kind: str | None) -> bool:
    """Move ``head`` past ``link`` (a break or not: the chain goes on from the newest record), unless
    the record is at or behind it; whether it moved."""
    if link is None or kind == "behind":
        return False
    head.seq, head.hash = link.seq, link.hash
    return True


def check(conn: Connection, rows: Sequence[DecisionRow], new: set[str], now: datetime) -> None:
    """Check the chained records of a batch against their devices' heads, in the ingest's transaction
    (before the chain fields of records stored without them are added), and store the heads.
    ``new``: the batch's decision ids the store did not hold before."""
    resent = _already_chained(conn, [r.decision_id for r in rows if r.chain and r.decision_id not in new])
    chained = [r for r in rows if r.chain and r.decision_id not in resent]
    if not chained:
        return
    postgres = conn.dialect.name == "postgresql"
    query = select(chains).where(chains.c.device_id.in_(sorted({r.device_id for r in chained})))
    heads: dict[str, Head] = {}
    for stored in conn.execute(query.with_for_update() if postgres else query):
        last = json.loads(stored.last_break) if stored.last_break else None
        heads[stored.device_id] = Head(stored.seq, stored.hash, stored.breaks, last)
    links = [(row, link_of(row.chain or "")) for row in chained]
    for row, link in sorted(links, key=lambda pair: (pair[0].device_id, pair[1].seq if pair[1] else 0)):
        head = heads.setdefault(row.device_id, Head())
        kind = judge(head, link)
        if kind is not None:
            head.breaks += 1
            head.last_break = _break(kind, row, link, head, now)
            log.warning(
                "device %r: decision-log chain break (%s) at %s", row.device_id, kind, row.decision_id
            )
        advance(head, link, kind)
    insert_fn = postgresql.insert if postgres else sqlite.insert
    statement = insert_fn(chains)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["device_id"],
            set_={
                key: statement.excluded[key] for key in ("seq", "hash", "breaks", "last_break", "updated_at")
            },
        ),
        [
            {
                "device_id": device,
                "seq": head.seq,
                "hash": head.hash,
                "breaks": head.breaks,
                "last_break": json.dumps(head.last_break, sort_keys=True) if head.last_break else None,
                "updated_at": now,
            }
            for device, head in sorted(heads.items())
        ],
    )


def _break(kind: str, row: DecisionRow, link: Link | None, head: Head, now: datetime) -> dict[str, Any]:
    return {
        "kind": kind,
        "what": WHAT[kind],
        "decision_id": row.decision_id,
        "seq": link.seq if link is not None else None,
        "head_seq": head.seq or None,
        "detected_at": now.isoformat().replace("+00:00", "Z"),
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
    """A device's chain as the fleet API shows it: its head and its breaks (None: no chained record)."""
    if stored is None:
        return None
    last = stored.get("last_break")
    return {
        "seq": stored["seq"],
        "hash": stored["hash"],
        "breaks": stored["breaks"],
        "last_break": json.loads(last) if isinstance(last, str) else None,
    }
