"""A spool read where its directory cannot be written (a read-only mount, root's state directory read by
an auditor): `log verify` and `agent status` read it; a write-ahead log they could not read with it is
refused, never left out."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pyagent.agent.chain import ChainKey
from pyagent.agent.store import Spool, SpoolError
from pyagent.cli import cli
from tests.agent.conftest import fill, synthetic
from tests.helpers.unprivileged import as_unprivileged, shared_dir


@pytest.fixture
def readable_dir() -> Path:
    """A directory of root's that others may read but not write (``nobody`` in the tests)."""
    with shared_dir() as shared:
        directory = shared / "state"
        directory.mkdir(mode=0o755)
        yield directory  # type: ignore[misc]


def commands(spool: Path, state_dir: Path) -> tuple[Result, Result]:
    verified = CliRunner().invoke(cli, ["log", "verify", "--db", str(spool)])
    status = ["agent", "status", "--spool", str(spool), "--state-dir", str(state_dir), "--format", "json"]
    return verified, CliRunner().invoke(cli, status)


def test_log_verify_and_status_read_a_spool_in_a_directory_they_cannot_write(
    readable_dir: Path, tmp_path: Path
) -> None:
    fill(tmp_path / "spool.sqlite", 1)
    commands(
        tmp_path / "spool.sqlite", tmp_path
    )  # (what they import is loaded: the interpreter may be root's only)
    spool = readable_dir / "spool.sqlite"
    fill(spool, 3)
    spool.chmod(0o644)
    before = sorted(path.name for path in readable_dir.iterdir())
    (tmp_path / "bundles").mkdir()
    with as_unprivileged():
        verified, status = commands(spool, readable_dir)
        elsewhere = commands(spool, tmp_path)[1]  # a state directory of root's (0700), bundles in it
    assert verified.exit_code == 0, verified.output
    said = rf"pyagent: log: {re.escape(str(spool))}: intact: 3 records \(seq 1\.\.3\), sha256, "
    assert re.fullmatch(said + r"head [0-9a-f]{64}, 0 dropped before seq 1\n", verified.output)
    assert status.exit_code == 0, status.output
    assert '"records": 3' in status.output and '"pending": 3' in status.output
    assert sorted(path.name for path in readable_dir.iterdir()) == before  # nothing made beside it
    assert (elsewhere.exit_code, elsewhere.output) == (
        2,
        f"pyagent: error: {tmp_path / 'bundles'}: cannot read the agent's bundle state: Permission denied "
        "(give --state-dir, or ask as the agent's user)\n",
    )  # (it was an internal error, exit 3)


def test_a_write_ahead_log_that_cannot_be_read_with_it_is_refused(readable_dir: Path, tmp_path: Path) -> None:
    """A copy of a spool taken while its agent ran: two of its five records are in the write-ahead log
    only. Read where it is, the file alone would say three records, intact; it is refused."""
    live = tmp_path / "spool.sqlite"
    fill(live, 3)
    with Spool.open(live, key=ChainKey()) as writer:
        for i in (3, 4):
            writer.append(synthetic(i), max_records=1000)
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{live}{suffix}", readable_dir / f"spool.sqlite{suffix}")
    copy = readable_dir / "spool.sqlite"
    for path in readable_dir.iterdir():
        path.chmod(0o644)
    with as_unprivileged(), pytest.raises(SpoolError) as refused:
        Spool.open(copy, key=ChainKey(), readonly=True)
    assert str(refused.value) == (
        f"{copy}: cannot read the spool where it is: its directory cannot be written and its write-ahead "
        "log (spool.sqlite-wal) has no shared-memory file (spool.sqlite-shm); copy the spool with its "
        "spool.sqlite-wal to a directory of yours and read the copy"
    )
    with Spool.open(copy, key=ChainKey(), readonly=True) as spool:  # where it can be: all five
        assert len(spool.records()) == 5
