"""The fleet run as one self-contained HTML page (``pyagent fleet --format html``).

The page loads nothing: its stylesheet, its script and its SVG charts are inline, and a
Content-Security-Policy with ``default-src 'none'`` (the style and script allowed by their hashes)
keeps it that way. Memory stays flat: every device is counted into the summary as it streams past;
only the devices that need action become table rows, written to a temporary file and copied in
after the summary and the charts.

The figures are machine-checkable and equal to ``--format json``: ``data-metric`` elements (with
``data-value``) for the totals and per organisation, platform, ban and app, and the whole summary
as JSON in ``<script type="application/json" id="fleet-summary">``. Every string from a report or
from policy data is HTML-escaped; JSON embedded in the page has ``<``, ``>`` and ``&`` escaped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import IO, Any

from pyagent import __version__
from pyagent.fleet.html_assets import (
    CSS,
    SCRIPT,
    STATUS_LABELS,
    AppBar,
    app_bars,
    esc,
    fmt_int,
    parse_time,
    percent,
    stacked_bars,
    timeline_chart,
)
from pyagent.fleet.html_parts import card, counts_table, kpis, metric
from pyagent.fleet.summary import FleetSummary, device_status

MAX_TABLE_ROWS = 10_000
"""Devices listed in the table at most (the figures always count every device)."""
MAX_CELL_ITEMS = 20
TOP_APPS = 12
MAX_APP_NAMES = 1_000
STATUS_ORDER = {"non_compliant": "1", "invalid": "2", "undecided": "3"}
WEAK_EVIDENCE = "matched from a display name, not a package ID: weaker evidence"


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


CSP = (
    f"default-src 'none'; style-src {_hash(CSS)}; script-src {_hash(SCRIPT)}; "
    "base-uri 'none'; form-action 'none'"
)


def write_html(
    results: Iterable[dict[str, Any]],
    out: IO[str],
    summary: FleetSummary,
    *,
    at: str,
    timeline: list[dict[str, Any]],
    max_rows: int = MAX_TABLE_ROWS,
) -> None:
    """The page for ``results``, every device counted into ``summary`` on the way (as ``write_json``)."""
    app_names: dict[str, str] = {}
    listed = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        for result in results:
            summary.add(result)
            status = device_status(result)
            if status == "compliant":
                continue
            _remember_names(result, app_names)
            if listed < max_rows:
                spool.write(device_row(result, status))
                listed += 1
        figures = summary.as_dict()
        out.write(_page_head(figures, at, timeline, app_names))
        out.write(_table_head(figures, listed))
        spool.seek(0)
        shutil.copyfileobj(spool, out)
        out.write(_page_tail(figures, listed))


def script_json(value: Any) -> str:
    """JSON that cannot end or confuse its ``<script>`` element (``</script>``, ``<!--``)."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def needing_action(figures: dict[str, Any]) -> int:
    return int(figures["non_compliant"]) + int(figures["invalid"]) + int(figures["undecided"])


def verdict(figures: dict[str, Any]) -> tuple[str, bool]:
    """One sentence for a manager, and whether the news is good."""
    devices, bad = figures["devices"], figures["non_compliant"]
    invalid, undecided = figures["invalid"], figures["undecided"]
    if not devices:
        return "No devices were evaluated.", False
    if not bad and not invalid and not undecided:
        return f"All {fmt_int(devices)} devices comply with the bans in force.", True
    parts = []
    if bad:
        parts.append(
            f"{fmt_int(bad)} of {fmt_int(devices)} devices ({percent(bad, devices)}) run a banned "
            f"app and must remove it{_most_affected(figures['by_organization'])}"
        )
    else:
        parts.append("No device runs a banned app")
    if invalid:
        parts.append(f"{fmt_int(invalid)} report{'s' if invalid != 1 else ''} could not be checked")
    if undecided:
        parts.append(f"{fmt_int(undecided)} device{'s' if undecided != 1 else ''} got no decision")
    return "; ".join(parts) + ".", False


def _most_affected(by_org: dict[str, dict[str, int]]) -> str:
    """``; most affected: eu-council (12 devices)``, when one organisation clearly leads."""
    ranked = sorted(by_org.items(), key=lambda kv: -kv[1]["non_compliant"])
    if len(ranked) < 2 or ranked[0][1]["non_compliant"] <= ranked[1][1]["non_compliant"]:
        return ""
    return f"; most affected: {ranked[0][0]} ({fmt_int(ranked[0][1]['non_compliant'])} devices)"


def _remember_names(result: dict[str, Any], names: dict[str, str]) -> None:
    for entry in result.get("violations") or []:
        app_id, name = entry.get("app_id"), entry.get("app_name")
        if (
            isinstance(app_id, str)
            and isinstance(name, str)
            and app_id not in names
            and len(names) < MAX_APP_NAMES
        ):
            names[app_id] = name


def _bans_table(by_ban: dict[str, dict[str, Any]]) -> str:
    if not by_ban:
        return '<p class="empty">No device breaks, nears or is exempted from a ban.</p>'
    rows = [
        '<table><thead><tr><th scope="col">Ban</th><th class="num" scope="col">Devices in violation</th>'
        '<th class="num" scope="col">Violations</th><th class="num" scope="col">Warnings</th>'
        '<th class="num" scope="col">Exempted</th></tr></thead><tbody>'
    ]
    for ban, counts in by_ban.items():
        cells = "".join(
            metric(m, counts[m], ban=ban) for m in ("devices", "violations", "warnings", "exempted")
        )
        rows.append(f'<tr><th scope="row">{esc(ban)}</th>{cells}</tr>')
    return (
        "".join(rows) + '</tbody></table><p class="note">Warnings: the device would break a rule that '
        "is not in force yet, or only warns. Exempted: waived by an exemption in force.</p>"
    )


def _apps_table(by_ban: dict[str, dict[str, Any]]) -> str:
    rows = [
        f"<tr><td>{esc(ban)}</td><td><code>{esc(app)}</code></td>{metric('apps', n, ban=ban, app=app)}</tr>"
        for ban, counts in by_ban.items()
        for app, n in counts["apps"].items()
    ]
    if not rows:
        return ""
    return (
        '<table><thead><tr><th scope="col">Ban</th><th scope="col">App</th>'
        '<th class="num" scope="col">Found</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
    )


def _app_bars(figures: dict[str, Any], names: dict[str, str]) -> str:
    found = sorted(
        ((ban, app, n) for ban, counts in figures["by_ban"].items() for app, n in counts["apps"].items()),
        key=lambda item: (-item[2], item[1], item[0]),
    )
    bars = [AppBar(ban, app, names.get(app), n) for ban, app, n in found[:TOP_APPS]]
    return app_bars("chart-apps", "Banned apps found on devices", bars, max(0, len(found) - TOP_APPS))


def _when(at: str) -> str:
    moment = parse_time(at)
    if moment is None:
        return esc(at)
    return moment.astimezone(UTC).strftime("%d %B %Y, %H:%M UTC")


def _page_head(
    figures: dict[str, Any], at: str, timeline: Sequence[dict[str, Any]], names: dict[str, str]
) -> str:
    sentence, good = verdict(figures)
    orgs, platforms = figures["by_organization"], figures["by_platform"]
    charts = [
        card(
            "Compliance by organisation",
            stacked_bars(
                "chart-orgs", "Devices by organisation and compliance", "organisation", list(orgs.items())
            ),
            counts_table("org", "Organisation", orgs),
        ),
        card(
            "Compliance by platform",
            stacked_bars(
                "chart-platforms", "Devices by platform and compliance", "platform", list(platforms.items())
            ),
            counts_table("platform", "Platform", platforms),
        ),
    ]
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f'<meta name="generator" content="pyagent {esc(__version__)}">\n',
            f"<title>Fleet compliance report · {esc(at)}</title>\n<style>{CSS}</style></head>\n",
            '<body><main>\n<header class="top"><div><h1>Fleet compliance report</h1>',
            f'<p class="sub">App bans on managed devices · evaluated at <time datetime="{esc(at)}" '
            f'id="evaluated-at">{_when(at)}</time></p></div></header>\n',
            f'<p class="verdict{" good" if good else ""}" id="verdict">{esc(sentence)}</p>\n',
            kpis(figures),
            "\n",
            '<div class="grid2">',
            *charts,
            card("Banned apps found", _app_bars(figures, names), _apps_table(figures["by_ban"])),
            card("Bans in this run", _bans_table(figures["by_ban"])),
            card("When bans come into force", timeline_chart("chart-timeline", timeline, at), wide=True),
            "</div>\n",
            f'<script type="application/json" id="fleet-summary">{script_json(figures)}</script>\n',
            f'<script type="application/json" id="fleet-timeline">{script_json(list(timeline))}</script>\n',
        ]
    )


def _table_head(figures: dict[str, Any], listed: int) -> str:
    total = needing_action(figures)
    columns = ["Device", "Organisation", "Platform", "Status", "Violations", "Remediation", "Errors"]
    heads = "".join(f'<th scope="col"><button type="button">{name}</button></th>' for name in columns)
    cols = "".join(f'<col class="c{index}">' for index in range(len(columns)))
    return (
        '<section class="card" aria-labelledby="devices-title"><h2 id="devices-title">'
        f'Devices that need action <span class="count">({fmt_int(total)})</span></h2>\n'
        '<div class="tools"><label for="device-search">Search</label><input id="device-search" type="search" '
        'placeholder="Device, organisation, app, rule…" autocomplete="off">'
        f'<span id="device-count" class="count" aria-live="polite">{fmt_int(listed)} devices listed</span>'
        "</div>\n"
        f'<table id="devices" class="devices" data-rows="{listed}"><colgroup>{cols}</colgroup>'
        f"<thead><tr>{heads}</tr></thead><tbody>\n"
    )


def _page_tail(figures: dict[str, Any], listed: int) -> str:
    total = needing_action(figures)
    notes = []
    if not total:
        notes.append('<p class="empty">Every device complies: nothing to do.</p>')
    elif listed < total:
        notes.append(
            f'<p class="note">The table lists the first {fmt_int(listed)} of {fmt_int(total)} '
            "devices that need action; <code>pyagent fleet --format json</code> lists every "
            "device.</p>"
        )
    return "".join(
        [
            "</tbody></table>",
            *notes,
            "</section>\n",
            f"<footer>Generated by pyagent {esc(__version__)}. The figures are those of "
            "<code>pyagent fleet --format json</code> for the same inventory and time.</footer>\n",
            f"</main>\n<script>{SCRIPT}</script>\n</body></html>\n",
        ]
    )


def _items(values: Sequence[str]) -> str:
    shown = list(values[:MAX_CELL_ITEMS])
    if len(values) > MAX_CELL_ITEMS:
        shown.append(f'<span class="scope">and {len(values) - MAX_CELL_ITEMS} more</span>')
    return '<ul class="plain">' + "".join(f"<li>{item}</li>" for item in shown) + "</ul>" if shown else ""


def device_row(result: dict[str, Any], status: str) -> str:
    """One ``<tr>``: every string escaped."""
    device_id = result.get("device_id")
    cell = f"<span>{esc(device_id)}</span>" if device_id else '<span class="scope">(no device id)</span>'
    if status != "non_compliant" or not device_id:
        cell += f'<span class="src">{esc(result.get("source"))}</span>'
    violations = []
    remediations: list[str] = []
    for entry in result.get("violations") or []:
        name = entry.get("app_name")
        name_html = f"{esc(name)} " if name and name != entry.get("app_id") else ""
        weak = entry.get("evidence") == "display_name"
        violations.append(
            f'<strong class="blk">{esc(entry.get("rule"))}</strong> '
            f'<span class="blk">{name_html}'
            f"<code>{esc(entry.get('app_id'))}</code></span> "
            f'<span class="blk scope">scope: {esc(entry.get("scope"))}</span>'
            + (f' <span class="blk weak">{WEAK_EVIDENCE}</span>' if weak else "")
        )
        remedy = entry.get("remediation")
        if remedy and esc(remedy) not in remediations:
            remediations.append(esc(remedy))
    errors = []
    for error in result.get("errors") or []:
        path = error.get("path")
        text = esc(error.get("message") or error.get("code"))
        errors.append(f"<code>{esc(path)}</code> {text}" if path else text)
    org, platform = result.get("organization"), result.get("platform")
    return (
        f'<tr data-status="{status}"><td>{cell}</td><td>{esc(org or "")}</td>'
        f"<td>{esc(platform or '')}</td>"
        f'<td data-sort="{STATUS_ORDER.get(status, "9")}"><span class="badge {status}">'
        f"{STATUS_LABELS.get(status, status)}</span></td><td>{_items(violations)}</td>"
        f"<td>{_items(remediations)}</td><td>{_items(errors)}</td></tr>\n"
    )
