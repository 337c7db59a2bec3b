"""`pyagent policy docs`: the policy data as a Markdown page people can read and review."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyagent.fleet.timeline import rules_timeline
from pyagent.policy.orgindex import rules_by_org


def policy_data(dirs: Sequence[str]) -> dict[str, Any]:
    """The policy data in ``dirs`` (YAML and JSON data files merged, as OPA loads them), read with
    pyagent's strict loaders and checked as ``policy lint`` checks it: a page of data that no build
    takes (a rule of a ban that does not exist, an inheritance cycle) would document a policy that
    never decides (:class:`~pyagent.policy.datacheck.PolicyDataError`)."""
    from pyagent.policy.datacheck import check_dirs

    return _shaped(check_dirs(dirs).data.get("pyagent"))


def bundle_policy_data(path: str | Path) -> dict[str, Any]:
    """The policy data a bundle carries (its ``data.json`` files; a wasm or a rego build), shaped as
    :func:`policy_data`'s: no ``opa`` is needed, and it is exactly the data that bundle decides with,
    under the revision its decisions name (``policy bundle --revision``, else the data's)."""
    from pyagent.engines.wasm.bundle import bundle_data, read_archive, read_members
    from pyagent.errors import InvalidInputError

    label = str(path)
    data = bundle_data(read_members(read_archive(label), label=label), label)
    pyagent = data.get("pyagent")
    if not isinstance(pyagent, dict) or not isinstance(pyagent.get("organizations"), dict):
        # (any other tar.gz: a page of empty tables would say "no bans"; a policy of no organisation
        # yet is documented as such)
        raise InvalidInputError(
            f"{label}: not a policy bundle: no policy data (data.pyagent.organizations) in its data.json"
        )
    build = data.get("pyagent_build")
    revision = build.get("revision") if isinstance(build, dict) else None
    return _shaped(data.get("pyagent"), revision if isinstance(revision, str) else None)


def _shaped(data: object, revision: str | None = None) -> dict[str, Any]:
    pyagent = data if isinstance(data, dict) else {}
    shaped = {key: pyagent.get(key) or {} for key in ("bans", "organizations", "work_apps", "exemptions")}
    return {"pyagent": {**shaped, "revision": revision or pyagent.get("revision", "unversioned")}}


#: How the policy finds banned apps fast: an implementation detail, the same on every page.
INDEX_SECTION = [
    "## How decisions look identifiers up (the ban index)",
    "",
    "Authors edit `bans`, `work_apps` and `organizations` as above; nothing else. The index is an",
    "implementation detail that makes a decision cost the same with 10 or 10,000 banned identifiers:",
    "",
    "- `pyagent policy bundle`, `pyagent check --policy` and the embedded engine (after merging `--data`",
    "  files) build it from the data with one function, `pyagent/policy/index.py`, and ship it as data",
    "  under its own root, `data.pyagent_index`: for each platform, every banned identifier's lookup key",
    "  (the ID; lower-cased on iOS, macOS and Windows; on Windows name and publisher hash) mapped to the",
    "  bans that list it; the shared and each organisation's work apps likewise; and the nanoseconds of",
    "  every `effective_from` and `until` in the data, so that a decision does not parse them again.",
    "- It also resolves each organisation once (`resolved_orgs`, `pyagent/policy/orgindex.py`): the",
    "  chain of organisations it inherits from and its rules in force, an inherited rule overridden by a",
    "  lower one with the same id. A decision reads its organisation's entry by ground key and skips",
    "  resolving the chain and checking its rules for data errors. Only an organisation in which the",
    "  policy would find no error is resolved: every organisation in its chain an object with a list of",
    "  known `inherits` and no cycle, every rule in force naming a ban the index covers, known scopes",
    "  (at least one), a known `enforcement` or none, an RFC 3339 `effective_from` or none and a string",
    "  `remediation` or none. Any other organisation is resolved per decision and its errors reported",
    "  exactly as without the index; a test asks OPA, on organisations built to cover each case, that",
    "  the index resolves exactly the clean ones and resolves them as the policy does. For each rule of",
    "  a resolved organisation it also writes what a breach's message says after the scope",
    "  (`message_tails`: the organisation's title, the rule's date, the ban's reason), the text the",
    "  policy would otherwise write on every decision; a test compares the two.",
    "- The policy looks each app up by ground key (`data.pyagent_index.bans[platform][id]`), which OPA's",
    "  evaluator and the compiled policy answer in one step, instead of indexing every identifier of",
    "  every ban in force on every decision (`lib/matching`, `lib/breaches`, `lib/scopes`, `lib/clock`).",
    "- Without an index (`opa run` or `opa eval` on the raw `policies/` folders), or for a ban or an",
    "  organisation the index does not list, the policy indexes the identifiers itself, as it always",
    "  did: the same decisions, only slower. A Rego test and the engines' differential tests check",
    "  that decisions with and without the index are equal.",
    "- The index carries `digest`, the SHA-256 of the bans (their identifiers and reasons), work apps,",
    "  times and organisations it was built from. Its format is 4: publishing refuses another, and the",
    "  embedded engine refuses a later one (it decides with an index it builds itself over an earlier",
    "  one), so upgrade agents before publishing bundles built by a newer pyagent. An",
    "  index that does not match the data beside it is refused with the reason, never used: by the",
    "  embedded engine when it loads a bundle (exit code 3), by `pyagent server publish`, and by the",
    "  bundle build when a policy directory ships one. Data may not set `pyagent_index` through `--data`",
    "  (overlays hold `pyagent` only), and a signed bundle covers the index with its signature.",
    "  The policy does not recompute the digest per decision (that would cost what the index saves):",
    "  an OPA server trusts the index of the bundle it loaded, so serve OPA bundles that",
    "  `pyagent policy bundle` built and `pyagent server publish` checked, and never hand-write a",
    "  `pyagent_index` file into a policy folder.",
]


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _inherited(orgs: dict[str, Any], owner: str, rule_id: str) -> str:
    """An inherited rule and, when it has one, the date it comes into force (a rule binds an adopter
    from its own ``effective_from``, not from the adoption)."""
    rule = ((orgs.get(owner) or {}).get("rules") or {}).get(rule_id) or {}
    since = rule.get("effective_from")
    return f"{owner}/{rule_id} (from {since})" if since else f"{owner}/{rule_id}"


def render_markdown(data: dict[str, Any]) -> str:
    """Bans, organisations with their rules (own and inherited), and the timeline, as Markdown."""
    pyagent = data["pyagent"]
    orgs: dict[str, Any] = pyagent["organizations"]
    lines = [
        f"# App bans (policy revision {pyagent['revision']})",
        "",
        "## Bans",
        "",
        "| ban | title | reason | platform | identifiers |",
        "|---|---|---|---|---|",
    ]
    for ban_id, ban in sorted(pyagent["bans"].items()):
        for platform, ids in sorted((ban.get("apps") or {}).items()):
            lines.append(
                f"| {ban_id} | {_cell(ban.get('title', ''))} | {_cell(ban.get('reason', ''))} | "
                f"{platform} | {', '.join(f'`{i}`' for i in ids)} |"
            )
    lines += [
        "",
        "## Work apps",
        "",
        "A personal device with one of these installed (or an Android work "
        "profile) is in the scope `personal-with-work-apps` of the organisation that lists it and of "
        "every organisation inheriting from it; the shared list counts for every organisation.",
        "",
        "| list | platform | identifiers |",
        "|---|---|---|",
    ]
    work_lists = [("shared", pyagent.get("work_apps") or {})]
    work_lists += [(org_id, org.get("work_apps") or {}) for org_id, org in sorted(orgs.items())]
    for owner, by_platform in work_lists:
        for platform, ids in sorted(by_platform.items()):
            lines.append(f"| {owner} | {platform} | {', '.join(f'`{i}`' for i in ids)} |")
    lines += ["", "## Organisations", ""]
    resolved = rules_by_org(orgs)
    for org_id, org in sorted(orgs.items()):
        inherits = ", ".join(org.get("inherits") or []) or "nothing"
        lines += [f"### {org_id}: {_cell(org.get('title', org_id))}", "", f"Inherits from: {inherits}.", ""]
        bound, dropped = resolved.get(org_id, ([], []))
        inherited = [_inherited(orgs, owner, rule_id) for owner, rule_id in bound if owner != org_id]
        if inherited:
            lines += [f"Inherited rules: {', '.join(inherited)}.", ""]
        overridden = [f"{owner}/{rid} (by {by}/{rid})" for owner, rid, by in dropped]
        if overridden:
            lines += [f"Inherited rules overridden: {', '.join(overridden)}.", ""]
        rules = org.get("rules") or {}
        if not rules:
            lines += ["No rule of its own.", ""]
            continue
        lines += ["| rule | ban | scopes | effective from | enforcement |", "|---|---|---|---|---|"]
        for rule_id, rule in sorted(rules.items()):
            lines.append(
                f"| {org_id}/{rule_id} | {rule.get('ban')} | {', '.join(rule.get('scopes') or [])} | "
                f"{rule.get('effective_from') or 'always'} | {rule.get('enforcement', 'deny')} |"
            )
        lines.append("")
        own = [(rule_id, rule["reason"]) for rule_id, rule in sorted(rules.items()) if rule.get("reason")]
        lines += [f"Reason of {org_id}/{rule_id}: {_cell(reason)}" for rule_id, reason in own]
        lines += [""] if own else []
    lines += [
        "## When bans come into force",
        "",
        "A rule whose enforcement is `warn` or `dryrun` comes into force as warnings: it denies no device.",
        "",
        "| date | rule | scopes | enforcement | also applies to |",
        "|---|---|---|---|---|",
    ]
    for entry in rules_timeline(data):
        lines.append(
            f"| {entry['effective_from'] or 'always'} | {entry['rule']} | {', '.join(entry['scopes'])} | "
            f"{entry['enforcement']} | {', '.join(entry['inherited_by']) or '-'} |"
        )
    exemptions = pyagent["exemptions"]
    lines += ["", f"## Exemptions ({len(exemptions)})", ""]
    if exemptions:
        lines += [
            "| id | device | organisation | ban | until | reason | approved by |",
            "|---|---|---|---|---|---|---|",
        ]
        for ex_id, ex in sorted(exemptions.items()):
            lines.append(
                f"| {ex_id} | {ex.get('device_id')} | {ex.get('organization')} | {ex.get('ban')} | "
                f"{ex.get('until')} | {_cell(ex.get('reason', ''))} | {_cell(ex.get('approved_by') or '-')} |"
            )
    from pyagent.engines.wasm.builtins import docs_section  # what the embedded engine runs

    return "\n".join([*lines, "", *INDEX_SECTION, "", *docs_section()]) + "\n"
