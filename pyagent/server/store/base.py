"""The store interface: what the server keeps, independent of the database behind it."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pyagent.errors import InvalidInputError, NoDecisionError

if TYPE_CHECKING:
    from pyagent.server.store.fleet import DeviceFilter

#: Roles a bearer token can have (CONTRACT section 7).
ROLES = ("agent", "reader", "admin")
#: Bundle builds a revision can carry: the Rego bundle OPA loads, the wasm bundle agents evaluate.
TARGETS = ("rego", "wasm")


class StoreError(NoDecisionError):
    """The database failed or is unreachable (exit 3 on the command line, 503 over HTTP)."""


class QueryTimeout(StoreError):
    """A reader's query ran past the store's ``query_timeout_seconds`` and was stopped (503 over HTTP)."""


class StoreConflict(InvalidInputError):
    """A write that contradicts what is stored (a duplicate token name, a stale bundle revision)."""


class NoOrganization(enum.Enum):
    """The devices whose decisions name no organisation, as a filter: not a name, so that it never
    matches an organisation whatever that is named (``(none)`` included)."""

    NO_ORGANIZATION = "no_organization"


NO_ORGANIZATION = NoOrganization.NO_ORGANIZATION
#: What a fleet view is narrowed to: one organisation's name, the devices without one, or (None) all.
Organization = str | NoOrganization | None
#: How long a reader's query may run by default (``query_timeout_seconds`` in the server's settings).
QUERY_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: str
    created_at: datetime
    device: str | None = None


@dataclass(frozen=True)
class Grant:
    """What a bearer token may do: its role and, for an agent token bound to one device, that device
    (it may report for no other; None: any device, as an OPA that logs many devices' decisions)."""

    role: str
    device: str | None = None


@dataclass(frozen=True)
class BundleFile:
    """One build of a bundle revision, as published."""

    target: str
    etag: str
    content: bytes


@dataclass(frozen=True)
class NewRevision:
    """A bundle revision to publish: one or both builds of the same policy."""

    name: str
    revision: str
    serial: int | None
    signed: bool
    published_by: str
    files: Sequence[BundleFile]


@dataclass(frozen=True)
class Publication:
    """What a publish did: the revision's id, and whether anything was stored (False: a retry of what
    the current revision holds already)."""

    revision_id: int
    stored: bool = True


@dataclass(frozen=True)
class BundleHead:
    """The newest revision of a bundle that has a build for ``target``."""

    revision_id: int
    name: str
    target: str
    revision: str
    serial: int | None
    etag: str
    size: int


@dataclass(frozen=True)
class DecisionRow:
    """One decision-log event, checked, ready to store (:mod:`pyagent.server.events` makes them)."""

    decision_id: str
    decided_at: datetime
    device_id: str
    sender: str
    path: str
    allow: bool | None
    organization: str | None
    platform: str | None
    result: str | None
    report_digest: str | None
    bundles: str | None
    chain: str | None
    verdict: str = "undecided"
    bans: str = ""
    collected_at: str | None = None


@dataclass(frozen=True)
class IngestResult:
    stored: int
    duplicates: int


@dataclass(frozen=True)
class StatusRow:
    instance_id: str
    labels: str
    bundles: str
    errors: str
    plugins: str
    said_at: datetime | None = None
    """When its sender wrote it, by the sender's clock (see ``pyagent.server.status.said_at``)."""


@dataclass
class DeviceState:
    """A device's current state, with its decision history (newest first) when asked for."""

    device_id: str
    organization: str | None
    platform: str | None
    allow: bool | None
    decision_id: str
    decided_at: datetime
    sender: str
    result: Any
    bundles: Any
    last_seen: datetime
    verdict: str = "undecided"
    report_digest: str | None = None
    status: Mapping[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Older decisions than the history's were left out (ask for more with ``history=``).
    history_truncated: bool = False
    #: The instant of the first decision of the run that has had the current verdict (since when).
    verdict_since: datetime | None = None
    #: Its decision-log chain: head and breaks (``store.chains.chain_json``); None: no chained record.
    chain: dict[str, Any] | None = None


@dataclass(frozen=True)
class PastDecision:
    """A device's decision that held at an instant: its newest at or before it."""

    decision_id: str
    decided_at: datetime
    allow: bool | None
    verdict: str


class Store(abc.ABC):
    """Everything the server reads and writes. Every method is one transaction."""

    url: str
    #: A reader's transaction is stopped past this (:class:`QueryTimeout`); the server sets its own.
    query_timeout_seconds: float = QUERY_TIMEOUT_SECONDS

    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Bring the schema to the newest migration; return the revisions applied."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers."""

    @abc.abstractmethod
    def close(self) -> None: ...

    # tokens
    @abc.abstractmethod
    def add_token(self, name: str, role: str, token_hash: str, device: str | None = None) -> None: ...

    @abc.abstractmethod
    def list_tokens(self) -> list[TokenInfo]: ...

    @abc.abstractmethod
    def revoke_token(self, name: str) -> bool: ...

    @abc.abstractmethod
    def grant_for(self, token_hash: str) -> Grant | None: ...

    # dashboard sessions
    @abc.abstractmethod
    def create_session(self, session_hash: str, token_hash: str, csrf: str, expires_at: datetime) -> None: ...

    @abc.abstractmethod
    def session(self, session_hash: str, now: datetime) -> tuple[str, str] | None:
        """(role, csrf) of a live session whose token still exists, else None."""

    @abc.abstractmethod
    def end_session(self, session_hash: str, now: datetime) -> None:
        """End the session (and drop every expired one)."""

    # bundles
    @abc.abstractmethod
    def publish(self, new: NewRevision) -> Publication:
        """Store a revision; raise :class:`StoreConflict` unless it is newer than the current one:
        a greater serial when both carry one, else a revision never published under the name
        (:mod:`pyagent.server.store.revisions`). The current revision again, each build byte for byte,
        stores nothing and is no conflict (``stored`` False)."""

    @abc.abstractmethod
    def bundle_head(self, name: str, target: str) -> BundleHead | None: ...

    @abc.abstractmethod
    def bundle_content(self, revision_id: int, target: str) -> bytes: ...

    @abc.abstractmethod
    def bundle_names(self) -> set[str]: ...

    @abc.abstractmethod
    def bundles_version(self) -> tuple[int, int]:
        """(the newest revision id of any bundle, the builds stored; (0, 0) when none): what long polls
        watch. A publish changes it, also one that adds the missing build of the current revision
        (a rego-only revision's wasm build), which keeps the revision id."""

    # results
    @abc.abstractmethod
    def ingest(self, rows: Sequence[DecisionRow], reports: Mapping[str, bytes]) -> IngestResult:
        """Store a batch of decisions and their reports, all or nothing."""

    @abc.abstractmethod
    def record_status(self, row: StatusRow) -> None: ...

    @abc.abstractmethod
    def device(self, device_id: str, *, history: int = 0, since: bool = False) -> DeviceState | None:
        """The device's current state, with its last ``history`` decisions and, with ``since``, since
        when its verdict has held (a walk back through its history: not for the access gate)."""

    @abc.abstractmethod
    def decision_at(self, device_id: str, at: datetime) -> PastDecision | None:
        """The device's decision that held at ``at`` (its newest at or before it), or None."""

    @abc.abstractmethod
    def report(self, digest: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def prune(self, before: datetime) -> int:
        """Drop decision history older than ``before`` (retention); return the rows or partitions dropped."""

    # fleet views (CONTRACT section 8; pyagent.server.store.fleet)
    @abc.abstractmethod
    def summary(
        self, *, now: datetime, at: datetime | None, organization: Organization, stale_after: timedelta
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    def device_page(
        self, wanted: DeviceFilter, *, now: datetime, stale_after: timedelta
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    @abc.abstractmethod
    def stale_devices(
        self,
        *,
        now: datetime,
        stale_after: timedelta,
        limit: int,
        organization: Organization = None,
        at: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The stale devices, oldest decision first: now, or as of ``at`` (from the history)."""

    @abc.abstractmethod
    def history(
        self, steps: Sequence[datetime], *, organization: Organization, stale_after: timedelta
    ) -> list[dict[str, Any]]:
        """Counts at each instant of ``steps``, equal to ``summary(at=step)``'s, in one query."""

    @abc.abstractmethod
    def rollout(self, name: str, organization: Organization = None) -> dict[str, Any] | None:
        """Devices per active revision of bundle ``name``, and the refusals reported with their reasons;
        with ``organization``, that organisation's devices only (and no OPA instance: it is no device)."""
