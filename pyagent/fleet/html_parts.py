"""Pieces of HTML shared by the fleet report (``pyagent fleet --format html``) and the server's
dashboard: key figures, per-group tables and cards, each figure machine-checkable (``data-metric``
with ``data-value``), every string escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyagent.fleet.html_assets import esc, fmt_int, percent

#: Status columns of a per-group table, and their headings.
COUNT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("devices", "Devices"),
    ("compliant", "Compliant"),
    ("non_compliant", "Non-compliant"),
    ("invalid", "Invalid"),
    ("undecided", "No decision"),
)
KPI_CARDS: tuple[tuple[str, str], ...] = (
    ("devices", "Devices"),
    ("compliant", "Compliant"),
    ("non_compliant", "Non-compliant"),
    ("invalid", "Invalid reports"),
)


def metric(name: str, value: int, *, tag: str = "td", cls: str = "num", **keys: str) -> str:
    attrs = "".join(f' data-{k}="{esc(v)}"' for k, v in keys.items())
    return f'<{tag} class="{cls}"{attrs} data-metric="{name}" data-value="{value}">{fmt_int(value)}</{tag}>'


def kpis(figures: dict[str, Any], extra: Sequence[tuple[str, str]] = ()) -> str:
    """The key figures, then the compliant share; ``extra`` cards (metric, label) after the others."""
    cards = list(KPI_CARDS)
    if figures["undecided"]:
        cards.append(("undecided", "No decision"))
    cards += extra
    out = ['<section class="kpis" aria-label="Summary">']
    for name, label in cards:
        out.append(
            f'<div class="kpi {name}"><span class="k">{label}</span>'
            f"{metric(name, figures[name], tag='span', cls='n')}</div>"
        )
    share = round(100.0 * figures["compliant"] / figures["devices"], 1) if figures["devices"] else 0.0
    out.append(
        f'<div class="kpi share"><span class="k">Compliant share</span><span class="n" '
        f'data-metric="percent_compliant" data-value="{share}">'
        f"{percent(figures['compliant'], figures['devices'])}</span></div></section>"
    )
    return "".join(out)


def counts_table(
    kind: str,
    label: str,
    rows: dict[str, dict[str, int]],
    columns: Sequence[tuple[str, str]] = COUNT_COLUMNS,
    row_heads: Mapping[str, str] | None = None,
) -> str:
    """A table of counts per row; ``row_heads``: HTML to head a row with instead of its escaped name."""
    heads = "".join(f'<th class="num" scope="col">{heading}</th>' for _, heading in columns)
    head = (
        f'<table><thead><tr><th scope="col">{label}</th>{heads}'
        '<th class="num" scope="col">Compliant share</th></tr></thead><tbody>'
    )
    body = []
    for name, counts in rows.items():
        cells = "".join(metric(m, counts[m], **{kind: name}) for m, _ in columns)
        body.append(
            f'<tr><th scope="row">{(row_heads or {}).get(name) or esc(name)}</th>{cells}'
            f'<td class="num">{percent(counts["compliant"], counts["devices"])}</td></tr>'
        )
    return head + "".join(body) + "</tbody></table>"


def card(title: str, chart: str, figures_html: str = "", *, wide: bool = False) -> str:
    details = f"<details><summary>Figures</summary>{figures_html}</details>" if figures_html else ""
    return f'<section class="card{" wide" if wide else ""}"><h2>{title}</h2>{chart}{details}</section>'
