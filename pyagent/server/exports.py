"""CSV exports of the summary and the device list. Every cell that a spreadsheet would read as a
formula (``=``, ``+``, ``-``, ``@``, tab, carriage return first, also after leading white space, and
their full-width forms) is prefixed with ``'``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

DEVICE_COLUMNS = (
    "device_id",
    "organization",
    "platform",
    "compliant",
    "verdict",
    "stale",
    "bans",
    "decided_at",
    "decision_id",
    "last_seen",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        value = " ".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) or text.lstrip().startswith(_FORMULA) else text


def rows_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()


def summary_csv(summary: dict[str, Any]) -> str:
    """One row per group: the whole fleet, each organisation, each platform."""
    keys = ("devices", "compliant", "non_compliant", "invalid", "undecided", "stale")
    rows: list[list[Any]] = [["fleet", "all", *(summary[k] for k in keys)]]
    for group in ("by_organization", "by_platform"):
        for name, counts in summary[group].items():
            rows.append([group.removeprefix("by_"), name, *(counts[k] for k in keys)])
    return rows_csv(("group", "name", *keys), rows)


def devices_csv(devices: Iterable[dict[str, Any]]) -> str:
    return rows_csv(DEVICE_COLUMNS, ([d.get(c) for c in DEVICE_COLUMNS] for d in devices))
