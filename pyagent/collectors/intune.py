"""Microsoft Intune: a Graph ``detectedApps`` export for one device.

Input: the JSON body of ``GET /deviceManagement/managedDevices/{id}/detectedApps`` (an object whose
``value`` is the list of ``detectedApp`` resources), or that list alone. A ``detectedApp`` has ``id`` (an
Intune-generated identifier, not the app's), ``displayName``, ``version``, ``sizeInByte``,
``deviceCount``, ``publisher`` and ``platform`` (``detectedAppPlatformType``).

Detected apps carry display names, not package identifiers. Each name is looked up in
:mod:`~pyagent.collectors.known_apps` for the device's platform. On Windows, Intune lists a Store app
under its package's name (``Microsoft.WindowsCalculator``, ``BytedancePte.Ltd.TikTok``), which is the
first part of the identifier the policy matches (``Name_PublisherHash``): a name of that shape is taken
as the id. Any other unknown name gives the id ``name:<displayName>``, so nothing is dropped. Every app
is marked ``evidence: display_name``.

The device platform comes from the entries' ``platform``; entries of several platforms are refused, and
``unknown`` entries take the platform of the others (or the ``platform`` option). An export that still has
an ``@odata.nextLink`` is one page of many and is refused: the other pages' apps would be missing. So
is the tenant's list (``GET /deviceManagement/detectedApps``, told by its ``@odata.context``): it holds
every device's apps, and would ban one device for another's.

An Android work profile's export (``androidWorkProfile``) lists the work profile's apps only: Intune
cannot see the rest of the phone. Nor does Intune list a personally owned device's unmanaged apps
(Graph's ``detectedApp`` lists those for corporate-owned devices alone).
The report says so (``collector.not_listed: ["unmanaged-apps"]``, for a personal device once its
ownership is known), so that a ban that applies to the device is reported as not checked rather
than passed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import get_args

from pyagent.collectors import known_apps
from pyagent.collectors.base import (
    MAX_ID_CHARS,
    App,
    Collector,
    CollectorInputError,
    Inventory,
    Platform,
    check_text,
    clip,
    optional_text,
)
from pyagent.collectors.files import decode_text, input_name, load_json, read_input_bytes

SOURCE = "intune"
GRAPH_PLATFORMS: dict[str, Platform | None] = {
    "unknown": None,
    "windows": "windows",
    "windowsMobile": "windows",
    "windowsHolographic": "windows",
    "ios": "ios",
    "macOS": "macos",
    "chromeOS": None,
    "androidOSP": "android",
    "androidDeviceAdministrator": "android",
    "androidWorkProfile": "android",
    "androidDedicatedAndFullyManaged": "android",
    "unknownFutureValue": None,
}
"""``detectedAppPlatformType`` members (Graph v1.0) and the report platform each means (None: can't tell)."""
UNSUPPORTED = frozenset({"chromeOS"})
#: The ``@odata.context`` fragment of ``GET /deviceManagement/detectedApps``: the apps of every device
#: (each with its ``deviceCount``), where one device's list is ``managedDevices('{id}')/detectedApps``.
_TENANT_LIST = re.compile(r"deviceManagement/detectedApps(?:\(|/|$)")
#: A Windows package name (dotted, no spaces: ``Publisher.App``), bare or as a family or full name.
_WINDOWS_PACKAGE = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?:_[A-Za-z0-9._~-]+)?")


def _entries(data: object, *, where: str) -> list[object]:
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise CollectorInputError(f"{where}: not a Graph detectedApps export (expected an object or array)")
    if "@odata.nextLink" in data:
        raise CollectorInputError(
            f"{where}: has @odata.nextLink, so it is one page of a longer list; export every page"
        )
    context = data.get("@odata.context")
    if isinstance(context, str) and _TENANT_LIST.match(context.partition("#")[2]):
        raise CollectorInputError(
            f"{where}: @odata.context says this is the tenant's detectedApps list, every device's apps; "
            "export one device's: /deviceManagement/managedDevices/{id}/detectedApps"
        )
    value = data.get("value")
    if not isinstance(value, list):
        raise CollectorInputError(f"{where}: no `value` array; not a Graph detectedApps export")
    return value


def parse_detected_apps(
    text: str, *, where: str, platform: Platform | None = None
) -> tuple[Platform, list[App], dict[str, object]]:
    """(platform, apps, facts) from a Graph ``detectedApps`` export."""
    if platform is not None and platform not in get_args(Platform):
        raise CollectorInputError(f"intune: unknown platform {platform!r}")
    entries = _entries(load_json(text, where=where), where=where)
    if not entries:  # Intune lists what it detected: none is an export that failed, or a page of nothing
        raise CollectorInputError(
            f"{where}: no detectedApps, and a device reported with no apps would be compliant"
        )
    rows: list[tuple[str, str | None, str | None]] = []  # (displayName, version, graph platform)
    graph_platforms: set[str] = set()
    for index, entry in enumerate(entries):
        at = f"{where}: value[{index}]"
        if not isinstance(entry, dict):
            raise CollectorInputError(f"{at}: not a detectedApp object")
        name = check_text(entry.get("displayName"), what="displayName", where=at)
        if not name.strip():  # (it would become the id "name:", naming no app)
            raise CollectorInputError(f"{at}: displayName is blank")
        version = optional_text(entry.get("version"), what="version", where=at)
        kind = entry.get("platform")
        if kind is not None:
            if not isinstance(kind, str) or kind not in GRAPH_PLATFORMS:
                raise CollectorInputError(f"{at}: unknown detectedApp platform {clip(str(kind))}")
            if kind in UNSUPPORTED:
                raise CollectorInputError(f"{at}: platform {kind} is not one pyagent reports on")
            graph_platforms.add(kind)
        rows.append((name, version, kind))
    mapped = {GRAPH_PLATFORMS[kind] for kind in graph_platforms} - {None}
    if len(mapped) > 1:
        raise CollectorInputError(
            f"{where}: apps of several platforms ({', '.join(sorted(graph_platforms))}); "
            "export one device at a time"
        )
    device_platform: Platform | None = next(iter(mapped)) if mapped else None
    if platform is not None and device_platform is not None and platform != device_platform:
        raise CollectorInputError(f"{where}: the apps are {device_platform} apps, not {platform}")
    device_platform = device_platform or platform
    if device_platform is None:
        raise CollectorInputError(f"{where}: no entry tells the platform; name the platform (--platform)")
    apps: list[App] = []
    for index, (name, version, _) in enumerate(rows):
        app_id = known_apps.lookup(name, device_platform)
        if app_id is None:
            package = device_platform == "windows" and _WINDOWS_PACKAGE.fullmatch(name)
            app_id = name if package else f"name:{name}"
        at = f"{where}: value[{index}]"
        app_id = check_text(app_id, what="name-derived id", where=at, limit=MAX_ID_CHARS, identifier=True)
        apps.append(App(id=app_id, name=name, version=version, source=SOURCE, evidence="display_name"))
    facts: dict[str, object] = {"graph_platforms": sorted(graph_platforms), "detected_apps": len(rows)}
    return device_platform, apps, facts


class IntuneCollector(Collector):
    """A Graph ``detectedApps`` export. Options: ``from_file`` (required), ``platform`` (when no entry
    tells it)."""

    name = "intune"

    def __init__(
        self, *, from_file: str | os.PathLike[str] | None = None, platform: Platform | None = None
    ) -> None:
        if from_file is None:
            raise CollectorInputError("intune: needs an exported detectedApps file (--from FILE)")
        self.from_file = Path(from_file)
        self.platform = platform

    def collect(self) -> Inventory:
        where = input_name(self.from_file)
        text = decode_text(read_input_bytes(self.from_file), where=where)
        platform, apps, facts = parse_detected_apps(text, where=where, platform=self.platform)
        kinds = facts["graph_platforms"]
        work_profile = True if isinstance(kinds, list) and "androidWorkProfile" in kinds else None
        # Intune sees inside a work profile only, and lists a personally owned device's managed apps
        # only: the device's own apps, where a banned one would be, are not in the export, and each
        # rule that applies is reported as not checked, never passed.
        not_listed = ("unmanaged-apps",) if work_profile else ()
        return self.inventory(
            platform,
            apps,
            work_profile=work_profile,
            facts=facts,
            not_listed=not_listed,
            managed_only_when_personal=True,
        )
