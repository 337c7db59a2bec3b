"""What every collector produces, and the errors it may raise.

A collector reads one inventory (this machine, an ``adb`` device, an exported file) and returns an
:class:`Inventory`: the ``apps`` list of a device report (CONTRACT section 1) plus the device facts it
learned on the way (platform, OS version, work profile, anything else under ``facts``). Building the
report itself (device id, ownership, organisation, timestamps) is the caller's job.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal, get_args

from pyagent import __version__
from pyagent.errors import InvalidInputError, NoDecisionError, PyagentError
from pyagent.termsafe import first_hidden

Platform = Literal["android", "ios", "windows", "macos", "linux"]
PLATFORMS: tuple[str, ...] = get_args(Platform)

Evidence = Literal["id", "display_name"]
"""How an app's ``id`` was learned. Absent means ``"id"``: the inventory carried the identifier itself.
``"display_name"`` means the id was derived from a display name, which is weaker evidence."""

MAX_ID_CHARS = 512
"""Longest identifier a collector emits (CONTRACT section 1: reports with 512-character IDs are valid)."""
MAX_TEXT_CHARS = 1024
"""Longest name, version or installer a collector emits (the report schema's bound)."""
MAX_PATH_CHARS = 4096
"""Longest path a collector emits (the report schema's bound)."""


def one_line(message: str) -> str:
    """``message`` with line breaks escaped, so that it stays one line whatever input it quotes."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


class BaseCollectorError(PyagentError):
    """Base of every error a collector raises, a one-line message; its exit code is its kind's:
    :class:`CollectorError` (3) or :class:`CollectorInputError` (2)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class CollectorError(BaseCollectorError, NoDecisionError):
    """A tool the collector needs is missing, hung, printed too much, or failed. Exit code 3."""


class CollectorInputError(BaseCollectorError, InvalidInputError):
    """An inventory file (or a tool's captured output) is not what it should be. Exit code 2."""


def clip(text: str, limit: int = 80) -> str:
    """``text`` as a short quoted fragment for a one-line error message."""
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(shown)


#: C0 controls and DEL (tab, line breaks, NUL, escape, ...): refused in identifiers.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
#: NUL and line breaks: refused in any text (a line break would split a line of output).
_BREAKS = re.compile("[\x00\r\n]")


def check_text(
    value: object, *, what: str, where: str, limit: int = MAX_TEXT_CHARS, identifier: bool = False
) -> str:
    """``value`` if it is a non-empty string without NUL or line breaks (``identifier``: without any
    control character, as the schema wants ids: a carriage return or tab left in an id would match no
    ban; nor an invisible one such as U+200B; and with the white space a tool left at its ends taken
    off, as ``check`` refuses an id with it) and at most ``limit`` characters.

    Raises :class:`CollectorInputError` naming ``where`` (file and position) and ``what`` (the field).
    """
    if value is None:
        raise CollectorInputError(f"{where}: {what} is missing")
    if not isinstance(value, str):
        raise CollectorInputError(f"{where}: {what} must be a string, not {type(value).__name__}")
    if identifier:
        value = value.strip(" ")
    if not value:
        raise CollectorInputError(f"{where}: {what} is empty")
    if len(value) > limit:
        raise CollectorInputError(f"{where}: {what} is longer than {limit} characters")
    if not value.isprintable() and (_CONTROL if identifier else _BREAKS).search(value):
        raise CollectorInputError(f"{where}: {what} contains a control character: {clip(value)}")
    if identifier and (found := first_hidden(value)) is not None:
        raise CollectorInputError(
            f"{where}: {what} contains the invisible character U+{ord(found):04X}, which no ban would match: "
            f"{clip(value)}"
        )
    return value


def optional_text(
    value: object, *, what: str, where: str, limit: int = MAX_TEXT_CHARS, identifier: bool = False
) -> str | None:
    """Like :func:`check_text`, but ``None`` and blank strings give ``None``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return check_text(value, what=what, where=where, limit=limit, identifier=identifier)


@dataclass(frozen=True)
class App:
    """One entry of a device report's ``apps`` list (CONTRACT section 1)."""

    id: str
    name: str | None = None
    version: str | None = None
    source: str | None = None
    evidence: Evidence | None = None
    installer: str | None = None
    user: int | None = None
    """Android user id (0 = the main user; a work profile has its own id, often 10)."""
    path: str | None = None

    def __post_init__(self) -> None:
        # Parsers validate with check_text and raise CollectorInputError; this guards programming errors.
        if not self.id or "\x00" in self.id or len(self.id) > MAX_ID_CHARS:
            raise ValueError(f"invalid app id {self.id!r}")
        if self.evidence not in (None, *get_args(Evidence)):
            raise ValueError(f"invalid evidence {self.evidence!r}")
        if self.user is not None and (isinstance(self.user, bool) or self.user < 0):
            raise ValueError(f"invalid user {self.user!r}")

    def to_json(self) -> dict[str, object]:
        """The report form: only the fields that are set, in contract order."""
        fields: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "evidence": self.evidence,
            "installer": self.installer,
            "user": self.user,
            "path": self.path,
        }
        return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True)
class Inventory:
    """What a collector learned about one device."""

    platform: Platform
    apps: list[App]
    os_version: str | None = None
    work_profile: bool | None = None
    """True when the device has an Android work (managed) profile; None when the inventory cannot tell."""
    facts: dict[str, object] = field(default_factory=dict)
    """Anything else learned (users, package managers used, source table...): JSON-serialisable values.
    A report builder may put it under ``device.extra``."""
    collector_name: str = "unknown"
    collector_version: str = __version__
    not_listed: tuple[str, ...] = ()
    """Kinds of app the collector could not list (``windows-store``, ``unmanaged-apps``): a ban of such
    an app is then reported as not checked (the report's ``collector.not_listed``)."""
    managed_only_when_personal: bool = False
    """The source lists a personally owned device's managed apps only (an MDM: Intune lists the others
    on corporate devices alone), so such a device's report says ``unmanaged-apps`` is not listed."""

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"invalid platform {self.platform!r}")

    def apps_json(self) -> list[dict[str, object]]:
        """The report's ``apps`` list."""
        return [app.to_json() for app in self.apps]

    def collector_json(self, ownership: str | None = None) -> dict[str, object]:
        """The report's ``collector`` object, for a device of ``ownership`` (when known)."""
        found: dict[str, object] = {"name": self.collector_name, "version": self.collector_version}
        not_listed = list(self.not_listed)
        if self.managed_only_when_personal and ownership == "personal" and "unmanaged-apps" not in not_listed:
            not_listed.append("unmanaged-apps")
        if not_listed:
            found["not_listed"] = not_listed
        return found


def dedupe(apps: list[App]) -> list[App]:
    """``apps`` without exact repeats (same fields), first occurrence kept, order preserved.

    Only identical entries are merged: two versions of one package, or one package in two Android users,
    stay separate entries.
    """
    seen: set[App] = set()
    unique: list[App] = []
    for app in apps:
        if app not in seen:
            seen.add(app)
            unique.append(app)
    return unique


class Collector(abc.ABC):
    """A source of inventories. Subclasses take their options as keyword arguments of ``__init__``."""

    name: ClassVar[str]
    """The collector's ``--source`` name (a :class:`~pyagent.collectors.registry.CollectorName` value)."""

    @abc.abstractmethod
    def collect(self) -> Inventory:
        """Read the inventory. Raises CollectorInputError (bad input) or CollectorError (tool failure)."""

    def inventory(
        self,
        platform: Platform,
        apps: list[App],
        *,
        os_version: str | None = None,
        work_profile: bool | None = None,
        facts: dict[str, object] | None = None,
        not_listed: tuple[str, ...] = (),
        managed_only_when_personal: bool = False,
    ) -> Inventory:
        """An :class:`Inventory` stamped with this collector's name and pyagent's version."""
        return Inventory(
            platform=platform,
            apps=dedupe(apps),
            os_version=os_version,
            work_profile=work_profile,
            facts=dict(facts or {}),
            collector_name=self.name,
            collector_version=__version__,
            not_listed=not_listed,
            managed_only_when_personal=managed_only_when_personal,
        )
