"""When bans come into force: every organisation's rules, from the policy data in the bundle."""

from __future__ import annotations

from typing import Any

from pyagent.engines.base import EngineName, EngineSettings
from pyagent.engines.select import resolve


def rules_timeline(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per organisation rule (inherited rules listed under their owner), by date."""
    entries = []
    for org, definition in (data.get("pyagent", {}).get("organizations") or {}).items():
        for rule_id, rule in (definition.get("rules") or {}).items():
            entries.append(
                {
                    "organization": org,
                    "rule": f"{org}/{rule_id}",
                    "ban": rule.get("ban"),
                    "scopes": list(rule.get("scopes") or []),
                    "effective_from": rule.get("effective_from"),
                    "enforcement": rule.get("enforcement", "deny"),
                    "inherited_by": sorted(
                        o
                        for o, d in data["pyagent"]["organizations"].items()
                        if org in (d.get("inherits") or [])
                    ),
                }
            )
    return sorted(entries, key=lambda e: (e["effective_from"] or "", e["rule"]))


def policy_timeline(settings: EngineSettings) -> list[dict[str, Any]]:
    """The timeline of the policy the embedded engine uses; empty for a remote OPA (its data is its own)."""
    if resolve(settings) is not EngineName.EMBEDDED or not settings.bundle:
        return []
    from pyagent.engines.wasm.bundle import read_bundle
    from pyagent.policy.data import load_overlay, merge

    bundle = read_bundle(settings.bundle)
    return rules_timeline(merge(bundle.data, [load_overlay(p) for p in settings.data_files]))
