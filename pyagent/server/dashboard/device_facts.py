"""What the device page says of a device beyond its stored fields: since when its verdict holds,
and its decision-log chain (``pyagent.server.store.chains``), each in a line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def verdict_of(item: Mapping[str, Any]) -> str:
    return str(item.get("verdict") or "undecided")


def chain_text(chain: Mapping[str, Any] | None) -> str | None:
    """The device's decision-log chain in a line: its head, the records not received, its breaks."""
    if not chain:
        return None
    missing = f", {chain['missing']} not received" if chain["missing"] else ""
    if chain["unconfirmed"]:
        missing += f", {chain['unconfirmed']} decisions not in its log"
    if not chain["breaks"]:
        return f"intact up to record {chain['seq']}{missing}"
    last = chain["last_break"] or {}
    count = f"{chain['breaks']} break{'' if chain['breaks'] == 1 else 's'}{missing}"
    return f"{count}; the last ({last.get('kind')}, record {last.get('seq')}): {last.get('what')}"


def since_label(device: Mapping[str, Any]) -> str:
    """A stale device's "compliant since" alone would be read as compliant now: it is not (stale)."""
    verdict = verdict_of(device).replace("_", "-").capitalize()
    return f"{verdict} since (last decision; stale now)" if device["stale"] else f"{verdict} since"
