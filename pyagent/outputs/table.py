"""``--format table``: one row per entry in aligned columns (as conftest's table output), then the verdict.

Layout::

    +-----------+----------------------+-------------+-----------------+-----------+--------------+
    | RESULT    | RULE                 | APP         | NOTE            | MESSAGE   | REMEDIATION  |
    +-----------+----------------------+-------------+-----------------+-----------+--------------+
    | violation | eu-commission/tiktok | com.example | scope corporate | TikTok... | Uninstall... |
    +-----------+----------------------+-------------+-----------------+-----------+--------------+
    NON-COMPLIANT: device fr-brussels-0042, organisation eu-commission: 1 violation, 0 warnings, 0 exempted

Rows: violations, warnings, exempted breaches, then decision errors (RULE is the error's code). NOTE says
why the row is what it is: the scope of a violation, a warning's reason, the exemption, and exemptions
that covered it once and expired. REMEDIATION is
what to do about a violation or a warning (``-`` for an exempted breach, an error, or a rule without
one), as the text format's ``remediation:`` line. A decision with no row prints the verdict line alone.
Every cell goes through :func:`~pyagent.termsafe.printable`, so a crafted app name can neither inject
terminal escapes nor break a row over two lines; columns are as wide as their widest cell on a terminal
(East Asian wide characters count two, combining marks none).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pyagent.outputs.base import (
    DISPLAY_NAME_NOTE,
    Decision,
    Entry,
    OutputFormat,
    parse_decision,
    printable,
    verdict_line,
)

HEADER: tuple[str, ...] = ("RESULT", "RULE", "APP", "NOTE", "MESSAGE", "REMEDIATION")


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _note(entry: Entry) -> str:
    if entry.kind == "warning":
        note = entry.reason_text or "warning"
    elif entry.exemption is not None:
        note = f"exempted by {entry.exemption.id}" + (
            f" until {entry.exemption.until}" if entry.exemption.until else ""
        )
    else:
        note = f"scope {entry.scope}" if entry.scope else ""
    extra = [f"expired exemptions: {', '.join(entry.expired_exemptions)}"] if entry.expired_exemptions else []
    extra += [DISPLAY_NAME_NOTE] if entry.needs_evidence_note else []
    return "; ".join([note, *extra] if note else extra)


def _remediation(entry: Entry) -> str:
    if entry.kind == "exempted" or not entry.remediation:
        return "-"
    return entry.remediation


def rows(decision: Decision) -> list[tuple[str, ...]]:
    """The table's cells, not yet escaped."""
    out: list[tuple[str, ...]] = [
        (entry.kind, entry.rule, entry.app_label, _note(entry), entry.message, _remediation(entry))
        for entry in decision.entries
    ]
    out.extend(
        ("error", err.code, "-", f"at {err.path}" if err.path else "", err.message, "-")
        for err in decision.errors
    )
    return out


def table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """``header`` and ``body`` boxed in ASCII, each cell made printable and padded to its column."""
    cells = [[printable(cell) for cell in row] for row in (header, *body)]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(row: Sequence[str]) -> str:
        return (
            "|"
            + "|".join(
                f" {cell}{' ' * (w - display_width(cell))} " for cell, w in zip(row, widths, strict=True)
            )
            + "|"
        )

    return [rule, line(cells[0]), rule, *(line(row) for row in cells[1:]), rule]


class TableFormat(OutputFormat):
    """The entries as an aligned table, then the verdict line."""

    name: ClassVar[str] = "table"
    media_type: ClassVar[str] = "text/plain; charset=utf-8"

    def render(self, decision: Mapping[str, Any], *, source: str) -> str:
        return render_table(parse_decision(decision))


def render_table(decision: Decision) -> str:
    """The table of ``decision``'s rows (none when it has none), then its verdict line."""
    body = rows(decision)
    return "\n".join([*(table(HEADER, body) if body else []), verdict_line(decision)]) + "\n"
