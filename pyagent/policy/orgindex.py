"""Organisations resolved when the ban index is built: ``data.pyagent_index.resolved_orgs``.

For each organisation whose inheritance chain and rules the policy would find no error in, the index
records what ``policies/rego/pyagent/lib/inheritance`` would resolve on every decision: the chain (the
organisation and every one it inherits from) and the rules in force, keyed ``owner/rule-id``, a rule of
an organisation lower in the chain overriding an inherited one with the same id. The policy reads the
entry by the device's organisation (one ground lookup) and then skips resolving the chain and checking
its rules for data errors, which are a good part of OPA's work per decision.

Only a *clean* organisation is resolved here, judged conservatively: every organisation in its chain is
an object whose ``inherits`` is a list of known organisations without a cycle and whose ``rules`` are
objects; every rule in force names a ban the index covers, has at least one known scope, a known
enforcement (or none), an RFC 3339 ``effective_from`` (or none) and a string ``remediation`` (or none),
and no ``/`` in an organisation's name or a rule's id (the schema forbids it: two rules could share one
``owner/rule-id`` key, which the policy refuses as a conflict).
Anything else is left out, and the policy resolves that organisation per decision and reports its
errors exactly as before. The test suite checks both halves with OPA itself: for every organisation
resolved here the policy's own rules give the same chain and rules and no error.

For each rule of a resolved organisation the index also writes what a breach's message says after the
scope (``message_tails``, ``messages.message_tail``): " devices of <organisation title>[ from
<effective_from>]: <rule or ban reason>", which only the data decides; the test suite compares each
with the text the policy writes itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

#: Scopes and enforcement modes a clean rule may name (``scopes.known``, ``breaches.enforcements``).
KNOWN_SCOPES = frozenset({"corporate", "personal-enrolled", "personal-with-work-apps", "all"})
ENFORCEMENTS = frozenset({"deny", "warn", "dryrun"})


def _edges(orgs: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each well-formed organisation's ``inherits``; a malformed organisation is left out."""
    edges: dict[str, list[str]] = {}
    for name, org in orgs.items():
        if not isinstance(org, dict):
            continue
        inherits = org.get("inherits", [])
        rules = org.get("rules", {})
        if not isinstance(inherits, list) or not all(isinstance(p, str) for p in inherits):
            continue
        if not isinstance(rules, dict) or not all(isinstance(r, dict) for r in rules.values()):
            continue
        edges[name] = inherits
    return edges


def _reachable(edges: Mapping[str, list[str]], start: Collection[str]) -> set[str] | None:
    """``graph.reachable``: the names reachable from ``start`` (``start`` included); None when the walk
    meets a name that is not a well-formed organisation."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in edges:
            return None
        seen.add(name)
        todo.extend(edges[name])
    return seen


def _one_of(value: object, names: Collection[str]) -> bool:
    return isinstance(value, str) and value in names


def _clean_rule(rule: Mapping[str, Any], indexed_bans: Mapping[str, Any], times: Mapping[str, int]) -> bool:
    scopes = rule.get("scopes")
    return (
        isinstance(rule.get("ban"), str)
        and rule["ban"] in indexed_bans
        and _one_of(rule.get("enforcement", "deny"), ENFORCEMENTS)
        and isinstance(scopes, list)
        and len(scopes) > 0
        and all(_one_of(s, KNOWN_SCOPES) for s in scopes)
        and ("effective_from" not in rule or _one_of(rule["effective_from"], times))
        and isinstance(rule.get("remediation", ""), str)
    )


def _text(value: object, fallback: str) -> str:
    """A title or reason as the policy reads it (``ban_field``, ``org_title``): the value when it is a
    string, else the fallback."""
    return value if isinstance(value, str) else fallback


def _message_tail(org: str, title: object, rule: Mapping[str, Any], bans: Mapping[str, Any]) -> str:
    """``messages.message_tail`` of a clean rule: the message after the scope."""
    reason = _text(rule.get("reason"), _text(bans[rule["ban"]].get("reason"), "policy"))
    when = f" from {rule['effective_from']}" if "effective_from" in rule else ""
    return f" devices of {_text(title, org)}{when}: {reason}"


def rules_in_force(orgs: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """For every organisation whose chain the policy can resolve (known ``inherits``, no cycle), the
    ``(owner, rule id)`` of each rule in force for it: its own, and those it inherits transitively that
    no organisation lower in its chain overrides with a rule of the same id. What the policy applies;
    for people (``policy docs``, the fleet page's timeline), not for the index."""
    return {name: kept for name, (kept, _) in rules_by_org(orgs).items()}


def rules_overridden(orgs: Mapping[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    """For the same organisations, each inherited rule that a rule of the same id lower in the chain
    overrides: ``(owner, rule id, overriding owner)``. A ban an author may not know they dropped
    (``policy docs`` names it; a ``--data`` overlay may not do it)."""
    return {name: dropped for name, (_, dropped) in rules_by_org(orgs).items()}


def rules_by_org(
    orgs: Mapping[str, Any],
) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str, str]]]]:
    """Both at once, over one walk of each chain: each resolvable organisation's rules in force
    (:func:`rules_in_force`) and the inherited rules overridden (:func:`rules_overridden`), sorted."""
    edges = _edges(orgs)
    found: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str, str]]]] = {}
    for name in sorted(edges):
        resolved = _chain(edges, name)
        if resolved is None:
            continue
        chain, ancestors = resolved
        rules = sorted((owner, rule_id) for owner in chain for rule_id in orgs[owner].get("rules", {}))
        kept = [rule for rule in rules if not _overridden(orgs, chain, ancestors, *rule)]
        by = {rule_id: owner for owner, rule_id in kept}
        found[name] = (
            kept,
            sorted((owner, rule_id, by[rule_id]) for owner, rule_id in set(rules) - set(kept)),
        )
    return found


def _chain(edges: Mapping[str, list[str]], name: str) -> tuple[set[str], dict[str, set[str]]] | None:
    """``name``'s chain (itself and every organisation it inherits from) and each member's ancestors;
    None when the chain meets an unknown or malformed organisation, or a cycle (the policy reports it)."""
    chain = _reachable(edges, [name])
    if chain is None:
        return None
    ancestors = {member: _reachable(edges, edges[member]) or set() for member in chain}
    if any(member in ancestors[member] for member in chain):
        return None
    return chain, ancestors


def _overridden(
    orgs: Mapping[str, Any], chain: set[str], ancestors: Mapping[str, set[str]], owner: str, rule_id: str
) -> bool:
    """An organisation of the chain below ``owner`` has a rule of the same id."""
    return any(
        other != owner and rule_id in orgs[other].get("rules", {}) and owner in ancestors[other]
        for other in chain
    )


def _resolve(
    name: str,
    orgs: Mapping[str, Any],
    edges: Mapping[str, list[str]],
    bans: Mapping[str, Any],
    times: Mapping[str, int],
) -> dict[str, Any] | None:
    resolved = _chain(edges, name)
    if resolved is None:
        return None
    chain, ancestors = resolved
    rules: dict[str, Any] = {}
    for owner in sorted(chain):
        for rule_id, rule in orgs[owner].get("rules", {}).items():
            if _overridden(orgs, chain, ancestors, owner, rule_id):
                continue
            key = f"{owner}/{rule_id}"
            if not _clean_rule(rule, bans, times) or "/" in owner or "/" in rule_id or key in rules:
                return None  # a "/" in a name can make two rules one key: the policy then fails
            rules[key] = {"owner": owner, "id": rule_id, "rule": rule}
    title = orgs[name].get("title")
    tails = {key: _message_tail(name, title, entry["rule"], bans) for key, entry in rules.items()}
    return {"chain": sorted(chain), "rules": rules, "message_tails": tails}


def resolved_orgs(orgs: object, bans: Mapping[str, Any], times: Mapping[str, int]) -> dict[str, Any]:
    """``{organisation: {"chain": [...], "rules": {...}, "message_tails": {...}}}`` for every clean
    organisation of ``orgs`` (``data.pyagent.organizations``, whatever it holds). ``bans`` maps each ban
    the index covers to its ``{"reason": ...}`` (``index.sources``' ``ban_texts``) and ``times`` holds
    the timestamps the index parsed (``index.build``)."""
    if not isinstance(orgs, dict):
        return {}
    edges = _edges(orgs)
    resolved = {}
    for name in orgs:
        entry = _resolve(name, orgs, edges, bans, times)
        if entry is not None:
            resolved[name] = entry
    return resolved
