"""When bans come into force: every organisation's rules, from the policy data in the bundle."""

from __future__ import annotations

from typing import Any

from pyagent.engines.base import EngineName, EngineSettings
from pyagent.engines.select import resolve
from pyagent.policy.index import timestamp_ns


def rules_timeline(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per organisation rule (inherited rules listed under their owner), by date;
    ``inherited_by``: the other organisations the rule is in force for, as the policy resolves them
    (transitively, less those that override it)."""
    from pyagent.policy.orgindex import rules_in_force

    orgs = data.get("pyagent", {}).get("organizations") or {}
    adopters: dict[tuple[str, str], list[str]] = {}
    for name, rules in rules_in_force(orgs).items():
        for owner, rule_id in rules:
            if owner != name:
                adopters.setdefault((owner, rule_id), []).append(name)
    entries = []
    for org, definition in orgs.items():
        for rule_id, rule in (definition.get("rules") or {}).items():
            entries.append(
                {
                    "organization": org,
                    "rule": f"{org}/{rule_id}",
                    "ban": rule.get("ban"),
                    "scopes": list(rule.get("scopes") or []),
                    "effective_from": rule.get("effective_from"),
                    "enforcement": rule.get("enforcement", "deny"),
                    "inherited_by": sorted(adopters.get((org, rule_id), [])),
                }
            )
    return sorted(entries, key=_chronological)


def _chronological(entry: dict[str, Any]) -> tuple[int, int, str, str]:
    """By instant as the policy reads it (``+02:00`` and ``Z`` dates compared as instants), rules in
    force always first and a date no clock reads (the data checks refuse it) last, as written."""
    written = entry["effective_from"]
    ns = timestamp_ns(written)
    rank = 0 if not written else 1 if ns is not None else 2
    return (rank, ns or 0, str(written or ""), entry["rule"])


def policy_timeline(settings: EngineSettings) -> list[dict[str, Any]]:
    """The timeline of the policy the embedded engine uses; empty for a remote OPA (its data is its own)."""
    if resolve(settings) is not EngineName.EMBEDDED or not settings.bundle:
        return []
    from pyagent.engines.wasm.bundle import read_bundle
    from pyagent.policy.data import load_overlay, merge

    bundle = read_bundle(settings.bundle)
    return rules_timeline(merge(bundle.data, [load_overlay(p) for p in settings.data_files]))
