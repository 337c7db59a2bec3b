"""``pyagent log verify``: walk the decision log's chain and name every record that breaks it.

What is checked, in order:

1. the key: a log chained with HMAC needs the key; a key given for an unkeyed log is a downgrade;
2. each record's content against its stored digest (an edit that did not recompute the digest);
3. the order: records stored in another order than their (hashed) sequence numbers (reordered);
4. the links, from the anchor (genesis or the last record dropped for the size bound) to the head:
   a record whose ``prev_hash`` is not the previous record's digest is diagnosed as the previous
   record *inserted* (the next one links past it), records *deleted* (a gap in the hashed sequence
   numbers), or the previous record *edited or replaced* (its digest was recomputed);
5. the head and the anchor in ``meta`` against the last record (deleted or appended at the end;
   the anchor and dropped counters edited).

Threat model: without a key, anyone who can write the file can rewrite the whole chain consistently;
the chain then only detects edits when its head is also known elsewhere (the agent ships the head with
every record to the collector). With ``agent.hmac_key_file`` a writer without the key cannot forge
digests, but can still truncate or roll back the whole file; again the shipped head detects that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyagent.agent.chain import MAC_KEYED, MAC_PLAIN, ChainKey
from pyagent.agent.store import ChainState, RawRecord, Spool, SpoolError
from pyagent.errors import InvalidInputError
from pyagent.jsonio import parse_json


@dataclass(frozen=True)
class Problem:
    """One break in the chain: what (``kind``), where (``seq``, ``record_id``), and a sentence."""

    kind: str  # edited | deleted | inserted | reordered | anchor | identity | key
    seq: int | None
    record_id: str | None
    message: str

    def json(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "id": self.record_id, "message": self.message}


@dataclass(frozen=True)
class Verification:
    """The verdict on one log."""

    path: str
    chain_id: str
    mac: str
    records: int
    anchor_seq: int
    head_seq: int
    head_hash: str
    dropped: int
    problems: tuple[Problem, ...]

    @property
    def intact(self) -> bool:
        return not self.problems

    def json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "intact": self.intact,
            "chain_id": self.chain_id,
            "mac": self.mac,
            "records": self.records,
            "anchor_seq": self.anchor_seq,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "dropped": self.dropped,
            "problems": [problem.json() for problem in self.problems],
        }


@dataclass(frozen=True)
class _Entry:
    row: RawRecord
    body: dict[str, Any] | None
    sound: bool  # the content matches its digest and its row
    seq: int  # the hashed sequence number when sound, else the row's

    @property
    def name(self) -> str:
        return f"seq {self.row.seq} (id {self.row.id})"


def sound_body(row: RawRecord, key: ChainKey) -> dict[str, Any] | None:
    """``row``'s body, read once, when it is a JSON object that gives its hash under ``key`` and matches
    its row; None otherwise."""
    entry = _entry(row, key)
    return entry.body if entry.sound else None


def _entry(row: RawRecord, key: ChainKey) -> _Entry:
    try:
        body = parse_json(row.body.encode("utf-8"), name=f"record seq {row.seq}", what="record")
    except InvalidInputError:  # not JSON: an edit, reported by the caller as a problem
        return _Entry(row, None, False, row.seq)
    if not isinstance(body, dict):
        return _Entry(row, None, False, row.seq)
    seq = body.get("seq")
    sound = (
        isinstance(seq, int)
        and not isinstance(seq, bool)
        and body.get("id") == row.id
        and body.get("prev_hash") == row.prev_hash
        and _digest(key, body) == row.hash
    )
    return _Entry(row, body, sound, seq if sound and isinstance(seq, int) else row.seq)


def _digest(key: ChainKey, body: object) -> str | None:
    """``body``'s digest; None for one the chain's canonical JSON cannot hold (a NaN written into a
    record: an edit, never what the agent wrote)."""
    try:
        return key.digest(body)
    except ValueError:
        return None


def _check_key(spool: Spool, state: ChainState, key: ChainKey) -> Problem | None:
    if state.mac == MAC_KEYED and key.secret is None:
        raise SpoolError(
            f"{spool.path}: the decision log is keyed (HMAC key id {state.key_id}); "
            "give --key-file or set agent.hmac_key_file"
        )
    if state.mac == MAC_KEYED and state.key_id != key.key_id:
        raise SpoolError(
            f"{spool.path}: the decision log was keyed with key id {state.key_id}, "
            f"the key given has id {key.key_id}"
        )
    if state.mac == MAC_PLAIN and key.secret is not None:
        return Problem(
            "key",
            None,
            None,
            "the log says it is not keyed, but a key is configured: downgraded or a wrong config",
        )
    if state.mac not in (MAC_PLAIN, MAC_KEYED):
        return Problem("key", None, None, f"meta.mac is {state.mac!r}, neither {MAC_PLAIN} nor {MAC_KEYED}")
    return None


def verify_spool(spool: Spool, key: ChainKey) -> Verification:
    """Verify the whole log in ``spool`` with ``key`` (an unkeyed :class:`ChainKey` for plain chains)."""
    with spool.snapshot():
        state = spool.state()
        rows = spool.records()
    entries = [_entry(row, key) for row in rows]
    problems: list[Problem] = []
    key_problem = _check_key(spool, state, key)
    if key_problem is not None:
        problems.append(key_problem)
    else:
        problems.extend(
            Problem(
                "edited",
                e.row.seq,
                e.row.id,
                f"record {e.name} was edited: its content does not match its hash",
            )
            for e in entries
            if not e.sound
        )
        order = sorted(range(len(entries)), key=lambda i: (entries[i].seq, i))
        problems.extend(
            Problem(
                "reordered",
                entries[i].row.seq,
                entries[i].row.id,
                f"record {entries[i].name} was written as seq {entries[i].seq}: records were reordered",
            )
            for position, i in enumerate(order)
            if i != position
        )
        chain = [entries[i] for i in order]
        problems.extend(_links(chain, state))
        problems.extend(_ends(chain, state))
        problems.extend(_identity(chain, state))
    unique = list(dict.fromkeys(problems))
    return Verification(
        path=str(spool.path),
        chain_id=state.chain_id,
        mac=state.mac,
        records=len(entries),
        anchor_seq=state.anchor_seq,
        head_seq=state.head_seq,
        head_hash=state.head_hash,
        dropped=state.dropped,
        problems=tuple(unique),
    )


def _links(chain: list[_Entry], state: ChainState) -> list[Problem]:
    problems: list[Problem] = []
    expected_prev, expected_seq = state.anchor_hash, state.anchor_seq + 1
    before_prev: str | None = None
    previous: _Entry | None = None
    for entry in chain:
        if entry.row.prev_hash != expected_prev:
            problems.append(_diagnose(entry, previous, before_prev, expected_seq, state))
        elif entry.sound and entry.seq != expected_seq and previous is None:
            problems.append(
                Problem(
                    "anchor",
                    entry.row.seq,
                    entry.row.id,
                    f"record {entry.name} follows the anchor's hash but the anchor says seq "
                    f"{state.anchor_seq}: the anchor in meta was edited",
                )
            )
        elif entry.sound and entry.seq != expected_seq:
            problems.append(
                Problem(
                    "inserted",
                    entry.row.seq,
                    entry.row.id,
                    f"record {entry.name} claims seq {entry.seq} but follows seq {expected_seq - 1}: forged",
                )
            )
        before_prev, previous = expected_prev, entry
        expected_prev, expected_seq = entry.row.hash, entry.seq + 1
    return problems


def _diagnose(
    entry: _Entry, previous: _Entry | None, before_prev: str | None, expected_seq: int, state: ChainState
) -> Problem:
    if previous is not None and entry.row.prev_hash == before_prev:
        return Problem(
            "inserted",
            previous.row.seq,
            previous.row.id,
            f"record {previous.name} was inserted: the next record, {entry.name}, links past it",
        )
    if entry.sound and entry.seq > expected_seq:
        missing = _span(expected_seq, entry.seq - 1)
        where = f"after the anchor (seq {state.anchor_seq})" if previous is None else f"after {previous.name}"
        return Problem(
            "deleted", expected_seq, None, f"record {missing} missing (deleted) {where}, before {entry.name}"
        )
    if previous is None:
        return Problem(
            "anchor",
            entry.row.seq,
            entry.row.id,
            f"record {entry.name} does not follow the anchor (seq {state.anchor_seq}): "
            "the anchor in meta or this record was edited",
        )
    return Problem(
        "edited",
        previous.row.seq,
        previous.row.id,
        f"record {previous.name} was edited or replaced: the next record, {entry.name}, does not link to it",
    )


def _ends(chain: list[_Entry], state: ChainState) -> list[Problem]:
    if not chain:
        if state.head_seq != state.anchor_seq:
            missing = _span(state.anchor_seq + 1, state.head_seq)
            return [
                Problem(
                    "deleted", state.anchor_seq + 1, None, f"record {missing} missing (deleted): none left"
                )
            ]
        if state.head_hash != state.anchor_hash:  # (an empty log's head is its anchor: none were kept)
            return [
                Problem(
                    "deleted",
                    state.anchor_seq + 1,
                    None,
                    "no record left, yet the recorded head is not the anchor: the records were deleted and "
                    "the head's count set back",
                )
            ]
        return []
    last = chain[-1]
    if last.seq < state.head_seq:
        missing = _span(last.seq + 1, state.head_seq)
        return [
            Problem(
                "deleted", last.seq + 1, None, f"record {missing} missing (deleted) at the end of the log"
            )
        ]
    if last.seq > state.head_seq:
        return [
            Problem(
                "inserted",
                last.row.seq,
                last.row.id,
                f"record {last.name} comes after the recorded head (seq {state.head_seq}): "
                "appended outside the agent",
            )
        ]
    if last.row.hash != state.head_hash or last.row.id != (state.head_id or ""):
        return [
            Problem(
                "edited", last.row.seq, last.row.id, f"record {last.name} does not match the recorded head"
            )
        ]
    if last.sound and last.body is not None:
        said = (last.body.get("anchor"), last.body.get("dropped"), last.body.get("dropped_unshipped"))
        held = ({"seq": state.anchor_seq, "hash": state.anchor_hash}, state.dropped, state.dropped_unshipped)
        if said != held:
            return [
                Problem(
                    "anchor",
                    None,
                    None,
                    f"the anchor or dropped counters in meta (seq {state.anchor_seq}, "
                    f"dropped {state.dropped}, dropped unshipped {state.dropped_unshipped}) "
                    f"differ from what the head record {last.name} says: edited",
                )
            ]
    return []


def _identity(chain: list[_Entry], state: ChainState) -> list[Problem]:
    """Each record names the chain it was written in (and the first, the origin): one that names
    another than ``meta`` does was written after ``meta``'s identity was edited, or ``meta`` since.
    Its dropped counters grow only by the records dropped before it (the anchor's move): more was
    copied from an edited ``meta``. The first such record is named (the later ones would be too)."""
    previous: _Entry | None = None
    for entry in chain:
        if not entry.sound or entry.body is None:
            continue
        if previous is not None and previous.body is not None and entry.seq == previous.seq + 1:
            problem = _counted(previous.body, entry)
            if problem is not None:
                return [problem]
        previous = entry
        if entry.body.get("chain_id") != state.chain_id:
            return [
                Problem(
                    "identity",
                    entry.row.seq,
                    entry.row.id,
                    f"record {entry.name} is of chain {entry.body.get('chain_id')!r}, but meta says "
                    f"{state.chain_id!r}: the log's identity was edited",
                )
            ]
        if entry.seq == 1 and entry.body.get("origin", "") != state.origin:
            return [
                Problem(
                    "identity",
                    entry.row.seq,
                    entry.row.id,
                    f"record {entry.name} says the log began at {entry.body.get('origin', '')!r}, but meta "
                    f"says {state.origin!r}: the log's identity was edited",
                )
            ]
    return []


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}..{last}"


def _counted(before: dict[str, Any], entry: _Entry) -> Problem | None:
    """A problem when ``entry``'s dropped counters moved otherwise than its anchor did since ``before``."""
    after = entry.body or {}
    try:
        moved = int(after["anchor"]["seq"]) - int(before["anchor"]["seq"])
        dropped = int(after["dropped"]) - int(before["dropped"])
        unshipped = int(after.get("dropped_unshipped", 0)) - int(before.get("dropped_unshipped", 0))
    except (KeyError, TypeError, ValueError):
        return Problem("edited", entry.row.seq, entry.row.id, f"record {entry.name} has no readable counters")
    if dropped == moved and 0 <= unshipped <= moved:
        return None
    return Problem(
        "anchor",
        entry.row.seq,
        entry.row.id,
        f"record {entry.name} counts {dropped} more dropped ({unshipped} unshipped) than the previous one "
        f"while its anchor moved by {moved}: the counters in meta were edited",
    )
