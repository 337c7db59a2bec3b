"""The dashboard's pages, rendered on the server from the fleet API's answers: the overview, the
device list (filters, cursor paging) and a page per device. Every string from devices or policy data
is escaped; figures carry ``data-metric`` so a test can hold them equal to the API."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyagent.fleet.html_assets import esc, esc_value, fmt_int, percent, stacked_bars
from pyagent.fleet.html_parts import COUNT_COLUMNS, card, counts_table, kpis, metric
from pyagent.server.dashboard.device_facts import chain_text, since_label, verdict_of
from pyagent.server.dashboard.layout import device_link, link
from pyagent.server.query import FLAG_SPELLINGS
from pyagent.server.store.base import NO_ORGANIZATION, Organization
from pyagent.server.store.fleet import UNKNOWN
from pyagent.server.store.rollout import NO_REVISION

NO_ORG_LABEL = "without organisation"
NO_PLATFORM_LABEL = "no platform"
NO_REVISION_LABEL = "no revision"
WITH_STALE = (*COUNT_COLUMNS, ("stale", "Stale"))


def _badge(item: Mapping[str, Any]) -> str:
    if item.get("stale"):
        return '<span class="badge non_compliant">stale</span>'
    verdict = str(item.get("verdict") or "undecided")
    return f'<span class="badge {esc(verdict)}">{esc(verdict.replace("_", "-"))}</span>'


def overview(
    summary: dict[str, Any],
    points: Sequence[dict[str, Any]],
    rollouts: Sequence[dict[str, Any]] | None,
    stale: Sequence[dict[str, Any]],
    *,
    at: str | None,
    organization: Organization,
    organizations: Sequence[str],
    orgless: bool = False,
) -> str:
    """``organizations``: the names to choose from; ``orgless``: offer the devices without one (not a
    name: a box of its own, ``no_organization=true``, never merged with an organisation);
    ``rollouts``: None for a past instant (what each sender runs is known now only)."""
    options = "".join(
        f'<option value="{esc_value(o)}"{" selected" if o == organization else ""}>{esc(o)}</option>'
        for o in organizations
    )
    checked = " checked" if organization is NO_ORGANIZATION else ""
    filters = (
        '<form class="filters" method="get" action="/" autocomplete="off"><label>As of (RFC 3339, empty: now)'
        f'<input name="at" value="{esc(at or "")}" placeholder="2023-03-16T12:00:00Z"></label>'
        '<label>Organisation<select name="organization"><option value="">all</option>'
        f"{options}</select></label>"
        + (
            f'<label><input type="checkbox" name="no_organization" value="true"{checked}> '
            f"{NO_ORG_LABEL}</label>"
            if orgless
            else ""
        )
        + '<button type="submit">Show</button></form>'
    )
    narrowed = NO_ORG_LABEL if organization is NO_ORGANIZATION else organization
    by_org, by_platform = summary["by_organization"], summary["by_platform"]
    trend = [(p["at"][:16].replace("T", " "), p) for p in points]
    # the device list is of current states: its links are offered on the current picture only, for
    # the organisation shown
    lists = None if at else scope_of(organization)
    bans = "".join(
        f'<tr><th scope="row">{_listed(ban, lists, ban=ban)}</th>'
        f"{metric('devices', counts['devices'], ban=ban)}</tr>"
        for ban, counts in summary["by_ban"].items()
    )
    bans_table = (
        '<table><thead><tr><th scope="col">Ban</th><th class="num" scope="col">Devices in violation</th></tr>'
        f"</thead><tbody>{bans}</tbody></table>"
        if bans
        else '<p class="empty">No device violates a ban.</p>'
    )
    return "".join(
        [
            f'<header class="top"><div><h1>Fleet compliance</h1><p class="sub">as of '
            f'<time id="as-of" datetime="{esc(summary["at"])}">{esc(summary["at"])}</time>'
            f"{' · ' + esc(narrowed) if narrowed else ''}</p></div></header>",
            filters,
            kpis(summary, extra=[("stale", "Stale")]),
            '<div class="grid2">',
            card(
                "Compliance over time",
                stacked_bars("chart-history", "Devices per day by compliance", "day", trend),
                counts_table("at", "Instant", dict(trend), WITH_STALE),
                wide=True,
            ),
            card(
                "By organisation",
                stacked_bars(
                    "chart-orgs",
                    "Devices by organisation",
                    "organisation",
                    [(o or NO_ORG_LABEL, c) for o, c in by_org.items()],
                ),
                _org_table(summary["by_organization"], linked=lists is not None),
            ),
            card(
                "By platform",
                stacked_bars(
                    "chart-platforms",
                    "Devices by platform",
                    "platform",
                    [(p or NO_PLATFORM_LABEL, c) for p, c in by_platform.items()],
                ),
                counts_table(
                    "platform",
                    "Platform",
                    summary["by_platform"],
                    WITH_STALE,
                    {
                        p: _listed(p, lists, platform=p) if p != UNKNOWN else NO_PLATFORM_LABEL
                        for p in summary["by_platform"]
                    },
                ),
            ),
            card("By ban", bans_table),
            card("Rollout", _rollouts(rollouts) if rollouts is not None else PAST_ROLLOUT),
            card("Stale devices", _stale(stale, summary["stale"], lists), wide=True),
            "</div>",
        ]
    )


def scope_of(organization: Organization) -> dict[str, str]:
    """The device list's parameters for the organisation shown (none: every device)."""
    if organization is NO_ORGANIZATION:
        return {"no_organization": "true"}
    return {"organization": organization} if isinstance(organization, str) else {}


def _listed(name: str, lists: dict[str, str] | None, **narrowed: str) -> str:
    """``name``, escaped, as a link to the device list narrowed by ``narrowed`` within ``lists``
    (the organisation shown); plain where no list is offered (``lists`` None: a past instant)."""
    if lists is None:
        return esc(name)
    return f'<a href="{link("/devices", **lists, **narrowed)}">{esc(name)}</a>'


def _org_table(by_organization: dict[str, dict[str, int]], *, linked: bool) -> str:
    """The counts per organisation, each linked to its devices when ``linked``; the devices without
    one (key "", which no organisation is named) on a row of their own, labelled as such."""
    heads = {
        name: _listed(name, {} if linked else None, organization=name) for name in by_organization if name
    }
    orgless = f"<em>{NO_ORG_LABEL}</em>"
    if linked:
        orgless = f'<a href="{link("/devices", no_organization="true")}">{orgless}</a>'
    return counts_table("org", "Organisation", by_organization, WITH_STALE, {**heads, "": orgless})


#: The rollout card of a past instant: status messages keep no history (a revision published since
#: was shown as that instant's newest, with today's devices on it).
PAST_ROLLOUT = (
    '<p class="empty" id="rollout-now-only">Rollout is known for now only (status keeps no history): '
    'see <a href="/">the current overview</a>.</p>'
)


def _rollouts(rollouts: Sequence[dict[str, Any]]) -> str:
    if not rollouts:
        return '<p class="empty">No bundle is published.</p>'
    out = []
    for r in rollouts:
        rows = "".join(
            f"<tr><td>{f'<code>{esc(rev)}</code>' if rev != NO_REVISION else NO_REVISION_LABEL}</td>"
            f"{metric('devices', n, bundle=r['bundle'], revision=rev)}</tr>"
            for rev, n in r["by_revision"].items()
        )
        out.append(
            f"<h3>{esc(r['bundle'])} · newest <code>{esc(r['newest']['revision'])}</code>{_builds(r)} on "
            f'<span data-metric="on_newest" data-bundle="{esc(r["bundle"])}" data-value="{r["on_newest"]}">'
            f"{fmt_int(r['on_newest'])}</span> of {fmt_int(r['devices'])} devices "
            f"({percent(r['on_newest'], r['devices'])})</h3>"
            '<table><thead><tr><th scope="col">Active revision</th><th class="num" scope="col">Devices</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>"
            + _failing("Refused the newest:", r["refusals"])
            + _failing("On the newest, with an error:", r["errors_on_newest"])
        )
    return "".join(out)


def _builds(rollout: dict[str, Any]) -> str:
    """Which builds the newest revision holds, when not all, and the newest revision of each other."""
    holds, by_build = rollout["newest"]["builds"], rollout["newest_by_build"]
    older = "".join(
        f"; newest {esc(b)}: <code>{esc(r)}</code>" for b, r in by_build.items() if b not in holds
    )
    return f' <span class="sub">({esc(" and ".join(holds))} build only{older})</span>' if older else ""


def _failing(title: str, senders: Sequence[dict[str, Any]], shown: int = 50) -> str:
    """Senders whose last bundle attempt failed, with their reasons (the first ``shown``, and how many
    more there are: the API lists them all)."""
    items = "".join(
        f"<li>{_sender(s)}: {esc(s.get('code') or '')} {esc(s.get('message') or '')}</li>"
        for s in senders[:shown]
    )
    if len(senders) > shown:
        items += f"<li>and {fmt_int(len(senders) - shown)} more (the API's rollout lists them all)</li>"
    return f'<p>{title}</p><ul class="plain">{items}</ul>' if items else ""


def _sender(refusal: dict[str, Any]) -> str:
    """A device links to its page; an OPA instance (no device page) is named only."""
    name = esc(refusal["instance_id"])
    return f'<a href="{device_link(refusal["instance_id"])}">{name}</a>' if refusal.get("device") else name


def _stale(stale: Sequence[dict[str, Any]], total: int, lists: dict[str, str] | None) -> str:
    """The stale devices listed (the oldest decisions first), out of ``total``: a cut list says so, and
    on the current picture links to all of them (the device list is of current states: a past instant
    has no list to link to)."""
    if not stale:
        return '<p class="empty">Every device decided recently.</p>'
    cut = (
        f'<p class="sub">The {len(stale)} oldest decisions of {total} stale devices.</p>'
        if len(stale) < total
        else ""
    )
    everyone = (
        ""
        if lists is None
        else f'<p><a href="{link("/devices", **lists, stale="true")}">All stale devices</a></p>'
    )
    rows = "".join(
        f'<tr><td><a href="{device_link(d["device_id"])}">{esc(d["device_id"])}</a></td>'
        f"<td>{esc(d.get('organization') or '')}</td><td>{esc(d['decided_at'])}</td></tr>"
        for d in stale
    )
    return (
        f'{cut}<table><thead><tr><th scope="col">Device</th><th scope="col">Organisation</th>'
        f'<th scope="col">Last decision</th></tr></thead><tbody>{rows}</tbody></table>{everyone}'
    )


FILTERS = ("organization", "no_organization", "platform", "compliant", "stale", "ban")
_LABELS = {
    "organization": "Organisation",
    "no_organization": NO_ORG_LABEL.capitalize(),
    "platform": "Platform",
    "compliant": "Compliant",
    "stale": "Stale",
    "ban": "Violates ban",
}
_CHOICES = {"compliant": ("true", "false"), "stale": ("true", "false"), "no_organization": ("true",)}


def _filter_field(name: str, value: str) -> str:
    if name in _CHOICES:
        spelled = FLAG_SPELLINGS.get(value.lower())  # (?stale=1 is stale=true: shown as chosen)
        value = value if spelled is None else "true" if spelled else "false"
        options = "".join(
            f'<option value="{v}"{" selected" if v == value else ""}>{label}</option>'
            for v, label in (("", "any"), ("true", "yes"), ("false", "no"))
            if v in ("", *_CHOICES[name])
        )
        return f'<label>{_LABELS[name]}<select name="{name}">{options}</select></label>'
    return f'<label>{_LABELS[name]}<input name="{name}" value="{esc_value(value)}"></label>'


def device_list(
    devices: Sequence[dict[str, Any]], filters: Mapping[str, str | None], next_cursor: str | None
) -> str:
    fields = "".join(_filter_field(name, filters.get(name) or "") for name in FILTERS)
    rows = "".join(
        f'<tr data-device="{esc(d["device_id"])}"><td><a href="{device_link(d["device_id"])}">'
        f"{esc(d['device_id'])}</a></td><td>{esc(d.get('organization') or '')}</td>"
        f"<td>{esc(d.get('platform') or '')}</td><td>{_badge(d)}</td><td>{esc(' '.join(d['bans']))}</td>"
        f"<td>{esc(d['decided_at'])}</td></tr>"
        for d in devices
    )
    kept = {k: v for k, v in filters.items() if k in (*FILTERS, "limit")}
    pager = f'<a href="{link("/devices", **kept)}" id="first-page">First page</a>'
    if next_cursor:
        following = link("/devices", **kept, cursor=next_cursor)
        pager += f'<a href="{following}" id="next-page" rel="next">Next page</a>'
    return (
        '<h1>Devices</h1><form class="filters" method="get" action="/devices" autocomplete="off">'
        f'{fields}<button type="submit" id="filter">Filter</button></form>'
        '<table id="devices" class="devices"><thead><tr><th scope="col">Device</th>'
        '<th scope="col">Organisation</th>'
        '<th scope="col">Platform</th><th scope="col">Status</th><th scope="col">Bans violated</th>'
        f'<th scope="col">Last decision</th></tr></thead><tbody>{rows}</tbody></table>'
        + ("" if devices else '<p class="empty">No device matches.</p>')
        + f'<div class="pager">{pager}</div>'
    )


def _objects(value: Any, key: str) -> list[Mapping[str, Any]]:
    """``value`` as a list of objects to list: a stored report is kept as the sender gave it (a
    report the policy found invalid is a decision too), so anything else is shown as JSON under
    ``key``."""
    items = value if isinstance(value, list) else [] if value in (None, "", {}) else [value]
    return [item if isinstance(item, dict) else {key: json.dumps(item)} for item in items]


def _entries(title: str, value: Any, *, linked: bool = False) -> str:
    """The decision's entries of one kind; ``linked``: each ban links to the devices violating it."""
    entries = _objects(value, "message")
    if not entries:
        return ""
    rows = "".join(
        f"<tr><td>{esc(e.get('rule'))}</td><td>{_ban_cell(e.get('ban'), linked)}</td>"
        f"<td><code>{esc(e.get('app_id'))}</code></td>"
        f"<td>{esc(e.get('scope'))}</td><td>{esc(e.get('remediation') or e.get('message') or '')}</td></tr>"
        for e in entries
    )
    return (
        f'<h3>{title}</h3><table><thead><tr><th scope="col">Rule</th><th scope="col">Ban</th>'
        '<th scope="col">App</th><th scope="col">Scope</th><th scope="col">Remediation</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _errors(value: Any) -> str:
    """Why the policy found the device's report invalid (or could not decide): its errors."""
    errors = _objects(value, "message")
    rows = "".join(
        f"<tr><td><code>{esc(e.get('code') or '')}</code></td><td>{esc(e.get('message') or '')}</td></tr>"
        for e in errors
    )
    return (
        '<h3>Errors</h3><table id="errors"><thead><tr><th scope="col">Code</th><th scope="col">Message</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else ""
    )


def _ban_cell(ban: Any, linked: bool) -> str:
    """A ban's name; ``linked``: a link to the devices that violate it now."""
    return _listed(ban, {}, ban=ban) if linked and isinstance(ban, str) and ban else esc(ban)


def device_page(device: dict[str, Any], report: Mapping[str, Any] | None) -> str:
    decision = device.get("decision") or {}
    organization, platform = device.get("organization"), device.get("platform")
    listed = {  # links to the devices that share them
        "Organisation": _listed(organization, {}, organization=organization) if organization else "",
        "Platform": _listed(platform, {}, platform=platform) if platform else "",
    }
    facts = [
        ("Device", device["device_id"]),
        ("Organisation", organization),
        ("Platform", platform),
        ("Last decision", device["decided_at"]),
        (since_label(device), device.get("verdict_since")),
        ("Decision id", device["decision_id"]),
        ("Decided by", device["sender"]),
        ("Policy revision", decision.get("policy_revision")),
        ("Last seen", device["last_seen"]),
        ("Decision log chain", chain_text(device.get("chain"))),
    ]
    status = device.get("status") or {}
    for name, info in (status.get("bundles") or {}).items():
        info = info if isinstance(info, dict) else {}
        facts.append(
            (f"Bundle {name}", f"{info.get('active_revision', '')} {info.get('message') or ''}".strip())
        )
    badge = _badge({"stale": device["stale"], "verdict": verdict_of(device)})
    apps = _objects((report or {}).get("apps"), "id")
    app_rows = "".join(
        f"<tr><td><code>{esc(a.get('id'))}</code></td><td>{esc(a.get('name') or '')}</td>"
        f"<td>{esc(a.get('version') or '')}</td></tr>"
        for a in apps[:5000]
    )
    history = "".join(
        f"<tr><td>{esc(h['decided_at'])}</td><td>{esc(h['received_at'])}</td>"
        f"<td>{_badge({'verdict': verdict_of(h)})}</td>"
        f"<td><code>{esc(h['decision_id'])}</code></td><td>{esc(h['sender'])}</td></tr>"
        for h in device["history"]
    )
    return "".join(
        [
            f'<h1 id="device-title">{esc(device["device_id"])} {badge}</h1>',
            '<dl class="facts">',
            *(f"<dt>{esc(k)}</dt><dd>{listed.get(k) or esc(v or '')}</dd>" for k, v in facts),
            "</dl>",
            _errors(decision.get("errors")),
            _entries("Violations", decision.get("violations"), linked=True),
            _entries("Warnings", decision.get("warnings")),
            _entries("Exempted", decision.get("exempted")),
            '<h3>History</h3><table id="history"><thead><tr><th scope="col">Decided at</th>'
            '<th scope="col">Received at</th><th scope="col">Status</th><th scope="col">Decision id</th>'
            '<th scope="col">Sender</th></tr></thead>'
            f"<tbody>{history}</tbody></table>",
            f'<h3>Apps ({fmt_int(len(apps))})</h3><table id="apps"><thead><tr><th scope="col">Id</th>'
            '<th scope="col">Name</th><th scope="col">Version</th></tr></thead>'
            f"<tbody>{app_rows}</tbody></table>",
        ]
    )
