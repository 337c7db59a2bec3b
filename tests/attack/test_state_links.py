"""Issue 16, item 3: the state directory cannot be turned against the agent.

Links planted in the state (the spool, its SQLite side files, the bundle state's lock and files), a
state directory of another user and a world-writable one: each refused with a clear error (exit 2),
and no file is ever created outside the state directory (the link targets stay absent).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyagent.bundles.state import LAST_GOOD_FILE, LOCK_FILE, STATE_FILE, BundleState
from pyagent.bundles.verify import VerifiedBundle
from pyagent.errors import InvalidInputError
from tests.attack.conftest import run_pyagent

FACTS = ["--device-id", "attacked", "--ownership", "corporate", "--mdm-enrolled", "--org", "eu-commission"]


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    state, outside = tmp_path / "state", tmp_path / "outside"
    state.mkdir(mode=0o700)
    outside.mkdir(mode=0o700)
    return state, outside


def agent_once(state: Path, *more: str) -> tuple[int, str]:
    run = run_pyagent(
        "agent",
        "run",
        "--once",
        *FACTS,
        "--state-dir",
        str(state),
        "--engine",
        "embedded",
        *more,
        timeout=120,
    )
    return run.code, run.stderr.strip()


@pytest.mark.parametrize("target_exists", [False, True], ids=["dangling", "to-a-file"])
def test_a_link_as_the_spool_is_refused(dirs: tuple[Path, Path], target_exists: bool) -> None:
    state, outside = dirs
    target = outside / "spool.sqlite"
    if target_exists:
        target.write_bytes(b"")
    (state / "spool.sqlite").symlink_to(target)
    code, stderr = agent_once(state)
    assert (code, stderr) == (
        2,
        f"pyagent: error: {state}/spool.sqlite: the spool is a symbolic link; give the real file",
    )
    assert sorted(p.name for p in outside.iterdir()) == (["spool.sqlite"] if target_exists else [])
    assert not target_exists or target.read_bytes() == b""


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_link_as_a_sqlite_side_file_is_refused(dirs: tuple[Path, Path], suffix: str) -> None:
    """SQLite opens ``spool.sqlite-wal`` by name: through a planted link it would create the target."""
    state, outside = dirs
    (state / f"spool.sqlite{suffix}").symlink_to(outside / "planted")
    code, stderr = agent_once(state)
    assert (code, stderr) == (
        2,
        f"pyagent: error: {state}/spool.sqlite{suffix}: the spool's side file is a symbolic link; remove it",
    )
    assert list(outside.iterdir()) == []


def test_a_state_dir_of_another_user_is_refused(dirs: tuple[Path, Path]) -> None:
    state, _ = dirs
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    os.chown(state, 65534, 65534)
    code, stderr = agent_once(state)
    assert (code, stderr) == (
        2,
        f"pyagent: error: {state}: the state directory belongs to uid 65534, not to this user (uid 0) "
        "or root",
    )


def test_a_world_writable_state_dir_is_refused_and_left_empty(dirs: tuple[Path, Path]) -> None:
    state, _ = dirs
    state.chmod(0o777)
    code, stderr = agent_once(state)
    assert (code, stderr) == (
        2,
        f"pyagent: error: {state}: the state directory is writable by group or others (mode 0777); "
        f"chmod go-w {state}",
    )
    assert list(state.iterdir()) == []


def _bundle(serial: int) -> VerifiedBundle:
    return VerifiedBundle(
        label=f"b{serial}",
        serial=serial,
        revision=f"r{serial}",
        built_at=None,
        content_digest=f"d{serial}",
        claims={},
    )


@pytest.mark.parametrize("name", [LOCK_FILE, STATE_FILE, LAST_GOOD_FILE])
def test_a_link_in_the_bundle_state_is_refused_and_nothing_written_through_it(
    dirs: tuple[Path, Path], name: str
) -> None:
    state, outside = dirs
    (state / name).symlink_to(outside / "planted")
    bundles = BundleState(state)
    if name == LAST_GOOD_FILE:
        bundles.accept(_bundle(1), b"one")  # writing replaces the link (rename), never follows it
        assert not (state / name).is_symlink() and (state / name).read_bytes() == b"one"
    else:
        with pytest.raises(
            InvalidInputError, match=f"^{state / name}: the .* is a symbolic link; give the real one$"
        ):
            bundles.accept(_bundle(1), b"one")
    assert list(outside.iterdir()) == []


def test_a_bundle_state_file_linked_to_another_file_is_not_read(dirs: tuple[Path, Path]) -> None:
    state, outside = dirs
    (outside / "forged.json").write_text('{"serial": 0}')
    (state / STATE_FILE).symlink_to(outside / "forged.json")
    with pytest.raises(InvalidInputError, match="the bundle state file is a symbolic link"):
        BundleState(state).last()


def test_a_linked_bundle_state_directory_is_refused(dirs: tuple[Path, Path]) -> None:
    state, outside = dirs
    link = state / "linked"
    link.symlink_to(outside)
    with pytest.raises(InvalidInputError, match=f"^{link}: the bundle state directory is a symbolic link"):
        BundleState(link).accept(_bundle(1), b"one")
    assert list(outside.iterdir()) == []
