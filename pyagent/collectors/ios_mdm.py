"""Apple MDM: the device's response to an ``InstalledApplicationList`` command.

Input: the XML property list the device sends back (``Status``, ``UDID``, ``CommandUUID`` and the
``InstalledApplicationList`` array). Each item is a dictionary with ``Identifier`` (the bundle ID, always
present on iOS), ``Name``, ``ShortVersion``, ``Version`` and flags such as ``Installing`` or
``IsAppClip``. Item ids come from ``Identifier``; an item without one (possible on macOS) is named by
``Name`` through :mod:`~pyagent.collectors.known_apps` or as ``name:<Name>``, marked
``evidence: display_name``. ``ShortVersion`` (the user-facing version) is preferred to ``Version``.

Only XML plists are read, with :mod:`plistlib`, which refuses entity declarations (no entity expansion,
no external entities) and never fetches the DTD. A response whose ``Status`` is not ``Acknowledged``
(``Error``, ``NotNow``...) carries no list and is refused.

A response with an ``EnrollmentID`` comes from a device under Apple User Enrolment (a personal
device), which lists the apps its organisation manages and no other: the report says so
(``collector.not_listed: ["unmanaged-apps"]``), so that a ban of the device is reported as not
checked. (A response to a command sent with ``ManagedAppsOnly`` cannot be told from a full list: take
the inventory without it.)
"""

from __future__ import annotations

import os
import plistlib
import re
from pathlib import Path
from typing import Literal
from xml.parsers.expat import ExpatError

from pyagent.collectors import known_apps
from pyagent.collectors.base import (
    MAX_ID_CHARS,
    App,
    Collector,
    CollectorInputError,
    Inventory,
    check_text,
    clip,
    optional_text,
)
from pyagent.collectors.files import input_name, read_input_bytes
from pyagent.termsafe import shorten

SOURCE = "ios-mdm"
_XML_STARTS = (b"<?xml", b"<!DOCTYPE plist", b"<plist")
# plistlib reports malformed XML plists through several exception types, not only InvalidFileException.
_PLIST_ERRORS = (
    plistlib.InvalidFileException,
    ExpatError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    LookupError,  # (an unknown encoding in the XML declaration)
)
#: The XML declaration's encoding, dropped from a UTF-16 plist once it is read as UTF-8.
_DECLARED_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?)\s+encoding\s*=\s*(["'])[^"'>]*\2""")


class DuplicateKeyError(ValueError):
    """A dictionary of the plist gives one key twice: which value the device meant cannot be told."""


class _OnceEach(dict[str, object]):
    """A plist dictionary whose keys are each given once (plistlib keeps the last of a repeated key,
    which could hide the Identifier of a banned app behind another)."""

    def __setitem__(self, key: str, value: object) -> None:
        if key in self:
            raise DuplicateKeyError(f"the key {clip(key)!s} is given twice in one dictionary")
        super().__setitem__(key, value)


def load_xml_plist(data: bytes, *, where: str) -> object:
    """``data`` parsed as an XML property list; binary plists and anything else are refused. A UTF-16
    one with its byte order mark (as Windows PowerShell saves it) is read as its text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CollectorInputError(f"{where}: not valid UTF-16 text (byte {exc.start})") from exc
        data = _DECLARED_ENCODING.sub(r"\1", text.lstrip("\ufeff"), count=1).encode("utf-8")
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:64]
    if head.startswith(b"bplist"):
        raise CollectorInputError(f"{where}: a binary plist; export the MDM response as XML")
    if not head.startswith(_XML_STARTS):
        raise CollectorInputError(f"{where}: not an XML property list (an MDM command response)")
    try:
        return plistlib.loads(data, fmt=plistlib.FMT_XML, dict_type=_OnceEach)
    except _PLIST_ERRORS as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CollectorInputError(f"{where}: not a valid XML plist: {shorten(detail, 200)}") from exc


def parse_installed_application_list(
    data: bytes, *, where: str, platform: Literal["ios", "macos"] = "ios"
) -> tuple[list[App], dict[str, object]]:
    """(apps, facts) from an ``InstalledApplicationList`` command response."""
    root = load_xml_plist(data, where=where)
    if not isinstance(root, dict):
        raise CollectorInputError(f"{where}: the plist is not a dictionary; not an MDM command response")
    status = root.get("Status")
    if status is not None and status != "Acknowledged":
        raise CollectorInputError(f"{where}: the command's Status is {clip(str(status))}, not Acknowledged")
    items = root.get("InstalledApplicationList")
    if not isinstance(items, list):
        raise CollectorInputError(f"{where}: no InstalledApplicationList array; not that command's response")
    if not items:  # every device has apps: a command that listed none failed (or was filtered away)
        raise CollectorInputError(
            f"{where}: the InstalledApplicationList is empty, and a device reported with no apps would be "
            "compliant"
        )
    apps: list[App] = []
    installing = 0
    for index, item in enumerate(items):
        at = f"{where}: InstalledApplicationList[{index}]"
        if not isinstance(item, dict):
            raise CollectorInputError(f"{at}: not a dictionary")
        name = optional_text(item.get("Name"), what="Name", where=at)
        version = optional_text(item.get("ShortVersion"), what="ShortVersion", where=at) or optional_text(
            item.get("Version"), what="Version", where=at
        )
        identifier = optional_text(
            item.get("Identifier"), what="Identifier", where=at, limit=MAX_ID_CHARS, identifier=True
        )
        evidence: Literal["display_name"] | None = None
        if identifier is None:
            if name is None:
                raise CollectorInputError(f"{at}: neither Identifier nor Name")
            identifier = known_apps.lookup(name, platform) or f"name:{name}"
            identifier = check_text(
                identifier, what="name-derived id", where=at, limit=MAX_ID_CHARS, identifier=True
            )
            evidence = "display_name"
        if item.get("Installing") is True:
            installing += 1
        apps.append(App(id=identifier, name=name, version=version, source=SOURCE, evidence=evidence))
    facts: dict[str, object] = {"installing": installing}
    udid = root.get("UDID")
    if isinstance(udid, str) and udid:
        facts["udid"] = check_text(udid, what="UDID", where=where, limit=200)
    enrollment = root.get("EnrollmentID")  # Apple User Enrolment names the enrolment, not the device
    if isinstance(enrollment, str) and enrollment:
        facts["enrollment_id"] = check_text(enrollment, what="EnrollmentID", where=where, limit=200)
    return apps, facts


class IosMdmCollector(Collector):
    """An MDM ``InstalledApplicationList`` response. Options: ``from_file`` (required), ``platform``
    (``ios``, or ``macos`` for a Mac's response)."""

    name = "ios-mdm"

    def __init__(
        self, *, from_file: str | os.PathLike[str] | None = None, platform: Literal["ios", "macos"] = "ios"
    ) -> None:
        if from_file is None:
            raise CollectorInputError(
                "ios-mdm: needs the saved InstalledApplicationList response (--from FILE)"
            )
        if platform not in ("ios", "macos"):
            raise CollectorInputError(f"ios-mdm: platform must be ios or macos, not {platform!r}")
        self.from_file = Path(from_file)
        self.platform: Literal["ios", "macos"] = platform

    def collect(self) -> Inventory:
        where = input_name(self.from_file)
        apps, facts = parse_installed_application_list(
            read_input_bytes(self.from_file), where=where, platform=self.platform
        )
        # Under Apple User Enrolment (a personal device: the response has an EnrollmentID, no UDID) the
        # device answers with the managed apps only: a banned app, on the personal side, is not in the
        # list, and each rule that applies is reported as not checked, never passed.
        not_listed = ("unmanaged-apps",) if "enrollment_id" in facts else ()
        return self.inventory(self.platform, apps, facts=facts, not_listed=not_listed)
