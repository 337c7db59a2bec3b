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
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyagent.bundles.errors import LOG, RejectionKind, reject
from pyagent.bundles.verify import VerifiedBundle
from pyagent.errors import NoDecisionError

__all__ = ["DEFAULT_STATE_DIR", "AcceptedBundle", "BundleState", "StateError", "default_state_dir"]

DEFAULT_STATE_DIR = Path("/var/lib/pyagent")
STATE_FILE = "bundle-state.json"
LAST_GOOD_FILE = "last-good-bundle.tar.gz"
LOCK_FILE = ".bundle-state.lock"


class StateError(NoDecisionError):
    """The state directory or file is unusable; with verification on, no decision is made (exit 3)."""


def default_state_dir() -> Path:
    """``PYAGENT_STATE_DIR`` when set, else ``/var/lib/pyagent``."""
    env = os.environ.get("PYAGENT_STATE_DIR")
    return Path(env) if env else DEFAULT_STATE_DIR


@dataclass(frozen=True)
class AcceptedBundle:
    """What the state file records about the last accepted bundle."""

    serial: int
    revision: str
    content_digest: str
    built_at: int | None
    accepted_at: str
    source: str


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

    def last(self) -> AcceptedBundle | None:
        """The last accepted bundle, or None before the first one."""
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StateError(f"bundle state {self.state_path}: cannot read: {err.strerror or err}") from err
        try:
            doc = json.loads(raw)
            record = AcceptedBundle(**doc)
            if not isinstance(record.serial, int) or isinstance(record.serial, bool):
                raise TypeError("serial is not an integer")
        except (ValueError, TypeError) as err:
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
        with self._locked():
            self.check(bundle)  # again, under the lock: another agent may have moved on meanwhile
            last = self.last()
            if last is not None and last.serial == bundle.serial and self.last_good_path.is_file():
                return last
            try:
                write_atomic(self.last_good_path, raw)
                write_atomic(self.state_path, json.dumps(asdict(record), indent=2).encode() + b"\n")
            except OSError as err:
                raise StateError(
                    f"bundle state directory {self.directory}: cannot write: {err.strerror or err}"
                ) from err
        LOG.info("bundle %s accepted: serial %d, revision %s", bundle.label, bundle.serial, bundle.revision)
        return record

    def last_good(self) -> bytes | None:
        """The archive bytes of the last accepted bundle, when kept."""
        try:
            return self.last_good_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            why = err.strerror or err
            raise StateError(f"bundle state {self.last_good_path}: cannot read: {why}") from err

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = (self.directory / LOCK_FILE).open("a+b")
        except OSError as err:
            raise StateError(
                f"bundle state directory {self.directory}: unusable: {err.strerror or err}"
                " (set PYAGENT_STATE_DIR to a directory this user can write)"
            ) from err
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(path: Path, content: bytes) -> None:
    """``content`` at ``path``: a temporary file in the same directory, fsync, rename, fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
