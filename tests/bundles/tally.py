"""Bundles refused, counted by the surface that refused them and the kind of refusal.

The counts are printed at the end of the run and written to ``build/bundle-rejections.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "build" / "bundle-rejections.json"

REJECTIONS: Counter[tuple[str, str]] = Counter()
"""(surface, kind) -> count; surface is ``embedded``, ``cli`` or ``opa-server``."""


def record(surface: str, kind: str) -> None:
    REJECTIONS[(surface, kind)] += 1


def summary() -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (surface, kind), count in sorted(REJECTIONS.items()):
        out.setdefault(surface, {})[kind] = count
    return out


def write_report() -> Path:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    by_kind: Counter[str] = Counter()
    for (_, kind), count in REJECTIONS.items():
        by_kind[kind] += count
    doc = {
        "total": sum(REJECTIONS.values()),
        "by_kind": dict(sorted(by_kind.items())),
        "by_surface": summary(),
    }
    REPORT.write_text(json.dumps(doc, indent=2) + "\n")
    return REPORT
