"""What the fleet HTML page is drawn with: its stylesheet, its script, and inline SVG charts.

Charts are built here, in Python, as SVG text: the page loads nothing. Every string that came from a
report or from policy data goes through :func:`esc`. SVG uses presentation attributes and classes
only (no ``style=""``), so the page's Content-Security-Policy can allow its one stylesheet by hash.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyagent.outputs.base import counted, printable

STATUSES = ("compliant", "non_compliant", "invalid")
STATUS_LABELS = {
    "compliant": "compliant",
    "non_compliant": "non-compliant",
    "invalid": "invalid",
    "undecided": "undecided",
}


def esc(value: object) -> str:
    """HTML-escaped text (quotes too), safe in element content and in quoted attributes. Control and
    format characters (a right-to-left override that would reorder ``gnp.exe``, escapes, zero-width
    characters) are shown as ``\\uNNNN`` codes, not obeyed."""
    return esc_value(printable("" if value is None else str(value)))


def esc_value(value: object) -> str:
    """A value a form sends back (an ``<option value>``), HTML-escaped but otherwise as it is: shown as
    ``\\uNNNN`` (:func:`esc`), it would select nothing once submitted. Never displayed."""
    text = "" if value is None else str(value)
    if not text.isascii():  # a lone surrogate cannot be written as UTF-8: replace it
        text = text.encode("utf-8", "replace").decode("utf-8")
    return html.escape(text, quote=True)


def fmt_int(value: int) -> str:
    return f"{value:,}"


def percent(part: int, whole: int) -> str:
    """``55.6%``; never rounds a non-zero share to 0% or a partial one to 100%."""
    if not whole:
        return "n/a"
    share = 100.0 * part / whole
    if 0 < share < 0.05:
        return "<0.1%"
    if 99.95 <= share < 100:
        return ">99.9%"
    return f"{share:.1f}".removesuffix(".0") + "%"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg_open(ident: str, width: int, height: int, title: str, desc: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d"><title id="{ident}-t">{esc(title)}</title>'
        f'<desc id="{ident}-d">{esc(desc)}</desc>'
    )


def stacked_bars(ident: str, title: str, kind: str, rows: Sequence[tuple[str, dict[str, int]]]) -> str:
    """Horizontal stacked bars (compliant, non-compliant, invalid) per ``kind`` (organisation, platform)."""
    if not rows:
        return '<p class="empty">No devices.</p>'
    width, label_w, right_w, row_h = 560, 168, 130, 30  # (20 characters of label at 13 px fit in 160)
    bar_w = width - label_w - right_w
    height = 26 + row_h * len(rows)
    biggest = max(counts["devices"] for _, counts in rows) or 1
    desc = f"By {kind}: " + "; ".join(
        f"{name}: {c['devices']} devices, {c['compliant']} compliant, {c['non_compliant']} non-compliant, "
        f"{c['invalid']} invalid"
        for name, c in rows
    )
    parts = [
        _svg_open(ident, width, height, title, desc),
        _legend(0),
        f'<text class="legend" x="{width - right_w + 8}" y="14">non-compliant / all</text>',
    ]
    for index, (name, counts) in enumerate(rows):
        y = 26 + index * row_h
        parts.append(
            f'<g class="row"><text class="label" x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
            f"{esc(clip(name, 20))}<title>{esc(name)}</title></text>"
        )
        x = float(label_w)
        for status in STATUSES:
            share = counts[status] / biggest * bar_w
            if counts[status]:
                parts.append(
                    f'<rect class="seg-{status}" x="{x:.1f}" y="{y + 4}" '
                    f'width="{max(share, 1.5):.1f}" height="{row_h - 10}" rx="2"><title>'
                    f"{esc(name)}: {counts[status]} {STATUS_LABELS[status]} of {counts['devices']}"
                    "</title></rect>"
                )
            x += share
        bad = counts["non_compliant"]
        parts.append(
            f'<text class="value" x="{width - right_w + 8}" y="{y + 15}">'
            f"{fmt_int(bad)} / {fmt_int(counts['devices'])} "
            f'<tspan class="muted">({percent(bad, counts["devices"])})</tspan></text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend(x0: int) -> str:
    out, x = [], x0
    for status, step in zip(STATUSES, (92, 116, 70), strict=True):
        out.append(
            f'<rect class="seg-{status}" x="{x}" y="4" width="12" height="12" rx="2"/>'
            f'<text class="legend" x="{x + 17}" y="14">{STATUS_LABELS[status]}</text>'
        )
        x += step
    return f'<g aria-hidden="true">{"".join(out)}</g>'


@dataclass(frozen=True)
class AppBar:
    ban: str
    app_id: str
    app_name: str | None
    count: int


def app_bars(ident: str, title: str, bars: Sequence[AppBar], hidden: int) -> str:
    """One bar per banned app found (label above its bar, long identifiers fit)."""
    if not bars:
        return '<p class="empty">No banned app was found on any device.</p>'
    width, row_h, bar_w = 560, 42, 470
    height = 8 + row_h * len(bars) + (22 if hidden else 0)
    biggest = max(bar.count for bar in bars) or 1
    desc = "; ".join(f"{bar.app_id} ({bar.ban}): {counted(bar.count, 'violation')}" for bar in bars)
    parts = [_svg_open(ident, width, height, title, desc)]
    for index, bar in enumerate(bars):
        y = 8 + index * row_h
        name = f"{bar.app_name} · " if bar.app_name and bar.app_name != bar.app_id else ""
        label = clip(f"{name}{bar.app_id}", 72)
        length = max(bar.count / biggest * bar_w, 2.0)
        parts.append(
            f'<g class="row"><text class="label" x="0" y="{y + 12}">{esc(label)} '
            f'<tspan class="muted">{esc(clip(bar.ban, 24))}</tspan></text>'
            f'<rect class="seg-non_compliant" x="0" y="{y + 18}" width="{length:.1f}" height="14" rx="2">'
            f"<title>{esc(bar.app_id)} (ban {esc(bar.ban)}): found {bar.count} times</title></rect>"
            f'<text class="value" x="{length + 6:.1f}" y="{y + 30}">{fmt_int(bar.count)}</text></g>'
        )
    if hidden:
        parts.append(
            f'<text class="muted" x="0" y="{height - 6}">and {fmt_int(hidden)} more apps '
            f"(listed under “Figures”)</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ticks(start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    """At most ~10 calendar-aligned ticks between ``start`` and ``end``."""
    days = (end - start).days
    for months in (1, 3, 6, 12, 24, 60, 120):
        if days / (30.4 * months) <= 10:
            break
    if days <= 70:
        step = 1 if days <= 10 else 7
        day = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        out = []
        while day <= end:
            out.append((day, day.strftime("%d %b")))
            day += timedelta(days=step)
        return out
    year, month = start.year, 1
    out = []
    while True:
        if (year * 12 + month - 1) % months == 0:
            tick = datetime(year, month, 1, tzinfo=UTC)
            if tick > end:
                return out
            if tick >= start:
                out.append((tick, str(year) if months >= 12 else tick.strftime("%b %Y")))
        month += 1
        if month == 13:
            year, month = year + 1, 1


def timeline_chart(ident: str, entries: Sequence[dict[str, Any]], at: str) -> str:
    """A row per rule: its mark at ``effective_from``, then a bar while it is in force; ``at`` marked."""
    if not entries:
        return (
            '<p class="empty">No policy timeline: the policy data is not available here '
            "(a remote OPA holds its own).</p>"
        )
    when = parse_time(at) or datetime.now(UTC)
    dates = [d for d in (parse_time(e.get("effective_from")) for e in entries) if d] + [when]
    first, last = min(dates), max(dates)
    pad = max((last - first) * 0.06, timedelta(days=20))
    start, end = first - pad, last + pad
    width, label_w, top, row_h = 1100, 330, 34, 40
    span_w = width - label_w - 20
    height = top + row_h * len(entries) + 28

    def x_of(moment: datetime) -> float:
        return label_w + (moment - start) / (end - start) * span_w

    desc = "; ".join(
        f"{e.get('rule')} ({', '.join(e.get('scopes') or [])}) from {e.get('effective_from')}"
        for e in entries
    )
    parts = [_svg_open(ident, width, height, "When bans come into force", desc)]
    axis_y = height - 24
    for tick, label in _ticks(start, end):
        x = x_of(tick)
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 8}" y2="{axis_y}"/>'
            f'<text class="tick" x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">'
            f"{esc(label)}</text>"
        )
    for index, entry in enumerate(entries):
        parts.append(_timeline_row(entry, top + index * row_h, when, x_of, (label_w, width - 20)))
    now_x = x_of(when)
    parts.append(
        f'<line class="now" x1="{now_x:.1f}" x2="{now_x:.1f}" y1="{top - 14}" y2="{axis_y}"/>'
        f'<text class="now-label" x="{now_x:.1f}" y="{top - 20}" text-anchor="end">evaluated '
        f"{esc(when.strftime('%d %b %Y %H:%M'))} UTC</text></svg>"
    )
    return "".join(parts)


def _timeline_row(
    entry: dict[str, Any], y: int, when: datetime, x_of: Callable[[datetime], float], span: tuple[int, int]
) -> str:
    moment = parse_time(entry.get("effective_from"))
    enforcement = str(entry.get("enforcement") or "deny")
    state = "future" if moment and moment > when else "soft" if enforcement != "deny" else "active"
    scopes = ", ".join(str(s) for s in entry.get("scopes") or []) or "no scope"
    inherited = entry.get("inherited_by") or []
    note = scopes + (f" · also {', '.join(str(o) for o in inherited)}" if inherited else "")
    note += f" · {enforcement}" if enforcement != "deny" else ""
    date_text = moment.strftime("%d %b %Y") if moment else "no start date"
    x = x_of(moment) if moment else x_of(when) - 1  # undated: shown as in force, at the left of "now"
    line_start = x if moment else float(span[0])
    label = f"{entry.get('rule')}"
    near_end = x > span[1] - 100
    anchor = "end" if near_end else "start"
    date_label = (
        f'<text class="date" x="{x - 10 if near_end else x + 10:.1f}" y="{y + 11}" '
        f'text-anchor="{anchor}">{esc(date_text)}</text>'
    )
    tip = f"{label}: ban {entry.get('ban')} on {scopes} from {entry.get('effective_from') or 'no date'}"
    return (
        f'<g class="rule rule-{state}"><title>{esc(tip)}</title>'
        f'<text class="label" x="0" y="{y + 13}">{esc(clip(label, 42))}</text>'
        f'<text class="muted small" x="0" y="{y + 29}">{esc(clip(note, 56))}</text>'
        f'<line class="span" x1="{line_start:.1f}" x2="{span[1]}" y1="{y + 15}" y2="{y + 15}"/>'
        f'<circle class="mark" cx="{x:.1f}" cy="{y + 15}" r="6"/>'
        f"{date_label}</g>"
    )


CSS = """
:root{--ok:#1f7a3a;--bad:#c4361c;--inv:#b7791f;--und:#6b7280;--ink:#1b2330;--muted:#5b6574;
--line:#dde2ea;--bg:#f4f6f9;--card:#fff;--accent:#1d4ed8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,"Liberation Sans","DejaVu Sans",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 32px 48px}
header.top{display:flex;justify-content:space-between;align-items:flex-end;gap:24px;flex-wrap:wrap}
h1{font-size:26px;margin:0 0 4px}h2{font-size:17px;margin:0 0 12px}
.sub{color:var(--muted);margin:0}
.verdict{margin:18px 0 20px;padding:14px 18px;border-radius:8px;font-size:17px;font-weight:600;
border-left:6px solid var(--bad);background:#fdf1ee}
.verdict.good{border-left-color:var(--ok);background:#eef8f1}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:14px;margin-bottom:22px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;
border-top:5px solid var(--accent)}
.kpi .n{display:block;font-size:32px;font-weight:700;letter-spacing:-.5px}
.kpi .k{color:var(--muted);font-size:13px;text-transform:uppercase;letter-spacing:.4px}
.kpi.compliant{border-top-color:var(--ok)}.kpi.non_compliant{border-top-color:var(--bad)}
.kpi.invalid{border-top-color:var(--inv)}.kpi.undecided{border-top-color:var(--und)}
.kpi.compliant .n{color:var(--ok)}.kpi.non_compliant .n{color:var(--bad)}.kpi.invalid .n{color:var(--inv)}
.kpi.share{border-top-color:var(--ink)}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:0 18px}
.card.wide{grid-column:1/-1}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;
margin-bottom:18px;overflow-x:auto}
.chart{max-width:100%;height:auto;display:block}
.chart text{font-size:13px;fill:var(--ink)}.chart .muted,.chart .tick,.chart .legend{fill:var(--muted)}
.chart .small{font-size:12px}.chart .label{font-weight:600}.chart .value{font-variant-numeric:tabular-nums}
.seg-compliant{fill:var(--ok)}.seg-non_compliant{fill:var(--bad)}.seg-invalid{fill:var(--inv)}
.chart .grid{stroke:var(--line)}.chart .span{stroke-width:6;stroke-linecap:round}
.rule-active .span{stroke:#f3c5b9}.rule-active .mark{fill:var(--bad)}
.rule-future .span{stroke:#c9d6f5;stroke-dasharray:6 5}.rule-future .mark{fill:#fff;stroke:var(--accent);
stroke-width:3}.rule-soft .span{stroke:#f2dfb8}.rule-soft .mark{fill:#fff;stroke:var(--inv);stroke-width:3}
.chart .date{font-size:12px;fill:var(--muted)}
.chart .now{stroke:var(--accent);stroke-width:2;stroke-dasharray:4 3}
.chart .now-label{fill:var(--accent);font-size:12px;font-weight:600}
.empty{color:var(--muted);font-style:italic}
details{margin-top:10px;font-size:13px}summary{cursor:pointer;color:var(--accent)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.devices{table-layout:fixed}table.devices td{overflow-wrap:anywhere;font-size:14px}
.c0{width:15%}.c1{width:11%}.c2{width:8%}.c3{width:11%}.c4{width:24%}.c5{width:17%}.c6{width:14%}
.blk{display:block}
table.devices thead th{position:sticky;top:0;background:#eef1f6;z-index:1;font-size:14px;
overflow-wrap:anywhere}
th button{all:unset;cursor:pointer;font-weight:600}th button:focus-visible{outline:2px solid var(--accent)}
th[aria-sort=ascending] button::after{content:" ▲"}th[aria-sort=descending] button::after{content:" ▼"}
.tools{display:flex;gap:16px;align-items:center;margin-bottom:12px;flex-wrap:wrap}
.tools input{font:inherit;padding:8px 12px;border:1px solid #b9c2cf;border-radius:6px;min-width:340px}
.count{color:var(--muted)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;
white-space:nowrap}
.badge.non_compliant{background:var(--bad)}.badge.invalid{background:var(--inv)}
.badge.undecided{background:var(--und)}.badge.compliant{background:var(--ok)}
ul.plain{margin:0;padding:0;list-style:none}ul.plain li+li{margin-top:4px}
code{font:12.5px ui-monospace,"DejaVu Sans Mono",monospace;background:#f0f2f6;padding:0 4px;border-radius:3px}
.scope{color:var(--muted);font-size:12.5px}.src{display:block;color:var(--muted);font-size:12px}
.weak{color:var(--inv);font-size:12px}
.note{color:var(--muted);font-size:13px;margin-top:10px}
footer{color:var(--muted);font-size:12.5px;margin-top:8px}
@media print{body{background:#fff}.tools{display:none}.card{break-inside:avoid}}
"""

SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("devices");
  var input = document.getElementById("device-search");
  var count = document.getElementById("device-count");
  if (table && input && count && table.tBodies.length) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
    var filter = function () {
      var query = input.value.trim().toLowerCase();
      var shown = 0;
      rows.forEach(function (row, i) {
        var hit = !query || texts[i].indexOf(query) !== -1;
        row.hidden = !hit;
        if (hit) { shown += 1; }
      });
      count.textContent = shown + " of " + rows.length + " devices shown";
    };
    input.addEventListener("input", filter);
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var keyed = rows.map(function (row, i) {
          var cell = row.cells[col];
          var key = cell ? cell.getAttribute("data-sort") || cell.textContent.trim().toLowerCase() : "";
          return [key, i, row];
        });
        keyed.sort(function (a, b) {
          var order = a[0].localeCompare(b[0], undefined, {numeric: true});
          return (ascending ? order : -order) || a[1] - b[1];
        });
        var fragment = document.createDocumentFragment();
        keyed.forEach(function (k) { fragment.appendChild(k[2]); });
        body.appendChild(fragment);
      });
    });
    filter();
  }
  document.documentElement.setAttribute("data-script", "ready");
}());
"""
