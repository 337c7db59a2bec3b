"""The spool: durable (WAL, synchronous=FULL), bounded (oldest dropped first, counted), and a corrupt
file is a one-line error with exit code 2 from every command, or moved aside on request."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from pyagent.agent.chain import ChainKey
from pyagent.agent.store import Spool, SpoolCorruptError, SpoolError
from tests.agent.conftest import fill, run_pyagent, synthetic


def test_the_spool_is_wal_with_synchronous_full(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with Spool.open(path, key=ChainKey()) as spool:
        spool.append(synthetic(1), max_records=10)
        assert spool._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (path.stat().st_mode & 0o777) == 0o600


def test_the_size_bound_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    fill(path, 4, max_records=5)
    with Spool.open(path, key=ChainKey()) as spool:
        for row in spool.pending(2):  # the two oldest were shipped
            spool.mark_shipped_many([row.seq], "2023-03-16T09:30:00Z")
    fill(path, 8, max_records=5)
    with Spool.open(path, key=ChainKey(), readonly=True) as spool:  # persisted: a fresh connection
        state = spool.state()
        assert [r.seq for r in spool.records()] == [8, 9, 10, 11, 12]
        assert (state.dropped, state.dropped_unshipped, state.anchor_seq) == (7, 5, 7)
        head = json.loads(spool.records()[-1].body)
        assert (head["dropped"], head["dropped_unshipped"]) == (7, 5)  # covered by the chain


def test_status_reports_the_dropped_count(tmp_path: Path, config_file: Callable[..., Path]) -> None:
    config = config_file(max_records=3)
    fill(tmp_path / "spool.sqlite", 10, max_records=3)
    done = run_pyagent("agent", "status", "--config", str(config), "--format", "json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert (status["records"], status["dropped"], status["pending"]) == (3, 7, 3)
    assert status["head"]["seq"] == 10 and status["anchor"]["seq"] == 7


def test_status_without_a_spool_says_so(config_file: Callable[..., Path]) -> None:
    done = run_pyagent("agent", "status", "--config", str(config_file()))
    assert done.returncode == 0
    assert "the agent has not recorded a run" in done.stderr


def _page_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def garbage_header(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.write(os.urandom(100))


def garbage_page(path: Path) -> None:
    page = _page_size(path)
    pages = path.stat().st_size // page
    with path.open("r+b") as handle:
        handle.seek(page * (pages // 2))
        handle.write(b"\xde\xad\xbe\xef" * (page // 4))


def truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def truncate_tiny(path: Path) -> None:
    os.truncate(path, 50)


def truncate_empty(path: Path) -> None:
    os.truncate(path, 0)


CORRUPTIONS = [garbage_header, garbage_page, truncate_half, truncate_tiny, truncate_empty]
#: What each corruption is called in the one-line error.
MALFORMED = "the spool database is corrupt (database disk image is malformed)"
REASONS = {
    "garbage_header": "the spool database is corrupt (file is not a database)",
    "garbage_page": MALFORMED,
    "truncate_half": MALFORMED,
    "truncate_tiny": MALFORMED,
    "truncate_empty": "not a pyagent spool (empty: truncated?)",
}


@pytest.fixture
def corrupt_spool(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    path = tmp_path / "spool.sqlite"
    fill(path, 300)  # many pages; closing checkpoints the WAL into the file
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    request.param(path)
    return path


@pytest.mark.parametrize("corrupt_spool", CORRUPTIONS, indirect=True, ids=lambda f: f.__name__)
def test_a_corrupt_spool_is_a_one_line_error_from_the_library(corrupt_spool: Path) -> None:
    with pytest.raises(SpoolError) as raised:
        Spool.open(corrupt_spool, key=ChainKey(), readonly=True)
    assert isinstance(raised.value, SpoolCorruptError)
    assert "\n" not in str(raised.value) and "--move-corrupt-aside" in str(raised.value)


@pytest.mark.parametrize("corrupt_spool", CORRUPTIONS, indirect=True, ids=lambda f: f.__name__)
def test_a_corrupt_spool_is_exit_2_and_one_line_from_every_command(
    corrupt_spool: Path, config_file: Callable[..., Path], policy_bundle: Path, request: pytest.FixtureRequest
) -> None:
    reason = REASONS[request.node.callspec.params["corrupt_spool"].__name__]
    config = config_file()
    for args in (
        ["log", "verify", "--db", str(corrupt_spool)],
        ["agent", "status", "--config", str(config)],
        ["agent", "run", "--once", "--config", str(config)],
    ):
        done = run_pyagent(*args)
        assert (done.returncode, done.stdout, done.stderr) == (
            2, "", f"pyagent: error: {corrupt_spool}: {reason}; move it aside and start a new chain with "
            "`pyagent agent run --move-corrupt-aside`\n",
        ), args  # fmt: skip


@pytest.mark.parametrize(
    "corrupt_spool", [garbage_header, truncate_empty], indirect=True, ids=lambda f: f.__name__
)
def test_the_agent_moves_a_corrupt_spool_aside_on_request_and_starts_a_new_chain(
    corrupt_spool: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    config = config_file()
    before = corrupt_spool.read_bytes()
    done = run_pyagent("agent", "run", "--once", "--move-corrupt-aside", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "a new chain starts" in done.stderr
    moved = sorted(corrupt_spool.parent.glob("spool.sqlite.corrupt-*"))
    assert [p.name for p in moved if not p.name.endswith(("-wal", "-shm", ".made"))] == [moved[0].name]
    assert moved[0].read_bytes() == before  # kept as it was, for whoever investigates
    assert json.loads(done.stdout)["seq"] == 1
    assert run_pyagent("log", "verify", "--db", str(corrupt_spool)).returncode == 0
    status = json.loads(run_pyagent("agent", "status", "--config", str(config), "--format", "json").stdout)
    assert moved[0].name in status["origin"] and status["records"] == 1


def test_a_spool_whose_directory_is_replaced_by_a_file_is_refused_not_a_crash(tmp_path: Path) -> None:
    """os.stat's NotADirectoryError escaped as an internal error (exit 3) where the spool's removal is
    a SpoolError (exit 2)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    spool = Spool.open(state / "spool.sqlite", key=ChainKey())
    try:
        spool.append({"n": 1}, max_records=10)
        shutil.rmtree(state)
        state.write_text("a file where the state directory was\n")
        with pytest.raises(SpoolError) as refused:
            spool.append({"n": 2}, max_records=10)
    finally:
        spool.close()
    assert str(refused.value) == (
        f"{state / 'spool.sqlite'}: the spool was removed or replaced while the agent ran; no decision is "
        "recorded into a file no one can read again (restart the agent)"
    )
