"""Checks of the policy data that a JSON Schema cannot express: references between its parts and
dates as the policy's clock reads them. Each finding is a path in the data and a message."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pyagent.errors import listed
from pyagent.policy.index import timestamp_ns
from pyagent.policy.yamlload import DocPath
from pyagent.timeutil import OPA_FIRST, OPA_LAST, is_rfc3339

Issue = tuple[DocPath, str]
ROOT: DocPath = ("pyagent",)


def objects(value: object) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (key, object) members of ``value`` that are objects (the schema reports the others)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict):
                yield key, item


def cross_check(pyagent: Mapping[str, Any]) -> list[Issue]:
    """Every reference and date mistake in ``data.pyagent``."""
    bans = pyagent.get("bans")
    bans = bans if isinstance(bans, dict) else {}
    orgs = dict(objects(pyagent.get("organizations")))
    issues: list[Issue] = []
    for name, org in orgs.items():
        here = (*ROOT, "organizations", name)
        inherits = org.get("inherits", [])
        for i, parent in enumerate(inherits if isinstance(inherits, list) else []):
            if isinstance(parent, str) and parent not in orgs:
                message = f"inherits unknown organisation {parent!r}{_known(orgs)}"
                issues.append(((*here, "inherits", i), message))
        for rule_id, rule in objects(org.get("rules")):
            at = (*here, "rules", rule_id)
            ban = rule.get("ban")
            if isinstance(ban, str) and ban not in bans:
                issues.append(((*at, "ban"), f"rule names unknown ban {ban!r}{_known(bans)}"))
            issues += _time(rule, "effective_from", at)
    issues += _cycles(orgs)
    for ex_id, ex in objects(pyagent.get("exemptions")):
        at = (*ROOT, "exemptions", ex_id)
        owner = ex.get("organization")
        if isinstance(owner, str) and owner not in orgs:
            message = f"exemption names unknown organisation {owner!r}{_known(orgs)}"
            issues.append(((*at, "organization"), message))
        ban = ex.get("ban")
        if isinstance(ban, str) and ban not in bans:
            issues.append(((*at, "ban"), f"exemption names unknown ban {ban!r}{_known(bans)}"))
        issues += _time(ex, "until", at)
    return issues


#: Names listed after "known:"; past them, how many more there are.
KNOWN_LISTED = 12


def _known(names: Mapping[str, Any]) -> str:
    return f"; known: {listed(sorted(names)[:KNOWN_LISTED], len(names))}" if names else "; none is defined"


def _time(holder: Mapping[str, Any], key: str, at: DocPath) -> list[Issue]:
    """A timestamp the policy's clock cannot read (no zone, a 30 February, a 25th hour)."""
    value = holder.get(key)
    if isinstance(value, str) and timestamp_ns(value) is None:
        if is_rfc3339(value):
            return [
                ((*at, key), f"{value!r} is outside the instants OPA can read ({OPA_FIRST} to {OPA_LAST})")
            ]
        example = "2023-03-15T00:00:00Z"
        return [((*at, key), f"{value!r} is not an RFC 3339 timestamp with a zone, e.g. {example}")]
    return []


def _cycles(orgs: Mapping[str, Mapping[str, Any]]) -> list[Issue]:
    """One issue per inheritance cycle, at the first organisation of the cycle (in name order)."""
    edges = {
        name: [p for p in org.get("inherits", []) if isinstance(p, str) and p in orgs]
        for name, org in orgs.items()
        if isinstance(org.get("inherits", []), list)
    }
    issues: list[Issue] = []
    seen: set[frozenset[str]] = set()
    for start in sorted(edges):
        cycle = _cycle_from(start, edges)
        if cycle and frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            message = "inheritance cycle: " + " -> ".join([*cycle, cycle[0]])
            issues.append(((*ROOT, "organizations", start, "inherits"), message))
    return issues


def _cycle_from(start: str, edges: Mapping[str, list[str]]) -> list[str] | None:
    """The organisations of a cycle through ``start``, in inheritance order, or None."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        name, trail = stack.pop()
        for parent in edges.get(name, []):
            if parent == start:
                return trail
            if parent not in visited:
                visited.add(parent)
                stack.append((parent, [*trail, parent]))
    return None


def overlay_overrides(base: Mapping[str, Any], merged: Mapping[str, Any]) -> list[Issue]:
    """Rules in force in ``base`` (``data.pyagent``) that ``merged`` (with an overlay) overrides by a
    rule of the same id lower in an organisation's chain: the overlay would change the policy (drop a
    ban), where an overlay only adds to it. Each is named at the overriding rule, once."""
    from pyagent.policy.orgindex import rules_in_force, rules_overridden

    before = {
        name: set(rules) for name, rules in rules_in_force(dict(objects(base.get("organizations")))).items()
    }
    found: dict[DocPath, str] = {}
    for name, dropped in rules_overridden(dict(objects(merged.get("organizations")))).items():
        for owner, rule_id, by in dropped:
            if (owner, rule_id) in before.get(name, set()):
                found[(*ROOT, "organizations", by, "rules", rule_id)] = (
                    f"overrides the rule {owner}/{rule_id} that {by} inherits: an overlay adds to the "
                    "policy, it cannot replace a rule (edit the policy's data, and bump its revision)"
                )
    return list(found.items())
