"""A bundle's directory in the agent's state: the active bundle, and what happened to the others.

``STATE_DIR/bundles/NAME/``:

* ``last-good-bundle.tar.gz`` — the active bundle, as downloaded (written to a temporary file, fsynced,
  renamed: a crash leaves the old or the new one, never half of one);
* ``bundle-state.json`` — its build serial, for rollback protection (:mod:`pyagent.bundles.state`);
* ``status.json`` — the download state OPA's status reports (ETag, revision, times, the last error)
  and the last refusals with their reasons, for ``agent status``;
* ``.download-*`` — a download in progress; left over after a crash, removed at the next start.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyagent import safefs
from pyagent.bundles.state import LAST_GOOD_FILE, BundleState, StateError, write_atomic
from pyagent.config.statedir import private_dir
from pyagent.errors import InvalidInputError
from pyagent.termsafe import shorten

STATUS_FILE = "status.json"
DOWNLOAD_PREFIX = ".download-"
MAX_REFUSALS = 20
MAX_STATUS = 1 << 20
#: The longest error text kept (what a server or a bundle says is bounded before it is stored):
#: 21 of them stay far below MAX_STATUS, so no sender can make the status file unreadable.
MAX_TEXT = 2000


#: An entity-tag sent back in If-None-Match: visible ASCII (RFC 9110's etagc, quotes and W/ included),
#: bounded. A service's ETag with a control character, a space or a line break, or longer, is not kept:
#: sent back, it got a 400 from every later request, and no new bundle ever came.
_ETAG = re.compile(r"[\x21-\x7e]{1,256}")


def usable_etag(value: str | None) -> str | None:
    """``value`` as an ETag to send back in If-None-Match, or None when it cannot be one."""
    return value if value is not None and _ETAG.fullmatch(value) else None


@dataclass
class BundleStatus:
    """What ``status.json`` holds (and OPA's status message reports for the bundle)."""

    name: str
    etag: str | None = None
    manifest: str | None = None
    """From an OCI registry: the manifest digest that last named the active bundle (whose ETag, as
    OPA's, is its layer's digest), asked with ``If-None-Match``."""
    active_revision: str | None = None
    active_serial: int | None = None
    last_request: str | None = None
    last_successful_request: str | None = None
    last_successful_download: str | None = None
    last_successful_activation: str | None = None
    http_code: int | None = None
    size: int | None = None
    """Bytes of the active bundle as downloaded."""
    code: str | None = None
    message: str | None = None
    refusals: list[dict[str, Any]] = field(default_factory=list)

    def refused(self, at: str, kind: str, reason: str) -> None:
        entry = {"at": at, "kind": kind, "reason": shorten(reason, MAX_TEXT)}
        self.refusals = [*self.refusals, entry][-MAX_REFUSALS:]

    def opa_json(self) -> dict[str, Any]:
        """This bundle as OPA's status message gives it."""
        document: dict[str, Any] = {"name": self.name}
        for key in (
            "active_revision",
            "last_request",
            "last_successful_request",
            "last_successful_download",
            "last_successful_activation",
        ):
            value = getattr(self, key)
            if value is not None:
                document[key] = value
        if self.active_revision is not None:
            document["type"] = "snapshot"  # OPA's bundle type (no delta bundles here)
            if self.size is not None:
                document["size"] = self.size
        if self.code:
            # errors as OPA's (ast.Error objects: code and message, no location here), never strings
            document.update(
                code=self.code,
                message=self.message or "",
                errors=[{"code": self.code, "message": self.message or ""}],
            )
            if self.http_code is not None and self.http_code not in (200, 304):  # OPA: an HTTP error's code
                document["http_code"] = self.http_code
        return document


class CorruptStatus(StateError):
    """``status.json`` reads, but holds no status: edited, or cut short."""


#: The type of each saved field that is not a string (the others are strings).
_FIELD_TYPES: dict[str, type] = {
    **{name: str for name in BundleStatus.__dataclass_fields__},
    "active_serial": int,
    "http_code": int,
    "size": int,
    "refusals": list,
}


def _is(value: object, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, list) and all(
            isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("at", "kind", "reason"))
            for item in value
        )
    return isinstance(value, kind)


class BundleDir:
    """One bundle's directory (created 0700 on first use)."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.path = state_dir / "bundles" / name
        self.name = name
        self.rollback = BundleState(self.path)

    @property
    def active_path(self) -> Path:
        return self.path / LAST_GOOD_FILE

    def same_as_active(self, download: Path) -> bool:
        """Whether ``download`` holds the active bundle's bytes (a service that answers 200 to every
        ``If-None-Match``: nothing changed, nothing to activate again)."""
        try:
            active = self.active_path
            return (
                active.stat().st_size == download.stat().st_size
                and active.read_bytes() == download.read_bytes()
            )
        except OSError:
            return False

    def prepare(self) -> None:
        """Create the directory (private), and remove downloads a crash left behind."""
        private_dir(self.path.parent, what="bundles directory")
        private_dir(self.path, what=f"directory of bundle {self.name}")
        self.drop_downloads()

    def drop_downloads(self) -> None:
        """Remove downloads in progress or left behind (at start, and when the agent stops while its
        bundle thread is still downloading: a long poll, a slow answer)."""
        for leftover in self.path.glob(DOWNLOAD_PREFIX + "*"):
            leftover.unlink(missing_ok=True)

    def new_download(self) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(prefix=DOWNLOAD_PREFIX, dir=self.path)
        return fd, Path(name)

    def load_status(self) -> BundleStatus:
        """The saved status (a fresh one when there is none). A file that cannot be read is a
        :class:`StateError`; one that reads but is not a status (edited, cut short) is
        :class:`CorruptStatus`, which the plug-in survives: the status is a record, not a trust anchor."""
        try:
            raw = _read_status(self.path)
        except OSError as err:
            where = self.path / STATUS_FILE
            raise StateError(f"{where}: unreadable ({err}); remove it to start over") from err
        if raw is None:
            return BundleStatus(self.name)
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise CorruptStatus(f"{self.path / STATUS_FILE}: not JSON ({shorten(str(err), 200)})") from err
        if not isinstance(document, dict):
            raise CorruptStatus(f"{self.path / STATUS_FILE}: not a JSON object")
        for key, value in document.items():
            kind = _FIELD_TYPES.get(key)
            if kind is not None and value is not None and not _is(value, kind):
                raise CorruptStatus(f"{self.path / STATUS_FILE}: {key}: not {kind.__name__}")
        known = set(BundleStatus.__dataclass_fields__)
        status = BundleStatus(**{k: v for k, v in document.items() if k in known} | {"name": self.name})
        status.etag = usable_etag(status.etag)  # (one kept before ETags were checked is sent no more)
        return status

    def save_status(self, status: BundleStatus) -> None:
        write_atomic(self.path / STATUS_FILE, json.dumps(asdict(status), indent=2).encode() + b"\n")

    def activate_unsigned(self, raw: bytes) -> None:
        write_atomic(self.active_path, raw)


def read_statuses(state_dir: Path) -> list[dict[str, Any]]:
    """Every bundle's ``status.json`` under ``state_dir`` (for ``agent status``), by name."""
    found = []
    root = state_dir / "bundles"
    try:
        paths = sorted(root.glob(f"*/{STATUS_FILE}")) if root.is_dir() else []
    except OSError as err:  # (not this user's state directory: say so, it is no internal error)
        raise InvalidInputError(
            f"{root}: cannot read the agent's bundle state: {err.strerror or err} (give --state-dir, or "
            "ask as the agent's user)"
        ) from err
    for path in paths:
        try:
            raw = _read_status(path.parent)
            if raw is None:
                continue
            document = json.loads(raw)
        except (OSError, ValueError, RecursionError, InvalidInputError) as err:
            document = {"name": path.parent.name, "code": "unreadable", "message": f"{path}: {err}"}
        if isinstance(document, dict):
            found.append(document)
    return found


def _read_status(directory: Path) -> bytes | None:
    """``status.json`` of a bundle's directory, never through a link (None when missing)."""
    return safefs.read_in(
        directory, STATUS_FILE, folder_what="bundle directory", what="bundle status file", limit=MAX_STATUS
    )
