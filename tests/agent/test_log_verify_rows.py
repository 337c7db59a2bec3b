"""``log verify`` against edits to a spool row's own columns and to meta, the record bodies left as
the agent wrote them: a row's id or link changed under its body, the recorded head's id, an unknown
``meta.mac``, and a record chained correctly that claims a later seq (records cut out between)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from pyagent.agent.chain import ChainKey, canonical_json
from pyagent.agent.store import Spool
from pyagent.agent.verify import Problem, verify_spool
from tests.agent.conftest import fill


def _problems(path: Path) -> tuple[Problem, ...]:
    with Spool.open(path, key=ChainKey(), readonly=True) as spool:
        return verify_spool(spool, ChainKey()).problems


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.isolation_level = None
    return conn


@pytest.fixture
def spool20(tmp_path: Path) -> tuple[Path, list[str]]:
    """A plain-hash spool of 20 records, and their ids."""
    path = tmp_path / "spool.sqlite"
    return path, fill(path, 20)


def _edited(seq: int, record_id: str) -> Problem:
    return Problem(
        "edited",
        seq,
        record_id,
        f"record seq {seq} (id {record_id}) was edited: its content does not match its hash",
    )


def test_a_rows_id_changed_under_its_body_is_an_edit(spool20: tuple[Path, list[str]]) -> None:
    path, ids = spool20
    renamed = f"x-{ids[6]}"
    with _connect(path) as conn:
        conn.execute("UPDATE records SET id = ? WHERE seq = 7", (renamed,))
    assert _problems(path) == (_edited(7, renamed),)


def test_a_rows_link_changed_under_its_body_is_an_edit(spool20: tuple[Path, list[str]]) -> None:
    path, ids = spool20
    with _connect(path) as conn:
        conn.execute("UPDATE records SET prev_hash = ? WHERE seq = 7", ("0" * 64,))
    assert _problems(path) == (
        _edited(7, ids[6]),
        Problem(
            "edited",
            6,
            ids[5],
            f"record seq 6 (id {ids[5]}) was edited or replaced: the next record, seq 7 (id {ids[6]}), "
            "does not link to it",
        ),
    )


def test_a_recorded_head_naming_another_record_is_found(spool20: tuple[Path, list[str]]) -> None:
    path, ids = spool20
    with _connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'head_id'", (str(uuid.uuid4()),))
    assert _problems(path) == (
        Problem("edited", 20, ids[19], f"record seq 20 (id {ids[19]}) does not match the recorded head"),
    )


def test_an_unknown_mac_in_meta_is_found(spool20: tuple[Path, list[str]]) -> None:
    path, _ = spool20
    with _connect(path) as conn:
        conn.execute("UPDATE meta SET value = 'blake3' WHERE key = 'mac'")
    assert _problems(path) == (
        Problem("key", None, None, "meta.mac is 'blake3', neither sha256 nor hmac-sha256"),
    )


def test_a_record_linked_to_its_row_before_but_claiming_a_later_seq_is_forged(
    spool20: tuple[Path, list[str]],
) -> None:
    """Records 8 to 20 cut out, and one put in their place whose body says seq 12: its hash and its
    link hold, and the recorded head is moved to it, so only the seq it claims gives it away."""
    path, _ = spool20
    forged_id = str(uuid.uuid4())
    with _connect(path) as conn:
        link, body = conn.execute("SELECT hash, body FROM records WHERE seq = 7").fetchone()
        conn.execute("DELETE FROM records WHERE seq >= 8")
        forged = {**json.loads(body), "seq": 12, "id": forged_id, "prev_hash": link}
        digest = ChainKey().digest(forged)
        conn.execute(
            "INSERT INTO records (seq, id, prev_hash, hash, body) VALUES (8, ?, ?, ?, ?)",
            (forged_id, link, digest, canonical_json(forged).decode()),
        )
        conn.executemany(
            "UPDATE meta SET value = ? WHERE key = ?",
            [("12", "head_seq"), (digest, "head_hash"), (forged_id, "head_id")],
        )
    assert _problems(path) == (
        Problem(
            "inserted", 8, forged_id, f"record seq 8 (id {forged_id}) claims seq 12 but follows seq 7: forged"
        ),
    )
