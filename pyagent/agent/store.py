"""The spool: every result in a local SQLite database, chained, before it counts as done.

One file holds both the shipping queue and the tamper-evident decision log, so a result is recorded,
chained and queued in one transaction (WAL mode, ``synchronous=FULL``: a commit survives a power cut).

Tables: ``records`` (``seq`` ascending and never reused, ``id`` a UUID, ``prev_hash``, ``hash``, ``body``
the canonical JSON that was hashed, ``shipped_at`` set after the collector answered 2xx: not hashed)
and ``meta`` (the chain id, the key fingerprint, the anchor and head of the chain, the dropped
counters, and the shipping status).

Bounded size: before a record is added, the oldest records beyond ``max_records - 1`` are deleted;
the last deleted record's seq and hash become the *anchor* the remaining chain starts from, and the
``dropped`` counter grows. Every new record repeats the anchor and the counters in its body, so they
are covered by the chain (and by the key, when there is one).
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pyagent.agent.chain import GENESIS, ChainKey, canonical_json
from pyagent.agent.spoolfile import (
    ASIDE,
    ChainState,
    RawRecord,
    ShipStatus,
    SpoolCorruptError,
    SpoolError,
    aside_entry,
    aside_json,
    aside_key,
    check_in_place,
    file_identity,
    mark_made,
    move_aside,
    new_file,
    readonly_connection,
    sqlite_errors,
    to_offer,
    utc_now,
)
from pyagent.config.statedir import private_file, sqlite_side_files
from pyagent.jsonio import storable

__all__ = [
    "ChainState",
    "RawRecord",
    "ShipStatus",
    "Spool",
    "SpoolCorruptError",
    "SpoolError",
    "move_aside",
    "utc_now",
]

FORMAT = "pyagent-spool/1"
RECORD_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    shipped_at TEXT
);
CREATE INDEX records_pending ON records (seq) WHERE shipped_at IS NULL;
"""
_CHAIN_KEYS = ("format", "chain_id", "created_at", "origin", "mac", "key_id", "anchor_seq", "anchor_hash")
_COUNTER_KEYS = ("head_seq", "head_hash", "head_id", "dropped", "dropped_unshipped")
_SHIP_KEYS = ("last_ship_at", "last_ship_ok_at", "last_ship_error")
SET_ASIDE = "set aside "  # shipped_at of a record set aside


class Spool:
    """An open spool. Not thread-safe; one per process is the intended use."""

    def __init__(self, path: Path, conn: sqlite3.Connection, key: ChainKey) -> None:
        self.path = path
        self._conn = conn
        self.key = key
        self._identity = file_identity(path)

    @classmethod
    def open(cls, path: Path, *, key: ChainKey, readonly: bool = False, origin: str = "") -> Spool:
        """Open (or, writable, create) the spool at ``path``; corruption is a :class:`SpoolCorruptError`.

        A new spool is built under a temporary name and linked into place complete, so an existing
        file at ``path`` is always a spool: an empty or truncated one is corrupt, never silently reset.
        A link (dangling or not) in place of the spool or of its SQLite side files is refused first, so
        nothing is created through it outside the state directory.
        """
        private_file(path, what="spool")
        sqlite_side_files(path, what="spool's side file")
        if readonly and not path.is_file():
            raise SpoolError(f"{path}: no spool here (has the agent run yet? see agent.spool_path)")
        if not readonly and not path.exists():
            cls._create(path, key=key, origin=origin)
        with sqlite_errors(path, "open"):
            conn = readonly_connection(path) if readonly else sqlite3.connect(str(path), timeout=10)
            conn.isolation_level = None
            spool = cls(path, conn, key)
            try:
                spool._prepare(readonly=readonly)
            except BaseException:
                conn.close()
                raise
        return spool

    @classmethod
    def _create(cls, path: Path, *, key: ChainKey, origin: str) -> None:
        with new_file(path) as temporary, sqlite_errors(path, "create"):
            conn = sqlite3.connect(str(temporary), timeout=10)
            conn.isolation_level = None
            try:
                fresh = cls(temporary, conn, key)
                fresh._pragmas()
                fresh._initialise(origin)
            finally:
                conn.close()

    def _pragmas(self) -> None:
        self._conn.execute("PRAGMA busy_timeout = 10000")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SpoolError(f"{self.path}: cannot switch the spool to WAL mode (got {mode})")
        self._conn.execute("PRAGMA synchronous = FULL")

    def _prepare(self, *, readonly: bool) -> None:
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 10000")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            reason = f"the spool database is corrupt ({'; '.join(map(str, problems))})"
            raise SpoolCorruptError(self.path, reason)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables != {"meta", "records"}:
            what = f"tables: {sorted(tables)}" if tables else "empty: truncated?"
            raise SpoolCorruptError(self.path, f"not a pyagent spool ({what})")
        self.state()  # every meta key present and well-formed
        if not readonly:  # only now: the pragmas write to the file, which must not touch a corrupt one
            self._pragmas()
            mark_made(self.path)

    def _initialise(self, origin: str) -> None:
        meta = {
            "format": FORMAT,
            "chain_id": str(uuid.uuid4()),
            "created_at": utc_now(),
            "origin": origin,
            "mac": self.key.mac,
            "key_id": self.key.key_id or "",
            "anchor_seq": "0",
            "anchor_hash": GENESIS,
            "head_seq": "0",
            "head_hash": GENESIS,
            "head_id": "",
            "dropped": "0",
            "dropped_unshipped": "0",
        }
        with self._transaction():
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read several things from one consistent state, while the agent may be writing."""
        with sqlite_errors(self.path, "read"):
            self._conn.execute("BEGIN")
        try:
            yield
        finally:
            if self._conn.in_transaction:
                with sqlite_errors(self.path, "read"):
                    self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def _meta(self) -> dict[str, str]:
        with sqlite_errors(self.path, "read"):
            return {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}

    def state(self) -> ChainState:
        """The chain state in ``meta``; a missing or malformed key means this is not a sound spool."""
        meta = self._meta()
        missing = [key for key in (*_CHAIN_KEYS, *_COUNTER_KEYS) if key not in meta]
        if missing:
            raise SpoolCorruptError(self.path, f"not a pyagent spool (meta.{missing[0]} missing)")
        if meta["format"] != FORMAT:
            raise SpoolError(f"{self.path}: spool format {meta['format']!r}, this pyagent reads {FORMAT!r}")

        def number(key: str) -> int:
            value = meta[key]
            if not value.isdigit():
                raise SpoolCorruptError(self.path, f"meta.{key} is not a number: {value!r}")
            return int(value)

        return ChainState(
            chain_id=meta["chain_id"],
            created_at=meta["created_at"],
            origin=meta["origin"],
            mac=meta["mac"],
            key_id=meta["key_id"] or None,
            anchor_seq=number("anchor_seq"),
            anchor_hash=meta["anchor_hash"],
            head_seq=number("head_seq"),
            head_hash=meta["head_hash"],
            head_id=meta["head_id"] or None,
            dropped=number("dropped"),
            dropped_unshipped=number("dropped_unshipped"),
        )

    def ship_status(self) -> ShipStatus:
        meta = self._meta()
        return ShipStatus(*(meta.get(key) or None for key in _SHIP_KEYS))

    def records(self) -> list[RawRecord]:
        """Every record, in ``seq`` order."""
        with sqlite_errors(self.path, "read"):
            rows = self._conn.execute(
                "SELECT seq, id, prev_hash, hash, body, shipped_at FROM records ORDER BY seq"
            ).fetchall()
        return [RawRecord.from_row(row) for row in rows]

    def pending(self, limit: int) -> list[RawRecord]:
        """The oldest records not shipped yet, at most ``limit``."""
        with sqlite_errors(self.path, "read"):
            rows = self._conn.execute(
                "SELECT seq, id, prev_hash, hash, body, shipped_at FROM records"
                " WHERE shipped_at IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [RawRecord.from_row(row) for row in rows]

    def counts(self) -> tuple[int, int]:
        """(records kept, records not shipped yet)."""
        with sqlite_errors(self.path, "read"):
            total, pending = self._conn.execute(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE shipped_at IS NULL) FROM records"
            ).fetchone()
        return int(total), int(pending)

    def head(self) -> RawRecord | None:
        with sqlite_errors(self.path, "read"):
            row = self._conn.execute(
                "SELECT seq, id, prev_hash, hash, body, shipped_at FROM records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return RawRecord.from_row(row) if row else None

    # -- writing ---------------------------------------------------------------------------

    def check_key(self) -> None:
        """Refuse to extend a chain made with another key (or none): it could not be verified."""
        state = self.state()
        if (state.mac, state.key_id) != (self.key.mac, self.key.key_id):
            made = f"{state.mac} key {state.key_id}" if state.key_id else state.mac
            given = f"{self.key.mac} key {self.key.key_id}" if self.key.key_id else self.key.mac
            raise SpoolError(
                f"{self.path}: the decision log was chained with {made}, the config gives {given}; "
                "restore agent.hmac_key_file, or start a new spool"
            )

    def append(self, content: Mapping[str, Any], *, max_records: int) -> RawRecord:
        """Chain ``content`` as the next record and commit it, dropping the oldest beyond the bound."""
        check_in_place(self.path, self._identity)  # (removed or replaced while the agent ran)
        self.check_key()
        content = storable(content)  # (a server's words in an error may hold what UTF-8 cannot)
        with sqlite_errors(self.path, "write to"), self._transaction():
            state = self.state()
            anchor_seq, anchor_hash = state.anchor_seq, state.anchor_hash
            dropped, dropped_unshipped = state.dropped, state.dropped_unshipped
            (count,) = self._conn.execute("SELECT COUNT(*) FROM records").fetchone()
            excess = int(count) - (max_records - 1)
            if excess > 0:
                oldest = self._conn.execute(
                    "SELECT seq, hash, shipped_at FROM records ORDER BY seq LIMIT ?", (excess,)
                ).fetchall()
                anchor_seq, anchor_hash = int(oldest[-1][0]), str(oldest[-1][1])
                dropped += len(oldest)
                dropped_unshipped += sum(
                    1 for row in oldest if row[2] is None or row[2].startswith(SET_ASIDE)
                )
                self._conn.execute("DELETE FROM records WHERE seq <= ?", (anchor_seq,))
                self._conn.execute(
                    "DELETE FROM meta WHERE key >= ? AND key <= ?", (ASIDE, aside_key(anchor_seq))
                )
            seq = state.head_seq + 1
            record_id = str(uuid.uuid4())
            body: dict[str, Any] = {
                **content,
                "v": RECORD_VERSION,
                "seq": seq,
                "id": record_id,
                "chain_id": state.chain_id,
                "prev_hash": state.head_hash,
                "anchor": {"seq": anchor_seq, "hash": anchor_hash},
                "dropped": dropped,
                "dropped_unshipped": dropped_unshipped,
                "recorded_at": utc_now(),
            }
            if seq == 1:
                body["origin"] = state.origin
            digest = self.key.digest(body)
            text = canonical_json(body).decode("utf-8")
            self._conn.execute(
                "INSERT INTO records (seq, id, prev_hash, hash, body) VALUES (?, ?, ?, ?, ?)",
                (seq, record_id, state.head_hash, digest, text),
            )
            self._set_meta(
                anchor_seq=str(anchor_seq),
                anchor_hash=anchor_hash,
                head_seq=str(seq),
                head_hash=digest,
                head_id=record_id,
                dropped=str(dropped),
                dropped_unshipped=str(dropped_unshipped),
            )
        return RawRecord(seq, record_id, state.head_hash, digest, text, None)

    def _set_meta(self, **values: str) -> None:
        self._conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    def mark_shipped_many(self, seqs: list[int], at: str) -> None:
        """The server answered 2xx for the records ``seqs`` (one transaction): no longer set aside."""
        with sqlite_errors(self.path, "write to"), self._transaction():
            self._conn.executemany("UPDATE records SET shipped_at = ? WHERE seq = ?", [(at, s) for s in seqs])
            self._conn.executemany("DELETE FROM meta WHERE key = ?", [(aside_key(s),) for s in seqs])

    def set_aside(self, seq: int, at: str, why: str, *, retry: bool, size_limit: int | None = None) -> None:
        """Record ``seq`` was not delivered: kept, listed with ``why``, out of the pending queue,
        offered again (:meth:`to_retry`) if the server refused it (``retry``) or once the upload limit
        is above ``size_limit``. The list lives in ``meta`` (``aside.<seq>``), outside the chain."""
        entry = aside_json(seq, at, why, retry=retry, size_limit=size_limit)
        with sqlite_errors(self.path, "write to"), self._transaction():
            self._conn.execute("UPDATE records SET shipped_at = ? WHERE seq = ?", (f"{SET_ASIDE}{at}", seq))
            self._set_meta(**{aside_key(seq): entry})

    def set_aside_list(self, limit: int | None = 100) -> tuple[int, list[dict[str, Any]]]:
        """(how many records are set aside, the newest ``limit`` of them (None: all), newest first)."""
        with sqlite_errors(self.path, "read"):
            where = "FROM meta WHERE key >= ? AND key < ?"
            bounds = (ASIDE, ASIDE[:-1] + chr(ord(ASIDE[-1]) + 1))
            (count,) = self._conn.execute(f"SELECT COUNT(*) {where}", bounds).fetchone()
            rows = self._conn.execute(
                f"SELECT key, value {where} ORDER BY key DESC LIMIT ?",
                (*bounds, -1 if limit is None else limit),
            )
            return int(count), [aside_entry(self.path, key, value) for key, value in rows]

    def to_retry(self, limit: int, *, upload_limit: int = 0) -> list[RawRecord]:
        """At most ``limit`` records the server refused, or too large for a lower upload limit than
        ``upload_limit``, those set aside longest ago first, in seq order."""
        seqs = to_offer(self.set_aside_list(None)[1], limit, upload_limit)
        with sqlite_errors(self.path, "read"):
            rows = self._conn.execute(
                "SELECT seq, id, prev_hash, hash, body, shipped_at FROM records"
                f" WHERE seq IN ({','.join('?' * len(seqs))}) ORDER BY seq",
                seqs,
            ).fetchall()
        return [RawRecord.from_row(row) for row in rows]

    def note_ship(self, *, at: str, error: str | None) -> None:
        """Remember the last shipping attempt and its outcome (for ``agent status``)."""
        values = {"last_ship_at": at, "last_ship_error": error or ""}
        if error is None:
            values["last_ship_ok_at"] = at
        with sqlite_errors(self.path, "write to"), self._transaction():
            self._set_meta(**values)
