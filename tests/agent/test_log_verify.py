"""The decision log is tamper-evident: edits, deletions, insertions and reorderings are found and named."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyagent.agent.chain import GENESIS, ChainKey, canonical_json
from pyagent.agent.store import Spool
from pyagent.agent.verify import Problem, Verification, verify_spool
from tests.agent.conftest import fill, run_pyagent, synthetic

KEY = ChainKey(b"k" * 40)


def verify(path: Path, key: ChainKey | None = None) -> Verification:
    with Spool.open(path, key=key or ChainKey(), readonly=True) as spool:
        return verify_spool(spool, key or ChainKey())


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.isolation_level = None
    return conn


def row(conn: sqlite3.Connection, seq: int) -> tuple[str, str, str, dict[str, Any]]:
    rid, prev, digest, body = conn.execute(
        "SELECT id, prev_hash, hash, body FROM records WHERE seq = ?", (seq,)
    ).fetchone()
    return rid, prev, digest, json.loads(body)


def set_body(conn: sqlite3.Connection, seq: int, body: dict[str, Any], digest: str | None = None) -> None:
    conn.execute("UPDATE records SET body = ? WHERE seq = ?", (canonical_json(body).decode(), seq))
    if digest is not None:
        conn.execute("UPDATE records SET hash = ? WHERE seq = ?", (digest, seq))


def only(problems: tuple[Problem, ...]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


@pytest.fixture
def log20(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "spool.sqlite"
    return path, fill(path, 20)


def test_an_intact_log_verifies(log20: tuple[Path, list[str]]) -> None:
    path, _ = log20
    result = verify(path)
    assert result.intact and result.records == 20 and result.head_seq == 20
    done = run_pyagent("log", "verify", "--db", str(path))
    assert done.returncode == 0, done.stderr
    said = rf"pyagent: log: {re.escape(str(path))}: intact: 20 records \(seq 1\.\.20\), sha256, "
    assert re.fullmatch(said + r"head [0-9a-f]{64}, 0 dropped before seq 1\n", done.stderr), done.stderr


def test_an_empty_log_verifies(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    fill(path, 0)
    result = verify(path)
    assert (result.intact, result.records, result.head_seq) == (True, 0, 0)


def test_an_edited_record_is_named(log20: tuple[Path, list[str]]) -> None:
    path, ids = log20
    with connect(path) as conn:
        _, _, _, body = row(conn, 7)
        set_body(conn, 7, {**body, "outcome": "compliant", "allow": True, "exit_code": 0})
    problem = only(verify(path).problems)
    assert (problem.kind, problem.seq, problem.record_id) == ("edited", 7, ids[6])
    done = run_pyagent("log", "verify", "--db", str(path))
    assert done.returncode == 1
    assert f"edited: record seq 7 (id {ids[6]}) was edited" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_edited_record_with_a_recomputed_hash_is_named(log20: tuple[Path, list[str]]) -> None:
    path, ids = log20
    with connect(path) as conn:
        _, _, _, body = row(conn, 7)
        body = {**body, "outcome": "compliant"}
        set_body(conn, 7, body, ChainKey().digest(body))
    problem = only(verify(path).problems)
    assert (problem.kind, problem.seq, problem.record_id) == ("edited", 7, ids[6])
    assert "edited or replaced" in problem.message


def test_a_body_that_is_not_json_is_an_edit(log20: tuple[Path, list[str]]) -> None:
    path, ids = log20
    with connect(path) as conn:
        conn.execute("UPDATE records SET body = '{not json' WHERE seq = 3")
    problem = only(verify(path).problems)
    assert (problem.kind, problem.seq, problem.record_id) == ("edited", 3, ids[2])


@pytest.mark.parametrize(
    ("deleted", "named"),
    [([7], "seq 7 missing"), ([7, 8, 9], "seq 7..9 missing"), ([1, 2], "seq 1..2 missing")],
)
def test_deleted_records_are_named(log20: tuple[Path, list[str]], deleted: list[int], named: str) -> None:
    path, _ = log20
    with connect(path) as conn:
        conn.executemany("DELETE FROM records WHERE seq = ?", [(s,) for s in deleted])
    problem = only(verify(path).problems)
    assert (problem.kind, problem.seq) == ("deleted", deleted[0])
    assert named in problem.message
    done = run_pyagent("log", "verify", "--db", str(path))
    assert done.returncode == 1 and named in done.stderr


def test_a_deleted_head_is_named(log20: tuple[Path, list[str]]) -> None:
    path, _ = log20
    with connect(path) as conn:
        conn.execute("DELETE FROM records WHERE seq IN (19, 20)")
    problem = only(verify(path).problems)
    assert (problem.kind, problem.seq) == ("deleted", 19)
    assert "seq 19..20 missing (deleted) at the end" in problem.message


def test_every_record_deleted_and_the_head_count_set_back_is_found(log20: tuple[Path, list[str]]) -> None:
    """An emptied log whose head count was set back to its anchor's read as intact (exit 0)."""
    path, _ = log20
    with connect(path) as conn:
        conn.execute("DELETE FROM records")
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'head_seq'")
    problem = only(verify(path).problems)
    assert (problem.kind, problem.seq, problem.message) == (
        "deleted", 1, "no record left, yet the recorded head is not the anchor: the records were deleted and "
        "the head's count set back",
    )  # fmt: skip


def test_an_inserted_record_is_named(log20: tuple[Path, list[str]]) -> None:
    """A forged record put between seq 7 and 8 (the later ones renumbered to make room)."""
    path, _ = log20
    forged_id = str(uuid.uuid4())
    with connect(path) as conn:
        for seq in range(20, 7, -1):
            conn.execute("UPDATE records SET seq = ? WHERE seq = ?", (seq + 1, seq))
        _, _, prev_digest, body = row(conn, 7)
        forged = {
            **synthetic(99),
            "v": 1,
            "seq": 8,
            "id": forged_id,
            "chain_id": body["chain_id"],
            "prev_hash": prev_digest,
            "anchor": body["anchor"],
            "dropped": 0,
            "dropped_unshipped": 0,
            "recorded_at": body["recorded_at"],
        }
        conn.execute(
            "INSERT INTO records (seq, id, prev_hash, hash, body) VALUES (8, ?, ?, ?, ?)",
            (forged_id, prev_digest, ChainKey().digest(forged), canonical_json(forged).decode()),
        )
    problem = verify(path).problems[0]
    assert (problem.kind, problem.seq, problem.record_id) == ("inserted", 8, forged_id)
    done = run_pyagent("log", "verify", "--db", str(path))
    assert done.returncode == 1 and f"inserted: record seq 8 (id {forged_id}) was inserted" in done.stderr


def test_a_record_appended_after_the_head_is_named(log20: tuple[Path, list[str]]) -> None:
    path, _ = log20
    with connect(path) as conn:
        _, _, prev_digest, body = row(conn, 20)
        forged = {**body, "seq": 21, "id": str(uuid.uuid4()), "prev_hash": prev_digest}
        conn.execute(
            "INSERT INTO records (seq, id, prev_hash, hash, body) VALUES (21, ?, ?, ?, ?)",
            (forged["id"], prev_digest, ChainKey().digest(forged), canonical_json(forged).decode()),
        )
    problem = only(verify(path).problems)
    assert (problem.kind, problem.seq, problem.record_id) == ("inserted", 21, forged["id"])


def test_reordered_records_are_named(log20: tuple[Path, list[str]]) -> None:
    path, ids = log20
    with connect(path) as conn:
        conn.execute("UPDATE records SET seq = -1 WHERE seq = 7")
        conn.execute("UPDATE records SET seq = 7 WHERE seq = 8")
        conn.execute("UPDATE records SET seq = 8 WHERE seq = -1")
    problems = verify(path).problems
    assert {(p.kind, p.seq, p.record_id) for p in problems} == {
        ("reordered", 7, ids[7]),
        ("reordered", 8, ids[6]),
    }
    done = run_pyagent("log", "verify", "--db", str(path))
    assert done.returncode == 1
    assert f"record seq 7 (id {ids[7]}) was written as seq 8: records were reordered" in done.stderr


def test_dropping_the_oldest_keeps_the_log_verifiable(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    fill(path, 23, max_records=5)
    result = verify(path)
    assert result.intact, result.problems
    assert (result.records, result.anchor_seq, result.head_seq, result.dropped) == (5, 18, 23, 18)


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        ({"anchor_seq": "17"}, [("anchor", 19), ("anchor", None)]),
        ({"anchor_hash": GENESIS}, [("anchor", 19), ("anchor", None)]),
        ({"dropped": "3"}, [("anchor", None)]),
    ],
)
def test_an_edited_anchor_or_dropped_counter_is_found(
    tmp_path: Path, edit: dict[str, str], found: list[tuple[str, int | None]]
) -> None:
    path = tmp_path / "spool.sqlite"
    fill(path, 23, max_records=5)
    with connect(path) as conn:
        conn.executemany("UPDATE meta SET value = ? WHERE key = ?", [(v, k) for k, v in edit.items()])
    problems = verify(path).problems
    assert [(p.kind, p.seq) for p in problems] == found, problems


def test_records_deleted_from_the_start_with_a_forged_anchor_are_found(tmp_path: Path) -> None:
    """An attacker deletes the oldest records and moves the anchor: the head record says otherwise."""
    path = tmp_path / "spool.sqlite"
    fill(path, 10, max_records=100)
    with connect(path) as conn:
        _, _, digest, _ = row(conn, 3)
        conn.execute("DELETE FROM records WHERE seq <= 3")
        conn.executemany(
            "UPDATE meta SET value = ? WHERE key = ?",
            [("3", "anchor_seq"), (digest, "anchor_hash"), ("3", "dropped")],
        )
    problem = only(verify(path).problems)
    said = (
        r"the anchor or dropped counters in meta \(seq 3, dropped 3, dropped unshipped 0\) differ from what "
        r"the head record "
    )
    assert problem.kind == "anchor"
    assert re.fullmatch(said + r"seq 10 \(id [^)]+\) says: edited", problem.message), problem.message


@pytest.mark.parametrize(
    ("edits", "kind", "message"),
    [
        ([("7", "dropped_unshipped")], "anchor",
         r"the anchor or dropped counters in meta \(seq 0, dropped 0, dropped unshipped 7\) differ from what "
         r"the head record seq 5 \(id [^)]+\) says: edited"),
        ([("forged", "chain_id")], "identity",
         r"record seq 1 \(id [^)]+\) is of chain '[0-9a-f-]{36}', but meta says 'forged': the log's identity "
         r"was edited"),
        ([("elsewhere", "origin")], "identity",
         r"record seq 1 \(id [^)]+\) says the log began at '[^']*', but meta says 'elsewhere': the log's "
         r"identity was edited"),
    ],
    ids=["dropped-unshipped", "chain-id", "origin"],
)  # fmt: skip
def test_the_log_s_identity_and_counters_edited_in_meta_are_found(
    tmp_path: Path, edits: list[tuple[str, str]], kind: str, message: str
) -> None:
    """They were reported intact, and the next record copied the forged values under a valid hash."""
    path = tmp_path / "spool.sqlite"
    fill(path, 5, max_records=100)
    with connect(path) as conn:
        conn.executemany("UPDATE meta SET value = ? WHERE key = ?", edits)
    problem = only(verify(path).problems)
    assert problem.kind == kind and re.fullmatch(message, problem.message), problem.message
    fill(path, 1, max_records=100)  # the agent writes on: still found
    assert not verify(path).intact


def rechain(path: Path, key: ChainKey, mutate: Callable[[int, dict[str, Any]], dict[str, Any]]) -> None:
    """What an attacker with write access does: rewrite every record and recompute the whole chain."""
    with connect(path) as conn:
        prev = GENESIS
        for (seq,) in conn.execute("SELECT seq FROM records ORDER BY seq").fetchall():
            _, _, _, body = row(conn, seq)
            body = {**mutate(seq, body), "prev_hash": prev}
            digest = key.digest(body)
            conn.execute(
                "UPDATE records SET body = ?, hash = ?, prev_hash = ? WHERE seq = ?",
                (canonical_json(body).decode(), digest, prev, seq),
            )
            prev = digest
        conn.execute("UPDATE meta SET value = ? WHERE key = 'head_hash'", (prev,))


def whitewash(seq: int, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "outcome": "compliant", "allow": True, "exit_code": 0}


def test_threat_model_a_plain_chain_rewritten_whole_passes_locally_but_not_against_the_shipped_head(
    log20: tuple[Path, list[str]],
) -> None:
    path, _ = log20
    shipped_head = verify(path).head_hash  # what the collector got with every batch
    rechain(path, ChainKey(), whitewash)
    local = verify(path)
    assert local.intact  # honest: without a key or an outside anchor a full rewrite is not detectable
    assert local.head_hash != shipped_head  # the collector's copy of the head is what catches it


def test_a_keyed_log_verifies_with_its_key_only(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    fill(path, 10, key=KEY)
    assert verify(path, KEY).intact
    key_file = tmp_path / "log.key"
    key_file.write_text("k" * 40 + "\n")
    key_file.chmod(0o600)  # a secret open to every user is said on stderr
    assert run_pyagent("log", "verify", "--db", str(path), "--key-file", str(key_file)).returncode == 0
    no_key = run_pyagent("log", "verify", "--db", str(path))
    assert (no_key.returncode, no_key.stderr) == (
        2, f"pyagent: error: {path}: the decision log is keyed (HMAC key id db5efefb7b528db1); give "
        "--key-file or set agent.hmac_key_file\n",
    )  # fmt: skip
    key_file.write_text("x" * 40 + "\n")
    wrong = run_pyagent("log", "verify", "--db", str(path), "--key-file", str(key_file))
    assert (wrong.returncode, wrong.stderr) == (
        2, f"pyagent: error: {path}: the decision log was keyed with key id db5efefb7b528db1, the key given "
        "has id 8d85768f143c7c87\n",
    )  # fmt: skip


def test_a_keyed_log_rewritten_without_the_key_is_found(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    ids = fill(path, 10, key=KEY)
    rechain(path, ChainKey(b"attacker guess" * 3), whitewash)
    problems = verify(path, KEY).problems
    assert [(p.kind, p.seq, p.record_id) for p in problems] == [
        ("edited", seq, ids[seq - 1]) for seq in range(1, 11)
    ]


def test_a_keyed_log_downgraded_to_plain_hashes_is_found(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    fill(path, 10, key=KEY)
    rechain(path, ChainKey(), whitewash)
    with connect(path) as conn:
        conn.execute("UPDATE meta SET value = 'sha256' WHERE key = 'mac'")
        conn.execute("UPDATE meta SET value = '' WHERE key = 'key_id'")
    assert verify(path).intact  # without the key configured, nothing says a key was ever used...
    problem = only(verify(path, KEY).problems)  # ...which is why the verifier takes the configured key
    assert problem.kind == "key"
    key_file = tmp_path / "log.key"
    key_file.write_text("k" * 40)
    assert run_pyagent("log", "verify", "--db", str(path), "--key-file", str(key_file)).returncode == 1


def test_verifying_while_the_agent_writes_sees_a_consistent_log(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    fill(path, 5, max_records=50)
    stop = threading.Event()
    appended = [0]

    def write() -> None:
        with Spool.open(path, key=ChainKey()) as spool:
            while not stop.is_set():
                spool.append(synthetic(appended[0]), max_records=50)
                appended[0] += 1

    def verify_until(count: int) -> list[Verification]:
        """Verifies at least 20 times and until the writer has appended `count` records (60 s at most),
        then once more."""
        seen: list[Verification] = []
        deadline = time.monotonic() + 60
        while len(seen) < 20 or (appended[0] < count and time.monotonic() < deadline):
            seen.append(verify(path))
        return [*seen, verify(path)]

    writer = threading.Thread(target=write)
    writer.start()
    try:
        first = verify(path)
        # 60 records past those appended when `first` was read: beyond max_records, so that verifying
        # meets records being pruned, and the last read is certainly further on than the first
        results = [first, *verify_until(appended[0] + 60)]
    finally:
        stop.set()
        writer.join()
    assert all(r.intact for r in results), [r.problems for r in results if not r.intact][:1]
    assert results[-1].head_seq > first.head_seq, "the writer appended nothing while the log was verified"


@pytest.mark.parametrize("column", ["body", "hash"])
def test_a_field_stored_as_a_blob_is_an_edit_not_a_crash(log20: tuple[Path, list[str]], column: str) -> None:
    """SQLite keeps a BLOB written over a TEXT column by hand: the record reads as edited."""
    path, ids = log20
    with connect(path) as conn:
        conn.execute(f"UPDATE records SET {column} = CAST({column} AS BLOB) WHERE seq = 6")
    problems = verify(path).problems
    assert next((p.kind, p.seq, p.record_id) for p in problems) == ("edited", 6, ids[5])
    assert len(problems) == (1 if column == "body" else 2)  # a hash gone: seq 7 no longer links to it
    done = run_pyagent("log", "verify", "--db", str(path))
    assert done.returncode == 1
    assert f"edited: record seq 6 (id {ids[5]}) was edited" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("value", ["42", "CAST('{}' AS BLOB)", "'[]'"])
def test_an_edited_head_reads_as_unreadable_in_status(log20: tuple[Path, list[str]], value: str) -> None:
    path, _ = log20
    with connect(path) as conn:
        conn.execute(f"UPDATE records SET body = {value} WHERE seq = 20")
    assert only(verify(path).problems).seq == 20
    done = run_pyagent("agent", "status", "--format", "json", "--spool", str(path))
    assert done.returncode == 0, done.stderr
    last_run = json.loads(done.stdout)["last_run"]
    assert (last_run["outcome"], last_run["error"]) == (
        "unreadable",
        "record seq 20 is not a JSON object; run pyagent log verify",
    )


def test_an_edited_set_aside_entry_is_a_corrupt_spool(log20: tuple[Path, list[str]]) -> None:
    path, _ = log20
    with Spool.open(path, key=ChainKey()) as spool:
        spool.set_aside(4, "2023-03-16T09:30:00Z", "refused by the server: 400", retry=True)
    with connect(path) as conn:
        edited = conn.execute("UPDATE meta SET value = '{\"seq\": \"4\"}' WHERE key LIKE 'aside.%'")
        assert edited.rowcount == 1
    done = run_pyagent("agent", "status", "--spool", str(path))
    assert done.returncode == 2
    assert done.stderr == (
        f"pyagent: error: {path}: meta.aside.00000000000000000004 is not a set-aside entry; move it aside "
        "and start a new chain with `pyagent agent run --move-corrupt-aside`\n"
    )
    assert "Traceback" not in done.stderr
