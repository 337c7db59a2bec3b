"""Identifiers in the policy data that no device could ever report, so that a ban or an exemption
naming them would silently match nothing: white space at either end or an invisible character (a
copy from a web page, a trailing space in YAML's quotes), an Android "package name" that is not one
(``package:com.x`` from a ``pm list`` line, a display name), a platform listed with no identifier, a
ban with none at all; and an identifier listed twice in one list. Each is a mistake the author meant
otherwise: the device with the app would pass. Reports are held to the same rule
(:func:`pyagent.report.load.unmatchable_app_ids`)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pyagent.policy.datacheck.crosscheck import ROOT, Issue, objects
from pyagent.policy.yamlload import DocPath
from pyagent.termsafe import first_hidden

#: An Android package name: two or more dot-separated parts of letters, digits and ``_``, each
#: starting with a letter (what the platform's build tools accept); or an id derived from a name
#: (``name:...``), as the Intune collector writes one for an app it cannot name by package.
_ANDROID_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+|name:.+", re.DOTALL)
_ANDROID_EXAMPLE = "com.zhiliaoapp.musically"


def identifier_issues(pyagent: Mapping[str, Any]) -> list[Issue]:
    """Every identifier in ``data.pyagent`` that no device could report (see the module doc)."""
    issues: list[Issue] = []
    for section in ("bans", "organizations", "exemptions"):
        for key in _keys(pyagent.get(section)):
            issues += _unmatchable(key, (*ROOT, section, key), what="name")
    for ban_id, ban in objects(pyagent.get("bans")):
        at = (*ROOT, "bans", ban_id, "apps")
        apps = ban.get("apps")
        if isinstance(apps, dict) and not any(isinstance(ids, list) and ids for ids in apps.values()):
            issues.append((at, "the ban lists no identifier on any platform: it bans nothing"))
        issues += _apps(apps, at)
    issues += _apps(pyagent.get("work_apps"), (*ROOT, "work_apps"))
    for org_id, org in objects(pyagent.get("organizations")):
        issues += _apps(org.get("work_apps"), (*ROOT, "organizations", org_id, "work_apps"))
        for rule_id in _keys(org.get("rules")):
            issues += _unmatchable(rule_id, (*ROOT, "organizations", org_id, "rules", rule_id), what="name")
    for ex_id, ex in objects(pyagent.get("exemptions")):
        device = ex.get("device_id")
        if isinstance(device, str):
            issues += _unmatchable(device, (*ROOT, "exemptions", ex_id, "device_id"), what="device id")
    return issues


def _apps(apps: object, at: DocPath) -> Iterator[Issue]:
    """The mistakes in one ``{platform: [ids]}`` object."""
    if not isinstance(apps, dict):
        return
    for platform, ids in apps.items():
        if not isinstance(ids, list):
            continue  # (the schema says so)
        if not ids:
            yield (*at, platform), "an empty list: list the platform's identifiers, or leave the platform out"
        first: dict[str, int] = {}
        for i, app_id in enumerate(ids):
            if not isinstance(app_id, str):
                continue
            if app_id in first:  # (a copy-paste slip, or an edit meant for another identifier)
                yield (*at, platform, i), f"{app_id!r} is listed already (at index {first[app_id]})"
                continue
            first[app_id] = i
            found = _unmatchable(app_id, (*at, platform, i), what="identifier")
            if not found and platform == "android" and not _ANDROID_PACKAGE.fullmatch(app_id):
                found = [((*at, platform, i), _not_a_package(app_id))]
            yield from found


def _not_a_package(app_id: str) -> str:
    return (
        f"{app_id!r} is not an Android package name (dot-separated parts of letters, digits and _, each "
        f"starting with a letter, e.g. {_ANDROID_EXAMPLE}): no app would match it"
    )


def _unmatchable(text: str, at: DocPath, *, what: str) -> list[Issue]:
    if text.strip() != text:
        return [(at, f"{text!r}: the {what} begins or ends with white space: no device reports it so")]
    hidden = first_hidden(text)
    if hidden is not None:
        code = f"U+{ord(hidden):04X}"
        return [(at, f"{text!r}: the {what} contains {code}, which no tool shows: no device reports it")]
    return []


def _keys(value: object) -> list[str]:
    return [key for key in value if isinstance(key, str)] if isinstance(value, dict) else []
