"""The rollback state: written atomically, never silently reset, never moved backwards."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from pyagent.bundles.errors import BundleRejected, RejectionKind
from pyagent.bundles.state import LAST_GOOD_FILE, STATE_FILE, BundleState, StateError
from pyagent.bundles.verify import VerifiedBundle


def _bundle(serial: int, content: str = "") -> VerifiedBundle:
    return VerifiedBundle(
        label=f"bundle-{serial}.tar.gz",
        serial=serial,
        revision=f"r{serial}",
        built_at=1_700_000_000 + serial,
        content_digest=content or f"digest-{serial}",
        claims={},
    )


def test_the_first_bundle_is_trusted_and_recorded(tmp_path: Path) -> None:
    state = BundleState(tmp_path / "state")
    assert state.last() is None and state.last_good() is None
    record = state.accept(_bundle(7), b"archive-7")
    assert state.last() == record
    assert (record.serial, record.revision, record.built_at, record.source) == (
        7,
        "r7",
        1_700_000_007,
        "bundle-7.tar.gz",
    )
    assert state.last_good() == b"archive-7"
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == sorted(
        [".bundle-state.lock", LAST_GOOD_FILE, STATE_FILE]
    )


def test_older_and_conflicting_serials_are_refused(tmp_path: Path) -> None:
    state = BundleState(tmp_path)
    state.accept(_bundle(7), b"archive-7")
    for bundle, detail in [
        (
            _bundle(6),
            "build serial 6 is older than the last accepted 7 (revision r7): replay of an old bundle refused",
        ),
        (_bundle(7, "other"), "build serial 7 was already accepted with different content"),
    ]:
        with pytest.raises(BundleRejected) as caught:
            state.accept(bundle, b"evil")
        assert (caught.value.kind, caught.value.detail) == (RejectionKind.ROLLBACK, detail)
    assert state.last_good() == b"archive-7"
    state.accept(_bundle(7), b"archive-7")  # the same bundle again
    state.accept(_bundle(8), b"archive-8")
    assert state.last() is not None and state.last().serial == 8  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        ('{"serial": "seven"', "Expecting ',' delimiter: line 1 column 19 (char 18)"),
        ('{"serial": "7", "revision": "r", "content_digest": "d", "built_at": null, "accepted_at": "t", '
         '"source": "s"}', "serial is not an integer"),
        ('{"serial": true, "revision": "r", "content_digest": "d", "built_at": null, "accepted_at": "t", '
         '"source": "s"}', "serial is not an integer"),
        ('{"serial": 7, "origin": "x"}', "no revision, content_digest, built_at, accepted_at, source; "
         "unknown origin"),
        ("[7]", "not a JSON object"),
    ],
    ids=["not-json", "string-serial", "boolean-serial", "fields-missing-and-unknown", "array"],
)  # fmt: skip
def test_a_corrupt_state_is_an_error_not_a_reset(tmp_path: Path, stored: str, why: str) -> None:
    state = BundleState(tmp_path)
    state.accept(_bundle(7), b"archive-7")
    (tmp_path / STATE_FILE).write_text(stored)
    with pytest.raises(StateError) as caught:
        state.check(_bundle(1))
    assert str(caught.value) == (
        f"bundle state {tmp_path / STATE_FILE}: corrupt ({why}); refusing to guess the last serial "
        "(restore it, or remove it deliberately to trust the next bundle)"
    )
    assert caught.value.exit_code == 3
    assert (tmp_path / STATE_FILE).read_text() == stored


def test_a_damaged_kept_archive_is_written_anew_when_its_bundle_comes_again(tmp_path: Path) -> None:
    state = BundleState(tmp_path)
    state.accept(_bundle(7), b"archive-7")
    (tmp_path / LAST_GOOD_FILE).write_bytes(b"archive")  # cut on disk
    state.accept(_bundle(7), b"archive-7")
    assert state.last_good() == b"archive-7"


def test_an_unusable_state_directory_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(StateError, match=r"^bundle state directory .*: unusable: .*PYAGENT_STATE_DIR"):
        BundleState(blocker).accept(_bundle(1), b"archive-1")


def test_concurrent_agents_never_move_the_state_backwards(tmp_path: Path) -> None:
    serials = list(range(1, 41))
    random.Random(4).shuffle(serials)
    refused: list[int] = []
    lock = threading.Lock()

    def agent(serial: int) -> None:
        try:
            BundleState(tmp_path).accept(_bundle(serial), f"archive-{serial}".encode())
        except BundleRejected:
            with lock:
                refused.append(serial)

    threads = [threading.Thread(target=agent, args=(serial,)) for serial in serials]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = BundleState(tmp_path)
    assert state.last() is not None and state.last().serial == 40  # type: ignore[union-attr]
    assert state.last_good() == b"archive-40"
    assert 40 not in refused
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle-state.json.")]
