"""Rollback protection: the last accepted bundle, kept in a small state directory.

``bundle-state.json`` records the build serial, revision and content digest of the last bundle that was
verified and loaded; ``last-good-bundle.tar.gz`` is a copy of that bundle. A new bundle is refused when
its serial is lower than the recorded one, or equal with different content (a serial is never reused).
The same bundle again (equal serial, equal content) is accepted: restarts re-load it.

Both files are written atomically (a temporary file in the same directory, fsync, rename, fsync of the
directory), under an exclusive lock, so concurrent agents never see half a state and never move it
backwards. A state file that cannot be read or parsed is an error, never a silent reset: resetting
would re-open the door to old bundles. The protection is as strong as the directory's permissions:
whoever can delete the state can roll back, so it belongs to root (``/var/lib/pyagent``, mode 0700).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from pyagent import safefs
from pyagent.bundles.errors import LOG, RejectionKind, reject
from pyagent.bundles.verify import VerifiedBundle
from pyagent.errors import NoDecisionError
from pyagent.safefs import UnsafeStateError

__all__ = ["AcceptedBundle", "BundleState", "StateError", "default_state_dir"]

STATE_FILE = "bundle-state.json"
LAST_GOOD_FILE = "last-good-bundle.tar.gz"
LOCK_FILE = ".bundle-state.lock"


class StateError(NoDecisionError):
    """The state directory or file is unusable; with verification on, no decision is made (exit 3)."""


def default_state_dir() -> Path:
    """``PYAGENT_STATE_DIR`` when set, else the agent's: ``/var/lib/pyagent`` as root, else
    ``$XDG_STATE_HOME/pyagent`` (CONTRACT section 6.1; :mod:`pyagent.config.statedir`)."""
    from pyagent.config.statedir import default_state_dir as agents

    env = os.environ.get("PYAGENT_STATE_DIR")
    return Path(env) if env else agents()


@dataclass(frozen=True)
class AcceptedBundle:
    """What the state file records about the last accepted bundle."""

    serial: int
    revision: str
    content_digest: str
    built_at: int | None
    accepted_at: str
    source: str


def _accepted(doc: object) -> AcceptedBundle:
    """The state file's record, or ValueError saying what is wrong with it."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    wanted = [f.name for f in fields(AcceptedBundle)]
    missing = [name for name in wanted if name not in doc]
    unknown = sorted(str(name) for name in doc if name not in wanted)
    if missing or unknown:
        said = [f"no {', '.join(missing)}"] if missing else []
        said += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise ValueError("; ".join(said))
    serial = doc["serial"]
    if not isinstance(serial, int) or isinstance(serial, bool):
        raise ValueError("serial is not an integer")
    return AcceptedBundle(**doc)


class BundleState:
    """The state directory of one agent: last accepted serial, and a copy of that bundle."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def last_good_path(self) -> Path:
        return self.directory / LAST_GOOD_FILE

    def _read(self, name: str, what: str) -> bytes | None:
        """A state file's bytes (None when missing), never through a link (:mod:`pyagent.safefs`)."""
        where = self.directory / name
        try:
            return safefs.read_in(self.directory, name, folder_what="bundle state directory", what=what)
        except UnsafeStateError:
            raise
        except OSError as err:
            raise StateError(f"bundle state {where}: cannot read: {err.strerror or err}") from err

    def last(self) -> AcceptedBundle | None:
        """The last accepted bundle, or None before the first one."""
        raw = self._read(STATE_FILE, "bundle state file")
        if raw is None:
            return None
        try:
            record = _accepted(json.loads(raw))
        except (ValueError, RecursionError) as err:
            raise StateError(
                f"bundle state {self.state_path}: corrupt ({err}); refusing to guess the last serial"
                " (restore it, or remove it deliberately to trust the next bundle)"
            ) from err
        return record

    def check(self, bundle: VerifiedBundle) -> None:
        """Raise ``BundleRejected`` (rollback) when ``bundle`` is older than the last accepted one."""
        last = self.last()
        if last is None:
            return
        if bundle.serial < last.serial:
            raise reject(
                RejectionKind.ROLLBACK,
                bundle.label,
                f"build serial {bundle.serial} is older than the last accepted {last.serial}"
                f" (revision {last.revision or '-'}): replay of an old bundle refused",
            )
        if bundle.serial == last.serial and bundle.content_digest != last.content_digest:
            raise reject(
                RejectionKind.ROLLBACK,
                bundle.label,
                f"build serial {bundle.serial} was already accepted with different content",
            )

    def accept(self, bundle: VerifiedBundle, raw: bytes) -> AcceptedBundle:
        """Record ``bundle`` (whose archive bytes are ``raw``) as the last accepted one."""
        record = AcceptedBundle(
            serial=bundle.serial,
            revision=bundle.revision,
            content_digest=bundle.content_digest,
            built_at=bundle.built_at,
            accepted_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            source=bundle.label,
        )
        with self._locked() as dir_fd:
            self.check(bundle)  # again, under the lock: another agent may have moved on meanwhile
            last = self.last()
            # the same build kept already; when the kept archive is not it (cut or damaged on disk),
            # it is written anew
            if (
                last is not None
                and last.serial == bundle.serial
                and self._has_last_good(dir_fd)
                and self.last_good() == raw
            ):
                return last
            try:
                safefs.write_atomic(dir_fd, LAST_GOOD_FILE, raw)
                safefs.write_atomic(dir_fd, STATE_FILE, json.dumps(asdict(record), indent=2).encode() + b"\n")
            except OSError as err:
                raise StateError(
                    f"bundle state directory {self.directory}: cannot write: {err.strerror or err}"
                ) from err
        LOG.info("bundle %s accepted: serial %d, revision %s", bundle.label, bundle.serial, bundle.revision)
        return record

    def last_good(self) -> bytes | None:
        """The archive bytes of the last accepted bundle, when kept."""
        return self._read(LAST_GOOD_FILE, "last accepted bundle")

    @staticmethod
    def _has_last_good(dir_fd: int) -> bool:
        with contextlib.suppress(OSError):
            return stat.S_ISREG(os.stat(LAST_GOOD_FILE, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        return False

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """The state directory's fd, under its exclusive lock; nothing is opened through a link."""
        try:
            dir_fd = safefs.open_dir(self.directory, what="bundle state directory")
            assert dir_fd is not None  # created when missing
            try:
                lock = safefs.open_private(dir_fd, LOCK_FILE, where=self.directory, what="bundle state lock")
            except BaseException:
                os.close(dir_fd)
                raise
        except UnsafeStateError:
            raise
        except OSError as err:
            raise StateError(
                f"bundle state directory {self.directory}: unusable: {err.strerror or err}"
                " (set PYAGENT_STATE_DIR to a directory this user can write)"
            ) from err
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield dir_fd
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            os.close(lock)
            os.close(dir_fd)


def write_atomic(path: Path, content: bytes) -> None:
    """``content`` at ``path``: a new private file in the same directory, fsync, rename, fsync of the
    directory; the directory opened without following a link, and nothing written through one."""
    with safefs.directory(path.parent, what="state directory", create=False) as dir_fd:
        if dir_fd is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(path.parent))
        safefs.write_atomic(dir_fd, path.name, content)
