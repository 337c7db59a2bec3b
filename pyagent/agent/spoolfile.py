"""The spool's file and its failures: one-line errors for every SQLite error, creation, moving aside."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pyagent.errors import InvalidInputError

CORRUPT_HINT = "move it aside and start a new chain with `pyagent agent run --move-corrupt-aside`"


class SpoolError(InvalidInputError):
    """The spool cannot be opened or written (missing, permissions, locked, wrong key). Exit code 2."""


class SpoolCorruptError(SpoolError):
    """The spool file is not a readable SQLite database, or not a pyagent spool. Exit code 2."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}; {CORRUPT_HINT}")
        self.reason = reason


def utc_now() -> str:
    """The current time in UTC as RFC 3339 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _translate(err: sqlite3.Error, path: Path, action: str) -> SpoolError:
    name = getattr(err, "sqlite_errorname", "")
    message = str(err).replace("\n", " ")
    if name.startswith("SQLITE_CORRUPT") or name in ("SQLITE_NOTADB", "SQLITE_IOERR_SHORT_READ"):
        return SpoolCorruptError(path, f"the spool database is corrupt ({message})")
    return SpoolError(f"{path}: cannot {action} the spool: {message}")


@contextlib.contextmanager
def sqlite_errors(path: Path, action: str) -> Iterator[None]:
    """Turn every SQLite error inside the block into a one-line :class:`SpoolError`."""
    try:
        yield
    except sqlite3.Error as err:
        raise _translate(err, path, action) from err


def readonly_connection(path: Path) -> sqlite3.Connection:
    """A read-only connection to the spool at ``path``, also where its directory cannot be written (a
    read-only mount, another user's directory this one may read).

    There SQLite cannot make the write-ahead log's shared-memory file (``-shm``) and refuses a plain
    read-only open. When no write-ahead log holds anything (no ``-wal``, or an empty one), the file
    alone is the whole spool and is opened immutable; when one does, reading the file alone would
    leave its records out, so the spool is refused, saying how to read a copy.
    """
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
    if shm.exists() or os.access(path.parent, os.W_OK, effective_ids=True):
        return sqlite3.connect(uri, uri=True, timeout=10)
    if not wal.exists() or wal.stat().st_size == 0:
        return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=10)
    raise SpoolError(
        f"{path}: cannot read the spool where it is: its directory cannot be written and its "
        f"write-ahead log ({wal.name}) has no shared-memory file ({shm.name}); copy the spool with its "
        f"{wal.name} to a directory of yours and read the copy"
    )


@contextlib.contextmanager
def new_file(path: Path) -> Iterator[Path]:
    """A private temporary file beside ``path``; after the block it is linked to ``path`` unless one
    appeared meanwhile (then the other one is kept), and the directory entry is made durable. Not
    beside the write-ahead log of a spool that was deleted (:func:`orphaned_log`), nor where one was
    made before and is gone (:func:`mark_made`)."""
    orphaned_log(path)
    check_not_lost(path)
    temporary = path.with_name(f".{path.name}.new-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _remove(temporary)
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as err:
        raise SpoolError(f"{path}: cannot create the spool: {err.strerror}") from err
    try:
        yield temporary
        os.link(temporary, path)
    except FileExistsError:
        pass  # another agent created the spool first: use that one
    except OSError as err:
        raise SpoolError(f"{path}: cannot create the spool: {err.strerror}") from err
    finally:
        _remove(temporary)
    _sync_directory(path.parent)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def orphaned_log(path: Path) -> None:
    """Refuse to make a spool at ``path`` beside the write-ahead log or journal of one that was deleted
    (SQLite would replay it into the new file, which then reads as corrupt, and the records it holds
    would be lost without a word). An empty one holds nothing, and SQLite rebuilds a shared-memory
    file: both are left as they are (another agent may be making the spool at this moment)."""
    for suffix in ("-wal", "-journal"):
        side = Path(f"{path}{suffix}")
        if not path.exists() and side.is_file() and side.stat().st_size > 0:
            raise SpoolError(
                f"{path}: the spool is missing, but {side} ({side.stat().st_size:,} bytes) of the one that "
                "was here is not: it may hold recorded decisions; restore the spool, or move both away "
                "before the agent starts a new one"
            )


#: The prefix of a set-aside record's key in ``meta``.
ASIDE = "aside."


def aside_key(seq: int) -> str:
    return f"{ASIDE}{seq:020d}"


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, None when there is none or it cannot be reached (its
    directory replaced by a file, made unreadable, gone stale on NFS)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def check_in_place(path: Path, identity: tuple[int, int] | None) -> None:
    """:class:`SpoolError` when the file at ``path`` is no longer the spool opened as ``identity``
    (:func:`file_identity`): removed or replaced, with its state directory or alone, while the agent
    ran. A record "recorded" into the open file would be read by no one."""
    if file_identity(path) != identity:
        raise SpoolError(
            f"{path}: the spool was removed or replaced while the agent ran; no decision is recorded into "
            "a file no one can read again (restart the agent)"
        )


def _marker(path: Path) -> Path:
    return Path(f"{path}.made")


def check_not_lost(path: Path) -> None:
    """Raise :class:`SpoolCorruptError` when no spool is at ``path`` though one was made there
    (:func:`mark_made`): its decisions are gone, which neither a new chain nor "no run yet" may hide."""
    if _marker(path).exists() and not path.exists():
        raise SpoolCorruptError(
            path,
            f"the spool is missing, though one was made here ({_marker(path)} says so); a new chain would "
            "hide that the decisions it held are gone",
        )


def mark_made(path: Path) -> None:
    """Note beside the spool, once, that one was made here: a spool then deleted (and its decisions
    with it) is not silently replaced by a new chain at seq 1; the agent refuses to start until it is
    restored or moved aside (``--move-corrupt-aside``, which moves this note with it)."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(_marker(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as note:
            note.write(f"a pyagent spool was made here ({path.name}) by {utc_now()}\n")


def move_aside(path: Path) -> Path:
    """Rename a corrupt spool (and its -wal and -shm files) to ``<path>.corrupt-<UTC time>``; returns it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        for suffix in ("", "-wal", "-shm", ".made"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                shutil.move(source, Path(f"{target}{suffix}"))
    except OSError as err:
        raise SpoolError(f"{path}: cannot move the corrupt spool aside: {err.strerror}") from err
    return target


@dataclass(frozen=True)
class ChainState:
    """The chain's identity, anchor, head and counters, as ``meta`` holds them."""

    chain_id: str
    created_at: str
    origin: str
    mac: str
    key_id: str | None
    anchor_seq: int
    anchor_hash: str
    head_seq: int
    head_hash: str
    head_id: str | None
    dropped: int
    dropped_unshipped: int


@dataclass(frozen=True)
class RawRecord:
    """One row of ``records`` as stored, the body unparsed (for the verifier)."""

    seq: int
    id: str
    prev_hash: str
    hash: str
    body: str
    shipped_at: str | None

    @classmethod
    def from_row(cls, row: Sequence[object]) -> RawRecord:
        """``(seq, id, prev_hash, hash, body, shipped_at)`` as read. SQLite keeps whatever a hand
        writes into a column (``CAST(body AS BLOB)``): a text field holding another type reads as
        ``""``, which no digest, link or JSON reading accepts, so the record shows as edited."""
        seq, record_id, prev_hash, digest, body, shipped_at = row
        if not isinstance(seq, int):
            raise TypeError(f"records.seq is {type(seq).__name__}")  # INTEGER PRIMARY KEY: never
        return cls(
            seq,
            _text(record_id),
            _text(prev_hash),
            _text(digest),
            _text(body),
            shipped_at if isinstance(shipped_at, str) else None,
        )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class ShipStatus:
    last_attempt_at: str | None
    last_ok_at: str | None
    last_error: str | None


def aside_entry(path: Path, key: object, value: object) -> dict[str, Any]:
    """A set-aside entry as stored in ``meta`` (``{"seq", "at", "reason", "retry"}``); a value edited
    into something else is :class:`SpoolCorruptError` rather than a crash later on."""
    try:
        entry = json.loads(value) if isinstance(value, str) else None
    except (ValueError, RecursionError):
        entry = None
    if not isinstance(entry, dict) or type(entry.get("seq")) is not int or "at" not in entry:
        raise SpoolCorruptError(path, f"meta.{key} is not a set-aside entry")
    return entry


def aside_json(seq: int, at: str, reason: str, *, retry: bool, size_limit: int | None) -> str:
    """A set-aside entry as stored in ``meta`` (see ``Spool.set_aside``)."""
    entry: dict[str, Any] = {"seq": seq, "at": at, "reason": reason[:1000], "retry": retry}
    if size_limit is not None:
        entry["size_limit"] = size_limit
    return json.dumps(entry, ensure_ascii=False)


def to_offer(entries: list[dict[str, Any]], limit: int, upload_limit: int) -> list[int]:
    """The seqs of at most ``limit`` set-aside records to offer the server again, those set aside
    longest ago first: those it refused (entries of older agents have no ``retry``: their reason says
    so), and those too large for a lower upload limit than ``upload_limit``."""

    def again(entry: dict[str, Any]) -> bool:
        if entry.get("retry", str(entry.get("reason")).startswith("refused by ")):
            return True
        size_limit = entry.get("size_limit")
        return type(size_limit) is int and size_limit < upload_limit

    return [seq for _, seq in sorted((str(e["at"]), int(e["seq"])) for e in entries if again(e))[:limit]]
