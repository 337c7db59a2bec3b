"""``pyagent impact`` for a person: the summary line and the devices behind it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyagent.errors import and_more
from pyagent.fleet.impact import Impact
from pyagent.fleet.summary import UNKNOWN_ORG

LISTED = 50
"""Devices listed per kind in the text output; the JSON has them all."""


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _entries(sign: str, entries: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{sign}{e['rule']} {e['app_id']}" + (f" ({e['exemption']})" if "exemption" in e else "")
        for e in entries
    )


def _why(change: dict[str, Any], *, kinds: tuple[str, ...]) -> str:
    parts = []
    for kind in kinds:
        added = _entries("+", change[f"{kind}_added"])
        removed = _entries("-", change[f"{kind}_removed"])
        altered = ", ".join(
            f"~{e['rule']} {e['app_id']}"
            + (f" {e['exemption']}" if "exemption" in e else "")
            + f" ({', '.join(_field_change(k, v) for k, v in e['changed'].items())})"
            for e in change.get(f"{kind}_changed", [])
        )
        found = "; ".join(p for p in (added, removed, altered) if p)
        if found:
            parts.append(found if kind == "violations" else f"{kind} {found}")
    return "".join(f"; {p}" for p in parts)


#: Fields shown as ``name A -> B``; any other (a remediation: a sentence) by its name only.
_SHOWN_FIELDS = frozenset({"effective_from", "enforcement", "reason", "scope", "ban", "until"})


def _field_change(name: str, values: list[Any]) -> str:
    return f"{name} {values[0]} -> {values[1]}" if name in _SHOWN_FIELDS else f"{name} changed"


def _verdict(change: dict[str, Any]) -> str:
    before, after = change["before"]["allow"], change["after"]["allow"]
    if before != after:
        return "allow->deny" if before else "deny->allow"
    return "changed"


def impact_text(impact: Impact) -> list[str]:
    """The summary line and the devices behind it, for a person (untrusted text not yet escaped)."""
    s = impact.summary
    head = (
        f"{_plural(s.devices, 'device', 'devices')}: "
        f"{_plural(s.changed, 'decision changes', 'decisions change')}, "
        f"{s.flipped_to_deny} flip to deny, {s.flipped_to_allow} flip to allow, "
        + (f"{s.candidate_errors} the candidate cannot decide, " if s.candidate_errors else "")
        + (f"{s.baseline_errors} only the candidate decides, " if s.baseline_errors else "")
        + f"{s.warnings_changed} with only warnings changed, "
        + (f"{s.exemptions_changed} with exemptions changed, " if s.exemptions_changed else "")
        + f"{s.invalid} invalid"
        + (f", {s.undecided} undecided" if s.undecided else "")
        + (" (not compared)" if s.invalid or s.undecided else "")
    )
    lines = [head]
    sections: list[tuple[list[dict[str, Any]], Callable[[dict[str, Any]], str]]] = [
        (
            impact.changes,
            lambda c: (
                f"{_who(c)}: {_verdict(c)}{_why(c, kinds=('violations', 'exempted', 'warnings'))}"
                + _errors(c["before"]["errors"], c["after"]["errors"])
                + _decided_now(c)
            ),
        ),
        (impact.warning_changes, lambda c: f"{_who(c)}: warnings only{_why(c, kinds=('warnings',))}"),
        (impact.exemption_changes, lambda c: f"{_who(c)}: exemptions changed{_why(c, kinds=('exempted',))}"),
        (impact.not_compared, _not_compared),
    ]
    for records, line in sections:
        lines.extend(f"  {line(record)}" for record in records[:LISTED])
        if len(records) > LISTED:
            lines.append(f"  ... and {len(records) - LISTED} more (use --format json)")
    return lines


def _errors(before: list[Any], after: list[Any]) -> str:
    """Why a decision could not be made, when that is part of the change."""
    if after and after != before:
        return f"; error: {_first_error(after)}"
    if before and not after:
        return f"; no longer: {_first_error(before)}"
    return ""


def _decided_now(change: dict[str, Any]) -> str:
    """What the candidate finds where the baseline could not decide (its rules and apps: no entry
    was added or removed, as nothing was weighed before)."""
    before, after = change["before"], change["after"]
    if before["errors"] and not after["errors"] and after["violations"]:
        return f"; now: {_entries('', after['violations'])}"
    return ""


def _who(record: dict[str, Any]) -> str:
    return f"{record['device_id'] or record['source']} ({record['organization'] or UNKNOWN_ORG})"


def _not_compared(record: dict[str, Any]) -> str:
    """Why a device was not compared: the candidate's first error, and the baseline's when it is of
    another kind (not only worded otherwise, as an unknown organisation's list of the known ones)."""
    line = f"{record['source']}: {record['status']}: {_first_error(record['errors'])}"
    if _kinds(record["baseline_errors"]) != _kinds(record["errors"]):
        line += f"; baseline: {_first_error(record['baseline_errors'])}"
    return line


def _kinds(errors: list[Any]) -> list[tuple[str, str]]:
    return sorted(
        {(str(e.get("code")), str(e.get("path"))) if isinstance(e, dict) else ("", str(e)) for e in errors}
    )


def _first_error(errors: list[Any]) -> str:
    first = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
    text = str(first.get("message", first)) + (f" (at {first['path']})" if first.get("path") else "")
    return text + and_more(len(errors) - 1, "error")
