"""The store on SQLite and on a real PostgreSQL: the same behaviour, exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert

from pyagent.server.events import parse_batch
from pyagent.server.instants import parse_instant
from pyagent.server.store import Store, StoreConflict
from pyagent.server.store.base import BundleFile, Grant, NewRevision, Publication, TokenInfo
from pyagent.server.store.migrate import head
from pyagent.server.store.schema import bundle_revisions, metadata
from pyagent.server.store.sql import SqlStore
from tests.server.conftest import decision_event
from tests.server.migrations import store_at


def _ingest(store: Store, *events: dict[str, object]) -> tuple[int, int]:
    batch = parse_batch(list(events))
    result = store.ingest(batch.rows, batch.reports)
    return result.stored, result.duplicates


def _revision(
    name: str,
    revision: str,
    serial: int | None = None,
    targets: tuple[str, ...] = ("rego",),
    *,
    verified: bool = False,
    content: bytes | None = None,
) -> NewRevision:
    """``verified``: by the server's key (else a serial is read unverified); ``content``: other bytes."""
    body = {t: content or f"{revision}/{t}".encode() for t in targets}
    files = [BundleFile(t, f'"{revision}-{t}{(content or b"").hex()}"', body[t]) for t in targets]
    return NewRevision(name, revision, serial, verified, "test", files)


def test_migrations_create_exactly_the_schema(store: Store) -> None:
    assert isinstance(store, SqlStore)
    assert store.migrate() == []  # already at head: nothing applied twice
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == head()
        # SQLite's history index orders decision ids descending (migration 0005), which alembic cannot compare
        differences = compare_metadata(context, metadata)
        if store.dialect == "sqlite":
            differences = [d for d in differences if "ix_decisions_latest" not in str(d)]
        assert differences == []
        if store.dialect == "postgresql":  # storage parameters, which alembic does not compare either
            options = conn.exec_driver_sql("SELECT reloptions FROM pg_class WHERE relname = 'devices'")
            assert options.scalar() == ["autovacuum_vacuum_scale_factor=0.01"]


def test_migration_0007_claims_the_ids_of_the_history_already_stored(db_url: str) -> None:
    """A history stored before ``decision_ids`` existed (two rows of one id at two instants, as the
    old key allowed): each id claimed once, at its earliest instant, so a re-send is a duplicate."""
    from sqlalchemy import insert

    from pyagent.server.store.schema import decisions, tokens

    before, _ = store_at(db_url, "0006", [datetime(2023, 3, day, tzinfo=UTC) for day in (16, 17)])
    old_rows = [
        {"decision_id": decision_id, "decided_at": datetime(2023, 3, day, tzinfo=UTC), "device_id": "dev",
         "sender": "opa", "path": "pyagent/decision", "received_at": datetime(2023, 3, 18, tzinfo=UTC)}
        for decision_id, day in (("d-1", 17), ("d-1", 16), ("d-2", 16))
    ]  # fmt: skip
    with before.engine.begin() as conn:
        conn.execute(insert(decisions), old_rows)
    with before.engine.begin() as conn:  # a token made before tokens could be bound to a device
        conn.execute(insert(tokens), [{"name": "fleet", "role": "agent", "token_hash": "a" * 64,
                                       "created_at": datetime(2023, 3, 1, tzinfo=UTC)}])  # fmt: skip
    assert before.migrate() == ["0007", "0008", "0009", "0010", "0011", "0012", "0013"]
    assert before.grant_for("a" * 64) == Grant("agent", None)  # stays unbound: it reports for any device
    assert _decision_ids(before) == {("d-1", "2023-03-16T00:00:00Z"), ("d-2", "2023-03-16T00:00:00Z")}
    assert _ingest(before, decision_event("d-1", at="2023-03-20T00:00:00Z")) == (0, 1)
    before.close()


def test_a_downgrade_below_0009_refuses_while_a_token_is_bound(db_url: str) -> None:
    """Dropping the column would make a phone's token one for any device."""
    from alembic import command

    from pyagent.server.store import open_store
    from pyagent.server.store.migrate import alembic_config

    store = open_store(db_url)
    assert isinstance(store, SqlStore)
    store.add_token("phone-0042", "agent", "e" * 64, "fr-brussels-0042")
    config = alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        with pytest.raises(RuntimeError, match=r"^1 token\(s\) are bound to a device; revoke them before"):
            command.downgrade(config, "0008")
    assert store.grant_for("e" * 64) == Grant("agent", "fr-brussels-0042")  # nothing changed
    assert store.revoke_token("phone-0042") is True
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
    assert store.migrate() == ["0009", "0010", "0011", "0012", "0013"]
    store.close()


def test_tokens_are_stored_hashed_and_revocable(store: Store) -> None:
    store.add_token("fleet", "agent", "a" * 64)
    store.add_token("security", "reader", "b" * 64)
    store.add_token("phone-0042", "agent", "e" * 64, "fr-brussels-0042")
    listed = store.list_tokens()
    assert [(t.name, t.role, t.device) for t in listed] == [
        ("fleet", "agent", None), ("phone-0042", "agent", "fr-brussels-0042"), ("security", "reader", None)
    ]  # fmt: skip
    assert all(isinstance(t, TokenInfo) and t.created_at.tzinfo is not None for t in listed)
    assert store.grant_for("a" * 64) == Grant("agent", None)
    assert store.grant_for("e" * 64) == Grant("agent", "fr-brussels-0042")
    assert store.grant_for("c" * 64) is None
    with pytest.raises(StoreConflict, match="token 'fleet' exists"):
        store.add_token("fleet", "admin", "d" * 64)
    assert store.revoke_token("fleet") is True
    assert store.revoke_token("fleet") is False
    assert store.grant_for("a" * 64) is None


def test_bundle_heads_follow_publishes_per_target(store: Store) -> None:
    assert store.bundle_head("pyagent", "rego") is None
    assert store.bundles_version() == (0, 0)
    first = store.publish(_revision("pyagent", "r1", targets=("rego", "wasm"))).revision_id
    second = store.publish(_revision("pyagent", "r2", targets=("rego",))).revision_id
    rego = store.bundle_head("pyagent", "rego")
    wasm = store.bundle_head("pyagent", "wasm")
    assert rego is not None and (rego.revision_id, rego.revision, rego.etag) == (second, "r2", '"r2-rego"')
    assert wasm is not None and (wasm.revision_id, wasm.revision, wasm.size) == (first, "r1", len(b"r1/wasm"))
    assert store.bundle_content(second, "rego") == b"r2/rego"
    assert store.bundle_names() == {"pyagent"}
    assert store.bundles_version() == (second, 3)


def test_a_publish_of_the_current_revision_s_missing_build_completes_it(store: Store) -> None:
    """A rego-only publish of r2, then r2's wasm build: /wasm serves r2 too (it stayed on r1, and
    the wasm build of r2 was refused as not newer, so agents never got r2)."""
    store.publish(_revision("pyagent", "r1", serial=1, targets=("rego", "wasm")))
    second = store.publish(_revision("pyagent", "r2", serial=2, targets=("rego",))).revision_id
    assert store.publish(_revision("pyagent", "r2", serial=2, targets=("wasm",))) == Publication(second)
    wasm = store.bundle_head("pyagent", "wasm")
    assert wasm is not None and (wasm.revision_id, wasm.revision, wasm.serial) == (second, "r2", 2)
    assert store.bundles_version() == (second, 4)  # (the long polls' wake-up: the revision id stays)
    again = store.publish(_revision("pyagent", "r2", serial=2, targets=("wasm",)))  # a retry: no change
    assert (again, store.bundles_version()) == (Publication(second, stored=False), (second, 4))
    with pytest.raises(StoreConflict, match="serial 2 is not newer than the current serial 2"):
        store.publish(_revision("pyagent", "r2", serial=2, targets=("wasm",), content=b"rebuilt"))
    with pytest.raises(StoreConflict, match="serial 2 is not newer"):
        store.publish(_revision("pyagent", "r2b", serial=2, targets=("wasm",)))  # another revision


def test_a_revision_without_serial_does_not_reopen_older_serials(store: Store) -> None:
    """Serial 50, then an unsigned revision without a serial: serial 5 is still older than 50."""
    store.publish(_revision("pyagent", "r50", serial=50))
    store.publish(_revision("pyagent", "u1"))
    with pytest.raises(StoreConflict) as older:
        store.publish(_revision("pyagent", "r5", serial=5))
    said = str(older.value)
    assert said == "bundle pyagent: serial 5 is not newer than the published serial 50 (revision r50)"
    with pytest.raises(StoreConflict, match="serial 50 is not newer than the published serial 50 "):
        store.publish(_revision("pyagent", "r50b", serial=50))
    newer = store.publish(_revision("pyagent", "r51", serial=51)).revision_id
    head = store.bundle_head("pyagent", "rego")
    assert head is not None and (head.revision_id, head.revision, head.serial) == (newer, "r51", 51)


def test_a_publish_that_verifies_nothing_cannot_follow_a_verified_revision(store: Store) -> None:
    store.publish(_revision("pyagent", "r1"))
    store.publish(_revision("pyagent", "r2", serial=2, verified=True))  # a key may come later
    refused = (
        "bundle pyagent: revision 'r2' was verified by the server's key, and this publish verifies none; "
        "publish with the server's config, whose [server.verification] names the key "
        "(pyagent server publish --config FILE)"
    )
    for unverified in (_revision("pyagent", "u3"), _revision("pyagent", "r3", serial=3)):
        with pytest.raises(StoreConflict) as err:
            store.publish(unverified)
        assert str(err.value) == refused
    with pytest.raises(StoreConflict) as err:  # nor may it complete the verified revision's builds
        store.publish(_revision("pyagent", "r2", serial=2, targets=("wasm",)))
    assert str(err.value) == refused
    store.publish(_revision("pyagent", "r2", serial=2, targets=("wasm",), verified=True))
    store.publish(_revision("pyagent", "r3", serial=3, verified=True))
    heads = [store.bundle_head("pyagent", target) for target in ("wasm", "rego")]
    assert [(h.revision, h.serial) if h else None for h in heads] == [("r2", 2), ("r3", 3)]
    assert isinstance(store, SqlStore)  # an unverified revision stored after it before this rule:
    with store.engine.begin() as conn:  # the verified one before it still rules
        old = {"published_at": datetime.now(UTC), "published_by": "old", "serial": None, "signed": False}
        conn.execute(insert(bundle_revisions).values(name="pyagent", revision="u4", **old))
    with pytest.raises(StoreConflict, match=r"^bundle pyagent: revision 'r3' was verified"):
        store.publish(_revision("pyagent", "u5"))


def test_publish_refuses_what_is_not_newer(store: Store) -> None:
    store.publish(_revision("pyagent", "r1", serial=10))
    with pytest.raises(StoreConflict, match="serial 10 is not newer than the current serial 10"):
        store.publish(_revision("pyagent", "r1b", serial=10))
    with pytest.raises(StoreConflict, match="serial 9 is not newer"):
        store.publish(_revision("pyagent", "r0", serial=9))
    store.publish(_revision("pyagent", "r2", serial=11))
    store.publish(_revision("unsigned", "u1"))
    with pytest.raises(StoreConflict, match="revision 'u1' is already the current one"):
        store.publish(_revision("unsigned", "u1", content=b"rebuilt"))  # (the same bytes: a retry)
    store.publish(_revision("unsigned", "u2"))
    with pytest.raises(StoreConflict) as rollback:  # without serials, an earlier revision is older
        store.publish(_revision("unsigned", "u1"))
    assert str(rollback.value) == (
        "bundle unsigned: revision 'u1' was published before; it is not newer than the current revision 'u2'"
    )
    store.publish(_revision("unsigned", "u3", serial=1))  # a first serial: still a revision never seen
    with pytest.raises(StoreConflict, match="revision 'u2' was published before"):
        store.publish(_revision("unsigned", "u2"))
    head = store.bundle_head("pyagent", "rego")
    assert head is not None and (head.revision, head.serial) == ("r2", 11)


def test_an_event_is_stored_once(store: Store) -> None:
    event = decision_event("d-1")
    assert _ingest(store, event) == (1, 0)
    assert _ingest(store, event, event) == (0, 2)
    state = store.device("fr-brussels-0042", history=10)
    assert state is not None
    assert [h["decision_id"] for h in state.history] == ["d-1"]


def test_current_state_is_the_newest_decision_by_its_own_instant(store: Store) -> None:
    assert _ingest(store, decision_event("new", at="2023-03-17T08:00:00Z", allow=True)) == (1, 0)
    # uploaded later (after a partition), decided earlier: lands at its own instant, state unchanged
    assert _ingest(store, decision_event("late", at="2023-03-16T08:00:00Z")) == (1, 0)
    state = store.device("fr-brussels-0042", history=5)
    assert state is not None
    assert (state.decision_id, state.allow, state.decided_at) == (
        "new",
        True,
        datetime(2023, 3, 17, 8, tzinfo=UTC),
    )
    assert [(h["decision_id"], h["decided_at"]) for h in state.history] == [
        ("new", datetime(2023, 3, 17, 8, tzinfo=UTC)),
        ("late", datetime(2023, 3, 16, 8, tzinfo=UTC)),
    ]


def test_a_batch_keeps_the_newest_per_device_and_one_report_per_digest(store: Store) -> None:
    events = [decision_event(f"d-{i}", at=f"2023-03-1{i}T09:00:00Z") for i in range(1, 6)]
    events.append(decision_event("other", device_id="be-0001", allow=True))
    batch = parse_batch(events)
    assert len(batch.reports) == 2  # five decisions on one inventory, one on another
    assert store.ingest(batch.rows, batch.reports).stored == 6
    state = store.device("fr-brussels-0042")
    assert state is not None and state.decision_id == "d-5"
    other = store.device("be-0001")
    assert other is not None and other.allow is True
    assert state.result["violations"] == [{"rule": "eu-commission/tiktok", "ban": "tiktok"}]
    digest = batch.rows[0].report_digest
    assert digest is not None
    inventory = {k: v for k, v in events[0]["input"]["report"].items() if k != "collected_at"}  # type: ignore[index]
    assert store.report(digest) == inventory  # the run's collected_at stays on the history row


def test_a_report_is_stored_once_per_inventory(store: Store) -> None:
    first = decision_event("d-1", at="2023-03-16T09:00:00Z")
    second = decision_event("d-2", at="2023-03-16T10:00:00Z")
    second["input"]["report"]["collected_at"] = "2023-03-16T10:00:00Z"  # the next run, same apps
    batch = parse_batch([first, second])
    assert len(batch.reports) == 1 and batch.rows[0].report_digest == batch.rows[1].report_digest
    assert [r.collected_at for r in batch.rows] == [
        first["input"]["report"]["collected_at"],
        "2023-03-16T10:00:00Z",
    ]
    assert store.ingest(batch.rows, batch.reports).stored == 2


def test_status_is_kept_per_sender(store: Store) -> None:
    from pyagent.server.status import status_row

    _ingest(store, decision_event("d-1", sender="fr-brussels-0042"))
    message = {
        "labels": {"id": "fr-brussels-0042", "version": "0.1.0"},
        "bundles": {
            "pyagent": {
                "name": "pyagent",
                "active_revision": "r1",
                "code": "bundle_error",
                "message": "signature verification failed",
            }
        },
    }
    store.record_status(status_row(message))
    state = store.device("fr-brussels-0042")
    assert state is not None and state.status is not None
    assert state.status["bundles"]["pyagent"]["active_revision"] == "r1"
    assert state.status["errors"] == [
        {"bundle": "pyagent", "code": "bundle_error", "message": "signature verification failed"}
    ]


def test_retention_drops_old_history_only(store: Store) -> None:
    _ingest(
        store,
        decision_event("old", at="2023-01-01T10:00:00Z"),
        decision_event("new", at="2023-03-16T10:00:00Z"),
    )
    assert store.prune(parse_instant("2023-02-01T00:00:00Z")) == 1
    state = store.device("fr-brussels-0042", history=10)
    assert state is not None
    assert [h["decision_id"] for h in state.history] == ["new"]
    # the pruned event's id went with it (an upload of it now is history again); the kept one's stays
    assert _ingest(store, decision_event("old", at="2023-03-01T10:00:00Z")) == (1, 0)
    assert _ingest(store, decision_event("new", at="2023-03-20T10:00:00Z")) == (0, 1)
    assert _decision_ids(store) == {("new", "2023-03-16T10:00:00Z"), ("old", "2023-03-01T10:00:00Z")}


def test_retention_keeps_a_silent_device_s_last_decision_so_the_past_still_counts_it(store: Store) -> None:
    """A device silent since before the cutoff: its older decisions go, its last stays, so that the
    picture at an instant after the cutoff counts it (stale) as the current state does."""
    _ingest(
        store,
        decision_event("silent-1", at="2023-01-01T10:00:00Z", device_id="silent"),
        decision_event("silent-2", at="2023-01-02T10:00:00Z", device_id="silent"),
        decision_event("active-1", at="2023-01-01T10:00:00Z", device_id="active"),
        decision_event("active-2", at="2023-03-16T10:00:00Z", device_id="active", allow=True),
    )
    store.prune(parse_instant("2023-02-01T00:00:00Z"))
    kept = {device: [h["decision_id"] for h in store.device(device, history=10).history]  # type: ignore[union-attr]
            for device in ("silent", "active")}  # fmt: skip
    assert kept == {"silent": ["silent-2"], "active": ["active-2"]}
    assert _decision_ids(store) == {
        ("silent-2", "2023-01-02T10:00:00Z"),
        ("active-2", "2023-03-16T10:00:00Z"),
    }
    now = parse_instant("2023-03-16T12:00:00Z")
    views = [
        store.summary(now=now, at=at, organization=None, stale_after=timedelta(days=1)) for at in (None, now)
    ]
    counts = [(v["devices"], v["compliant"], v["non_compliant"], v["stale"]) for v in views]
    assert counts == [(2, 1, 1, 1), (2, 1, 1, 1)]
    [step] = store.history([now], organization=None, stale_after=timedelta(days=1))
    assert (step["devices"], step["compliant"], step["stale"]) == (2, 1, 1)
    assert _days_held(store) == {"2023-01-02", "2023-03-16"}  # (PostgreSQL: partitions; SQLite: rows)
    # back: its last decision is a new one, and the kept one goes at the next pruning, its day with it
    _ingest(store, decision_event("silent-3", at="2023-03-16T11:00:00Z", device_id="silent"))
    store.prune(parse_instant("2023-02-01T00:00:00Z"))
    assert _days_held(store) == {"2023-03-16"}
    assert _decision_ids(store) == {
        ("silent-3", "2023-03-16T11:00:00Z"),
        ("active-2", "2023-03-16T10:00:00Z"),
    }


def _days_held(store: Store) -> set[str]:
    """The days of history kept: on PostgreSQL, those of its partitions (each day's partition)."""
    from pyagent.server.store.partitions import existing

    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            return {day.isoformat() for day in existing(conn).values()}
        instants = conn.exec_driver_sql("SELECT decided_at FROM decisions").scalars().all()
    return {str(instant)[:10] for instant in instants}


def test_a_decision_id_is_stored_once_whatever_its_instant(store: Store) -> None:
    assert _ingest(store, decision_event("d-1", at="2023-03-16T09:30:00Z")) == (1, 0)
    # re-sent with another input.at (and another result): a duplicate, in another batch or the same
    assert _ingest(store, decision_event("d-1", at="2023-03-17T09:30:00Z", allow=True)) == (0, 1)
    assert _ingest(
        store,
        decision_event("d-2", at="2023-03-16T10:00:00Z"),
        decision_event("d-2", at="2023-03-18T10:00:00Z", allow=True),
        decision_event("d-1", at="2023-03-19T10:00:00Z", allow=True),
    ) == (1, 2)
    state = store.device("fr-brussels-0042", history=10)
    assert state is not None and (state.decision_id, state.allow) == ("d-2", False)
    assert [(h["decision_id"], h["decided_at"]) for h in state.history] == [
        ("d-2", datetime(2023, 3, 16, 10, tzinfo=UTC)),
        ("d-1", datetime(2023, 3, 16, 9, 30, tzinfo=UTC)),
    ]
    assert _decision_ids(store) == {("d-1", "2023-03-16T09:30:00Z"), ("d-2", "2023-03-16T10:00:00Z")}


def test_batches_racing_with_one_id_store_it_once(store: Store) -> None:
    """Four batches committed at once, each with the same id at its own instant (and one id of its
    own): the shared id is stored by exactly one of them."""
    import threading

    batches = [
        parse_batch([decision_event("shared", at=f"2023-03-1{i}T10:00:00Z"), decision_event(f"own-{i}")])
        for i in range(4)
    ]
    start = threading.Barrier(len(batches))
    results: list[tuple[int, int]] = []

    def send(rows: Any, reports: Any) -> None:
        start.wait()
        done = store.ingest(rows, reports)
        results.append((done.stored, done.duplicates))

    threads = [threading.Thread(target=send, args=(b.rows, b.reports)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not [thread for thread in threads if thread.is_alive()]
    assert sorted(results) == [(1, 1), (1, 1), (1, 1), (2, 0)]
    assert [i for i, _ in sorted(_decision_ids(store))] == ["own-0", "own-1", "own-2", "own-3", "shared"]


def _decision_ids(store: Store) -> set[tuple[str, str]]:
    from sqlalchemy import select

    from pyagent.server.store.device_state import utc
    from pyagent.server.store.schema import decision_ids

    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        rows = conn.execute(select(decision_ids.c.decision_id, decision_ids.c.decided_at)).all()
    return {(i, utc(at).strftime("%Y-%m-%dT%H:%M:%SZ")) for i, at in rows}


def test_equal_instants_go_to_the_greater_decision_id_now_and_at(store: Store) -> None:
    from datetime import timedelta

    at = "2023-03-16T10:00:00Z"
    _ingest(store, decision_event("b-second", at=at, allow=True), decision_event("a-first", at=at))
    state = store.device("fr-brussels-0042")
    assert state is not None and (state.decision_id, state.allow) == ("b-second", True)
    instant = parse_instant(at)
    for when in (None, instant):
        summary = store.summary(now=instant, at=when, organization=None, stale_after=timedelta(days=1))
        assert (summary["devices"], summary["compliant"]) == (1, 1), when


def test_a_batch_larger_than_one_id_lookup_counts_each_stored_id_once(store: Store) -> None:
    """More ids than one statement looks up on SQLite (1,000): those stored before, on either side of
    the cut, are duplicates; the others are stored."""
    events = [
        decision_event(f"id-{n:04d}", at=f"2023-03-16T10:{n // 60 % 60:02d}:{n % 60:02d}Z")
        for n in range(1201)
    ]
    assert _ingest(store, events[999], events[1000], events[5]) == (3, 0)
    assert _ingest(store, *events) == (1198, 3)
    assert len(_decision_ids(store)) == 1201
