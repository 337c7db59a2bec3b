"""Each device's decision-log chain, checked by the server as records arrive (``store.chains``). A
local-attacker audit posted a compliant event 100 records ahead with made-up hashes, and the server
stored it as the device's verdict without a word: now the device's next real record, which cannot fill
the hole the forgery left, is a break. Records an agent never sends as events (runs that decided
nothing, events set aside) are holes, counted as missing, and filled when they come late; a new spool,
a replay and a rewritten log are breaks. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import html
import uuid
from typing import Any

import pytest

from pyagent.server.events import parse_batch
from pyagent.server.store import Store
from pyagent.server.store.chains import GENESIS, WHAT, link_of
from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet

DEVICE = "fr-brussels-0042"


def _chain(length: int, spool: str = "first") -> list[dict[str, Any]]:
    """Records 1..``length`` of one spool, each linked to the one before."""
    links, prev = [], GENESIS
    for seq in range(1, length + 1):
        digest = hashlib.sha256(f"{spool}:{seq}:{prev}".encode()).hexdigest()
        links.append({"seq": seq, "hash": digest, "prev_hash": prev})
        prev = digest
    return links


def _event(link: dict[str, Any], minute: int, *, decision_id: str | None = None) -> dict[str, Any]:
    """The record as an event, decided ``minute`` minutes after 09:00 (records are decided in seq
    order); its id a UUID, as the agent's are (they sort apart from the seqs)."""
    event = decision_event(
        decision_id or str(uuid.uuid4()), at=f"2023-03-16T{9 + minute // 60:02d}:{minute % 60:02d}:00Z"
    )
    event["pyagent"] = link
    return event


def _send(store: Store, events: list[dict[str, Any]]) -> None:
    batch = parse_batch(events)
    store.ingest(batch.rows, batch.reports)


def _chain_of(store: Store) -> dict[str, Any]:
    state = store.device(DEVICE)
    assert state is not None and state.chain is not None
    shown = ("seq", "missing", "breaks", "unconfirmed")
    return {k: state.chain[k] for k in shown} | {"last": (state.chain["last_break"] or {}).get("kind")}


def test_an_intact_chain_and_a_batch_sent_again_make_no_break(store: Store) -> None:
    links = _chain(5)
    first = [_event(link, n) for n, link in enumerate(links[:3])]
    _send(store, first)
    _send(store, first)  # (stored, its answer lost: sent again)
    _send(store, [_event(link, 3 + n) for n, link in enumerate(links[3:])])
    state = store.device(DEVICE)
    assert state is not None and state.chain == {
        "seq": 5, "hash": links[4]["hash"], "missing": 0, "unconfirmed": 0, "unconfirmed_ids": [],
        "breaks": 0, "last_break": None,
    }  # fmt: skip


def test_a_batch_is_read_in_seq_order_whatever_its_ids(store: Store) -> None:
    links = _chain(6)
    events = [_event(link, n) for n, link in enumerate(links)]
    _send(store, list(reversed(events)))
    assert _chain_of(store) == {"seq": 6, "missing": 0, "breaks": 0, "unconfirmed": 0, "last": None}


def test_records_not_sent_are_missing_and_filled_when_they_come_late(store: Store) -> None:
    """Seq 2 (a run that decided nothing) never comes; 4 is set aside and comes after 5 and 6."""
    links = _chain(6)
    _send(store, [_event(links[0], 0), _event(links[2], 2)])
    assert _chain_of(store) == {"seq": 3, "missing": 1, "breaks": 0, "unconfirmed": 0, "last": None}
    _send(store, [_event(links[4], 4), _event(links[5], 5)])
    assert _chain_of(store) == {"seq": 6, "missing": 2, "breaks": 0, "unconfirmed": 0, "last": None}
    _send(store, [_event(links[3], 3)])
    assert _chain_of(store) == {"seq": 6, "missing": 1, "breaks": 0, "unconfirmed": 0, "last": None}


def test_a_record_forged_ahead_of_the_log_is_a_break_at_the_next_real_record(store: Store) -> None:
    links = _chain(5)
    _send(store, [_event(link, n) for n, link in enumerate(links[:3])])
    forged = {"seq": 103, "hash": "f" * 64, "prev_hash": "e" * 64}
    _send(store, [_event(forged, 30, decision_id="forged")])
    assert _chain_of(store) == {"seq": 103, "missing": 99, "breaks": 0, "unconfirmed": 0, "last": None}
    _send(store, [_event(links[3], 31), _event(links[4], 32)])  # decided after it: fills no hole
    assert _chain_of(store) == {"seq": 5, "missing": 99, "breaks": 1, "unconfirmed": 0, "last": "behind"}


def test_a_new_spool_is_a_restart_and_one_whose_first_record_was_not_sent_is_behind(store: Store) -> None:
    _send(store, [_event(link, n) for n, link in enumerate(_chain(50))])
    second = _chain(40, "second")
    _send(store, [_event(link, 60 + n) for n, link in enumerate(second[:4])])
    assert _chain_of(store) == {"seq": 4, "missing": 0, "breaks": 1, "unconfirmed": 0, "last": "restart"}
    _send(store, [_event(link, 70 + n) for n, link in enumerate(second[4:])])
    assert _chain_of(store) == {"seq": 40, "missing": 0, "breaks": 1, "unconfirmed": 0, "last": "restart"}
    third = _chain(5, "third")[1:]  # its seq 1 decided nothing: never sent
    _send(store, [_event(link, 120 + n) for n, link in enumerate(third)])
    assert _chain_of(store) == {"seq": 5, "missing": 0, "breaks": 2, "unconfirmed": 0, "last": "behind"}


@pytest.mark.parametrize(
    ("link", "kind", "seq"),
    [
        ({"seq": 4, "hash": "a" * 64, "prev_hash": "b" * 64}, "fork", 4),  # the next seq, another past
        ({"seq": 2, "hash": "a" * 64, "prev_hash": "b" * 64}, "behind", 2),  # a replay with a new id
        ({"seq": "4", "hash": "a" * 64, "prev_hash": "b" * 64}, "unreadable", 3),
        ({"seq": 4, "hash": "A" * 64, "prev_hash": "b" * 64}, "unreadable", 3),
    ],
)
def test_each_kind_of_break_is_counted_and_kept(
    store: Store, link: dict[str, Any], kind: str, seq: int
) -> None:
    _send(store, [_event(link_, n) for n, link_ in enumerate(_chain(3))])
    _send(store, [_event(link, 10, decision_id="z-1")])
    state = store.device(DEVICE)
    assert state is not None and state.chain is not None
    last = {k: v for k, v in state.chain["last_break"].items() if k != "detected_at"}
    assert last == {
        "kind": kind,
        "what": WHAT[kind],
        "decision_id": "z-1",
        "seq": link["seq"] if kind != "unreadable" else None,
    }
    assert (state.chain["breaks"], state.chain["seq"]) == (1, seq)


def test_two_breaks_in_one_batch_count_two_and_the_later_is_kept(store: Store) -> None:
    links = _chain(3)
    _send(store, [_event(link, n) for n, link in enumerate(links)])
    replays = [
        {"seq": 2, "hash": "a" * 64, "prev_hash": "b" * 64},
        {"seq": 3, "hash": "c" * 64, "prev_hash": "d" * 64},
    ]
    _send(store, [_event(link, 10 + n) for n, link in enumerate(replays)])
    assert _chain_of(store) == {"seq": 3, "missing": 0, "breaks": 2, "unconfirmed": 0, "last": "fork"}


def test_events_without_chain_fields_are_not_checked_and_the_agents_copy_is(store: Store) -> None:
    _send(store, [decision_event("opa-1")])  # an OPA's event
    assert store.device(DEVICE) is not None and store.device(DEVICE).chain is None  # type: ignore[union-attr]
    links = _chain(2)
    _send(store, [_event(links[0], 0)])
    opa_copy = _event(links[1], 1, decision_id="shared-id")
    del opa_copy["pyagent"]
    _send(store, [opa_copy])
    _send(store, [_event(links[1], 1, decision_id="shared-id")])  # the agent's copy: same id, with the chain
    assert _chain_of(store) == {"seq": 2, "missing": 0, "breaks": 0, "unconfirmed": 0, "last": None}


def test_a_decision_without_chain_fields_stays_unconfirmed_until_a_chained_copy_comes(store: Store) -> None:
    """An event forged without chain fields with the device's token (a chain-checking audit's) was
    the device's state with no word; an OPA sidecar's copy (sent with the device's token too) is
    confirmed by the agent's; an OPA gateway's decisions about the device, sent as itself, are no
    part of the device's log."""
    links = _chain(4)
    _send(store, [_event(links[0], 0)])
    forged = decision_event("forged-1", at="2023-03-16T09:01:30Z", allow=True, sender=DEVICE)
    sidecar = decision_event("opa-copy", at="2023-03-16T09:02:00Z", sender=DEVICE)
    gateway = decision_event("gateway-1", at="2023-03-16T09:02:30Z", sender="gateway-opa")
    _send(store, [forged, sidecar, gateway])
    assert _chain_of(store) == {"seq": 1, "missing": 0, "breaks": 0, "unconfirmed": 2, "last": None}
    _send(store, [_event(links[1], 2, decision_id="opa-copy"), _event(links[2], 3), _event(links[3], 4)])
    state = store.device(DEVICE)
    assert state is not None and state.chain is not None
    assert (state.chain["unconfirmed"], state.chain["unconfirmed_ids"], state.chain["breaks"]) == (
        1,
        ["forged-1"],
        0,
    )


def test_link_of_reads_only_a_seq_and_two_digests() -> None:
    assert link_of('{"seq": true, "hash": "a", "prev_hash": "b"}') is None
    assert link_of("[1]") is None


def test_the_api_and_the_dashboard_say_a_break(fleet: Fleet) -> None:
    links = _chain(4)
    assert fleet.post_logs([_event(link, n) for n, link in enumerate(links[:3])]).status_code == 200
    forged = {"seq": 103, "hash": "f" * 64, "prev_hash": "e" * 64}
    assert fleet.post_logs([_event(forged, 30)]).json() == {"stored": 1, "duplicates": 0, "ignored": 0}
    assert fleet.post_logs([_event(links[3], 31)]).json()["stored"] == 1
    reader = fleet.auth("reader")
    chain = fleet.client.get(f"/api/v1/devices/{DEVICE}", headers=reader).json()["chain"]
    assert (chain["seq"], chain["missing"], chain["breaks"], chain["last_break"]["kind"]) == (
        4,
        99,
        1,
        "behind",
    )
    page = fleet.client.get(f"/devices/{DEVICE}", headers=reader).text
    said = html.escape(f"1 break, 99 not received; the last (behind, record 4): {WHAT['behind']}")
    assert chain["unconfirmed"] == 0
    assert f"<dt>Decision log chain</dt><dd>{said}</dd>" in page


def test_a_batch_about_more_devices_than_a_statement_takes_is_stored(sqlite_store: Store) -> None:
    """1,200 devices, each sending as itself: their heads are read 1,000 at a time (SQLite bounds a
    statement's parameters; this batch takes two reads), the one with a chain counts its unconfirmed
    decision, and devices without a chain get none."""
    events = [
        decision_event(f"d-{n}", device_id=f"dev-{n:04d}", sender=f"dev-{n:04d}", at="2023-03-16T09:30:00Z")
        for n in range(1200)
    ]
    _send(sqlite_store, events[:1])
    first = _event(_chain(1)[0], 0, decision_id="c-1")
    first["input"]["report"]["device"]["id"] = "dev-0007"
    _send(sqlite_store, [first])
    _send(sqlite_store, events[1:])
    chained = sqlite_store.device("dev-0007")
    assert chained is not None and chained.chain is not None and chained.chain["unconfirmed"] == 1
    unchained = sqlite_store.device("dev-1199")
    assert unchained is not None and unchained.chain is None
