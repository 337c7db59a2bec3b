"""What a policy change would change: both policy versions over the same devices at the same time.

A policy version is a directory: either a policy root with ``rego/`` and ``data/`` inside (like
this repository's ``policies/``), or a single directory of Rego and data files. Each is checked and
compiled as ``check --policy`` does it (:func:`pyagent.policy.compiled.compile_policy`) and decided
by the embedded engine.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyagent.errors import InvalidInputError
from pyagent.fleet.summary import UNKNOWN_ORG, RepeatedIds, device_status


def compile_version(directory: str, name: str) -> Path:
    """One policy version compiled as ``check --policy`` compiles it (its data checked, the ban index
    built, cached until its files change): a version ``policy bundle`` would refuse (a data mistake,
    Rego that does not compile) is exit 2 naming the option, never a preview of a policy that can
    never be published."""
    from pyagent.policy.compiled import compile_policy
    from pyagent.policy.datacheck import PolicyDataError

    try:
        return compile_policy(directory)
    except PolicyDataError as err:
        raise PolicyDataError([f"--{name}: {problem}" for problem in err.problems]) from None
    except InvalidInputError as err:
        raise InvalidInputError(f"--{name}: {err.message}") from None


#: What a violation says that a policy change can change: where it applies, since when, and what the
#: device is told to do (its message is worded from these and the ban's title).
_VIOLATION_FIELDS = ("rule", "ban", "app_id", "scope", "effective_from", "remediation")
#: A warning's too, and why it is one: not in force yet, or a rule that warns (its enforcement; a rule
#: not in force yet that will deny once in force, or only warn, is a change to show before the date).
_WARNING_FIELDS = ("rule", "ban", "app_id", "reason", "enforcement", "scope", "effective_from", "remediation")


def _brief(device: dict[str, Any]) -> dict[str, Any]:
    return {
        "allow": device["allow"],
        "violations": [{k: v.get(k) for k in _VIOLATION_FIELDS} for v in device["violations"]],
        "warnings": [{k: w.get(k) for k in _WARNING_FIELDS} for w in device["warnings"]],
        "errors": device["errors"],
    }


def _decisive(brief: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a decision: allow, violations and errors (warnings alone change no decision)."""
    return brief["allow"], brief["violations"], brief["errors"]


_ENTRY = ("rule", "app_id")


def _delta(
    before: Iterable[dict[str, Any]], after: Iterable[dict[str, Any]], fields: tuple[str, ...] = _ENTRY
) -> tuple[list[Any], list[Any]]:
    """Entries added and removed, told apart and given by ``fields``, sorted."""
    old, new = ({tuple(e[f] for f in fields) for e in entries} for entries in (before, after))
    return (
        [dict(zip(fields, key, strict=True)) for key in sorted(new - old)],
        [dict(zip(fields, key, strict=True)) for key in sorted(old - new)],
    )


def _altered(
    before: Iterable[dict[str, Any]], after: Iterable[dict[str, Any]], key: tuple[str, ...] = _ENTRY
) -> list[dict[str, Any]]:
    """Entries on both sides (the same ``key``: rule and app) whose other fields differ: each given by
    its key, with the fields that changed, ``[before, after]``, sorted."""
    old = {tuple(e[k] for k in key): e for e in before}
    found = []
    for entry in after:
        earlier = old.get(tuple(entry[k] for k in key))
        if earlier is not None and earlier != entry:
            fields = {k: [earlier.get(k), entry.get(k)] for k in entry if earlier.get(k) != entry.get(k)}
            found.append({**{k: entry[k] for k in key}, "changed": fields})
    return sorted(found, key=lambda e: tuple(e[k] for k in key))


def _waivers(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exempted breaches as (rule, app_id, exemption id) and what their exemption says."""
    return [
        {"rule": e["rule"], "app_id": e["app_id"], "exemption": str(waiver.get("id"))}
        | {k: waiver.get(k) for k in _EXEMPTION_FIELDS}
        for e in entries
        if isinstance(waiver := e.get("exemption") or {}, dict)
    ]


#: An exempted breach: which rule and app, and the exemption that waives it.
_WAIVED = (*_ENTRY, "exemption")
#: What an exemption says that a policy change can change, besides which one waives the breach.
_EXEMPTION_FIELDS = ("until", "reason", "approved_by")


def _exemptions(
    before: Iterable[dict[str, Any]], after: Iterable[dict[str, Any]]
) -> tuple[list[Any], list[Any]]:
    """Exempted breaches (rule, app_id, exemption id) added and removed, sorted: why a violation went."""
    return _delta(_waivers(before), _waivers(after), _WAIVED)


@dataclass
class ImpactSummary:
    devices: int = 0
    flipped_to_deny: int = 0
    flipped_to_allow: int = 0
    changed: int = 0
    warnings_changed: int = 0
    #: decisions that stay while what waives them changes (another exemption, a new ``until``)
    exemptions_changed: int = 0
    #: changed decisions that only one version could make: the baseline's (the candidate's has errors:
    #: a broken rule, a dropped organisation), or the candidate's; their violations count in no ban
    candidate_errors: int = 0
    baseline_errors: int = 0
    invalid: int = 0
    undecided: int = 0
    by_organization: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_ban: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def as_dict(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "flipped_to_deny": self.flipped_to_deny,
            "flipped_to_allow": self.flipped_to_allow,
            "changed": self.changed,
            "warnings_changed": self.warnings_changed,
            "exemptions_changed": self.exemptions_changed,
            "candidate_errors": self.candidate_errors,
            "baseline_errors": self.baseline_errors,
            "invalid": self.invalid,
            "undecided": self.undecided,
            "by_organization": {k: dict(sorted(v.items())) for k, v in sorted(self.by_organization.items())},
            "by_ban": {k: dict(sorted(v.items())) for k, v in sorted(self.by_ban.items())},
        }

    def exit_code(self) -> int:
        """0 nothing changes and every device was compared; 1 some decision changes, or some device
        could not be compared (invalid or undecided, as ``fleet`` counts them); 3 not one decision."""
        if self.devices == 0:
            raise InvalidInputError("no reports found in the inventories given")
        if self.undecided and self.undecided + self.invalid == self.devices:
            return 3
        return 1 if self.changed or self.invalid or self.undecided else 0


@dataclass
class Impact:
    """Every device's comparison, counted into :attr:`summary`; the devices worth listing kept.

    ``changes``: decisions that change (CONTRACT section 3); ``warning_changes``: devices whose
    warnings alone change; ``exemption_changes``: devices whose decision stays while what waives its
    breaches changes (a reviewer of a waiver swapped or extended is told); ``not_compared``: devices
    that neither version can decide (an invalid report; an unknown organisation to both), counted as
    ``fleet`` counts the candidate's result and never as "no change", with the errors of each
    (``errors``, ``baseline_errors``)."""

    summary: ImpactSummary = field(default_factory=ImpactSummary)
    changes: list[dict[str, Any]] = field(default_factory=list)
    warning_changes: list[dict[str, Any]] = field(default_factory=list)
    exemption_changes: list[dict[str, Any]] = field(default_factory=list)
    not_compared: list[dict[str, Any]] = field(default_factory=list)
    ids: RepeatedIds = field(default_factory=RepeatedIds)

    def add(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        self.ids.note(after)
        summary = self.summary
        b, a = _brief(before), _brief(after)
        if b["errors"] and a["errors"]:
            # No decision under either version: nothing to compare, whatever each one's errors say (an
            # unknown organisation's message lists the known ones, which a new organisation changes).
            summary.devices += 1
            status = device_status(after)
            setattr(summary, status, getattr(summary, status) + 1)
            self.not_compared.append(
                {
                    "device_id": after.get("device_id") or before.get("device_id"),
                    "organization": after.get("organization"),
                    "source": after.get("source"),
                    "status": status,
                    "errors": a["errors"],
                    "baseline_errors": b["errors"],
                }
            )
            return
        change = compare(before, after, summary)
        if change is not None:
            self.changes.append(change)
            return
        self._waivers_of(before, after)
        if b != a:
            added, removed = _delta(before["warnings"], after["warnings"])
            org = after.get("organization") or UNKNOWN_ORG
            self.warning_changes.append(
                {
                    "device_id": after.get("device_id"),
                    "organization": org,
                    "source": after.get("source"),
                    "warnings_added": added,
                    "warnings_removed": removed,
                    "warnings_changed": _altered(b["warnings"], a["warnings"]),
                }
            )

    def _waivers_of(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """A decision that stays: listed under ``exemption_changes`` when what waives it changes."""
        added, removed = _exemptions(before.get("exempted", []), after.get("exempted", []))
        altered = _altered(_waivers(before.get("exempted", [])), _waivers(after.get("exempted", [])), _WAIVED)
        if added or removed or altered:
            self.summary.exemptions_changed += 1
            self.exemption_changes.append(
                {
                    "device_id": after.get("device_id"),
                    "organization": after.get("organization") or UNKNOWN_ORG,
                    "source": after.get("source"),
                    "exempted_added": added,
                    "exempted_removed": removed,
                    "exempted_changed": altered,
                }
            )

    def as_dict(self, evaluated_at: str) -> dict[str, Any]:
        return {
            "summary": self.summary.as_dict(),
            "evaluated_at": evaluated_at,
            "changes": self.changes,
            "warning_changes": self.warning_changes,
            "exemption_changes": self.exemption_changes,
            "not_compared": self.not_compared,
        }


_NO_ENTRIES: dict[str, list[Any]] = {"violations": [], "warnings": [], "exempted": []}


def compare(before: dict[str, Any], after: dict[str, Any], summary: ImpactSummary) -> dict[str, Any] | None:
    """The change for one device (None when its decision stays), counted into ``summary``."""
    summary.devices += 1
    b, a = _brief(before), _brief(after)
    if _decisive(b) == _decisive(a):
        if b != a:
            summary.warnings_changed += 1
        return None
    summary.changed += 1
    org = after.get("organization") or before.get("organization") or UNKNOWN_ORG
    if b["allow"] and not a["allow"]:
        summary.flipped_to_deny += 1
        summary.by_organization[org]["flipped_to_deny"] += 1
    elif a["allow"] and not b["allow"]:
        summary.flipped_to_allow += 1
        summary.by_organization[org]["flipped_to_allow"] += 1
    summary.by_organization[org]["changed"] += 1
    if a["errors"] or b["errors"]:
        # No decision on one side: nothing was weighed there, so no entry was added or removed (the
        # before and after say what each side gave), and no ban counts it.
        summary.candidate_errors += bool(a["errors"]) and not b["errors"]
        summary.baseline_errors += bool(b["errors"]) and not a["errors"]
        before, after = {**before, **_NO_ENTRIES}, {**after, **_NO_ENTRIES}
    added, removed = _delta(before["violations"], after["violations"])
    bans_of = {(e["rule"], e["app_id"]): e["ban"] for e in [*before["violations"], *after["violations"]]}
    for kind, entries in (("violations_added", added), ("violations_removed", removed)):
        for entry in entries:
            summary.by_ban[bans_of[entry["rule"], entry["app_id"]]][kind] += 1
    altered = [] if a["errors"] or b["errors"] else _altered(b["violations"], a["violations"])
    warnings_added, warnings_removed = _delta(before["warnings"], after["warnings"])
    warnings_altered = [] if a["errors"] or b["errors"] else _altered(b["warnings"], a["warnings"])
    exempted_added, exempted_removed = _exemptions(before.get("exempted", []), after.get("exempted", []))
    return {
        "device_id": after.get("device_id") or before.get("device_id"),
        "organization": org,
        "source": after.get("source"),
        "before": b,
        "after": a,
        "violations_added": added,
        "violations_removed": removed,
        "violations_changed": altered,
        "warnings_added": warnings_added,
        "warnings_removed": warnings_removed,
        "warnings_changed": warnings_altered,
        "exempted_added": exempted_added,
        "exempted_removed": exempted_removed,
    }
