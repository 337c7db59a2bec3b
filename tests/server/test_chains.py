"""Each device's decision-log chain, checked by the server as records arrive (``store.chains``): a
record that does not extend the device's head is a break, counted and kept, shown by the API and the
dashboard. A local-attacker audit posted a compliant event 100 records ahead with made-up hashes, and
the server stored it as the device's verdict without a word; it is still stored (a break is evidence,
not a verdict), and now said. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import html
from typing import Any

import pytest

from pyagent.server.events import parse_batch
from pyagent.server.store import Store
from pyagent.server.store.chains import GENESIS, WHAT, Head, Link, judge, link_of
from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet

DEVICE = "fr-brussels-0042"


def _digest(seq: int, prev: str) -> str:
    return hashlib.sha256(f"{seq}:{prev}".encode()).hexdigest()


def _chain(length: int, start: int = 1, prev: str = GENESIS) -> list[dict[str, Any]]:
    """``length`` records from ``start``, each linked to the one before (the first to ``prev``)."""
    links = []
    for seq in range(start, start + length):
        digest = _digest(seq, prev)
        links.append({"seq": seq, "hash": digest, "prev_hash": prev})
        prev = digest
    return links


def _events(links: list[dict[str, Any]], prefix: str, hour: int = 9) -> list[dict[str, Any]]:
    events = []
    for n, link in enumerate(links):
        event = decision_event(f"{prefix}-{link['seq']:04d}", at=f"2023-03-16T{hour:02d}:{n:02d}:00Z")
        event["pyagent"] = link
        events.append(event)
    return events


def _send(store: Store, events: list[dict[str, Any]]) -> None:
    batch = parse_batch(events)
    store.ingest(batch.rows, batch.reports)


def _chain_of(store: Store) -> dict[str, Any] | None:
    state = store.device(DEVICE)
    assert state is not None
    return state.chain


def _broken(kind: str, decision_id: str, seq: int | None, head_seq: int | None) -> dict[str, Any]:
    return {"kind": kind, "what": WHAT[kind], "decision_id": decision_id, "seq": seq, "head_seq": head_seq}


def _last_break(store: Store) -> dict[str, Any]:
    chain = _chain_of(store)
    assert chain is not None and chain["last_break"] is not None
    return {k: v for k, v in chain["last_break"].items() if k != "detected_at"}


def test_an_intact_chain_and_a_batch_sent_again_make_no_break(store: Store) -> None:
    links = _chain(3)
    _send(store, _events(links, "a"))
    _send(store, _events(links, "a"))  # (stored, its answer lost: sent again)
    _send(store, _events(_chain(2, start=4, prev=links[-1]["hash"]), "a"))
    assert _chain_of(store) == {"seq": 5, "hash": _chain(5)[-1]["hash"], "breaks": 0, "last_break": None}


def test_a_record_forged_ahead_of_the_log_is_a_gap_and_the_chain_goes_on_from_it(store: Store) -> None:
    links = _chain(3)
    _send(store, _events(links, "a"))
    forged = {"seq": 103, "hash": "f" * 64, "prev_hash": "e" * 64}
    _send(store, _events([forged], "x", hour=10))
    assert _last_break(store) == _broken("gap", "x-0103", 103, 3)
    _send(store, _events(_chain(1, start=104, prev="f" * 64), "x", hour=11))
    chain = _chain_of(store)
    assert chain is not None and (chain["seq"], chain["breaks"]) == (104, 1)


@pytest.mark.parametrize(
    ("link", "kind", "seq", "head"),
    [
        ({"seq": 4, "hash": "a" * 64, "prev_hash": "b" * 64}, "fork", 4, 4),  # the next seq, another past
        ({"seq": 2, "hash": "a" * 64, "prev_hash": "b" * 64}, "behind", 2, 3),  # a replay with a new id
        ({"seq": 1, "hash": "a" * 64, "prev_hash": GENESIS}, "restart", 1, 1),  # a new spool
        ({"seq": "4", "hash": "a" * 64, "prev_hash": "b" * 64}, "unreadable", None, 3),
        ({"seq": 4, "hash": "A" * 64, "prev_hash": "b" * 64}, "unreadable", None, 3),
    ],
)
def test_each_kind_of_break_is_counted_and_kept(
    store: Store, link: dict[str, Any], kind: str, seq: int | None, head: int
) -> None:
    _send(store, _events(_chain(3), "a"))
    event = decision_event("z-1", at="2023-03-16T10:00:00Z")
    event["pyagent"] = link
    _send(store, [event])
    assert _last_break(store) == _broken(kind, "z-1", seq, 3)
    chain = _chain_of(store)
    assert chain is not None and (chain["breaks"], chain["seq"]) == (1, head)


def test_events_without_chain_fields_are_not_checked(store: Store) -> None:
    _send(store, [decision_event("opa-1")])  # an OPA's event
    assert _chain_of(store) is None


def test_the_agents_copy_of_a_decision_its_opa_logged_first_is_checked(store: Store) -> None:
    links = _chain(2)
    first = _events(links[:1], "a")
    _send(store, first)
    opa_copy = _events(links[1:], "a")
    del opa_copy[0]["pyagent"]
    _send(store, opa_copy)
    _send(store, _events(links[1:], "a"))  # the agent's copy: the same id, with the chain
    assert _chain_of(store) == {"seq": 2, "hash": links[1]["hash"], "breaks": 0, "last_break": None}


def test_judge_reads_the_first_record_as_the_head() -> None:
    assert judge(Head(), Link(57, "a" * 64, "b" * 64)) is None
    assert link_of('{"seq": true, "hash": "a", "prev_hash": "b"}') is None


def test_the_api_and_the_dashboard_say_a_break(fleet: Fleet) -> None:
    assert fleet.post_logs(_events(_chain(3), "a")).status_code == 200
    forged = _events([{"seq": 103, "hash": "f" * 64, "prev_hash": "e" * 64}], "x", hour=10)
    assert fleet.post_logs(forged).json() == {"stored": 1, "duplicates": 0, "ignored": 0}
    reader = fleet.auth("reader")
    chain = fleet.client.get(f"/api/v1/devices/{DEVICE}", headers=reader).json()["chain"]
    assert (chain["seq"], chain["breaks"], chain["last_break"]["kind"]) == (103, 1, "gap")
    page = fleet.client.get(f"/devices/{DEVICE}", headers=reader).text
    said = html.escape(f"1 break; the last (gap, record 103): {WHAT['gap']}")
    assert f"<dt>Decision log chain</dt><dd>{said}</dd>" in page
