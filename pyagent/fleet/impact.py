"""What a policy change would change: both policy versions over the same devices at the same time.

A policy version is a directory: either a policy root with ``rego/`` and ``data/`` inside (like
this repository's ``policies/``), or a single directory of Rego and data files. Each is compiled
with the pinned ``opa build -t wasm`` and decided by the embedded engine.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyagent.engines.base import ENTRYPOINT
from pyagent.errors import InvalidInputError
from pyagent.policy.opa_tool import OpaToolError, run_opa


def policy_roots(directory: str) -> list[str]:
    """The roots `opa build` needs for a policy version directory."""
    root = Path(directory)
    if not root.is_dir():
        raise InvalidInputError(f"{directory}: no such policy directory")
    split = [root / "rego", root / "data"]
    if all(p.is_dir() for p in split):
        return [str(p) for p in split]
    return [str(root)]


def compile_version(directory: str, workdir: Path, name: str) -> Path:
    """Compile one policy version to a wasm bundle; a policy that does not compile is exit 2."""
    out = workdir / f"{name}.tar.gz"
    run = run_opa(
        [
            "build",
            "-t",
            "wasm",
            "-e",
            ENTRYPOINT,
            "--ignore",
            "*_test.rego",
            "-o",
            str(out),
            *policy_roots(directory),
        ]
    )
    if run.returncode != 0:
        first = (run.stderr.strip().splitlines() or ["opa build failed"])[0]
        raise InvalidInputError(f"--{name} {directory}: the policy does not compile: {first}")
    if not out.is_file():
        raise OpaToolError(f"opa build wrote no bundle for {directory}")
    return out


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="pyagent-impact-")


def _brief(device: dict[str, Any]) -> dict[str, Any]:
    return {
        "allow": device["allow"],
        "violations": [
            {k: v.get(k) for k in ("rule", "ban", "app_id", "scope")} for v in device["violations"]
        ],
        "warnings": [{k: w.get(k) for k in ("rule", "ban", "app_id", "reason")} for w in device["warnings"]],
        "errors": device["errors"],
    }


def _decisive(brief: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a decision: allow, violations and errors (warnings alone change no decision)."""
    return brief["allow"], brief["violations"], brief["errors"]


def _keys(entries: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["rule"], e["app_id"]) for e in entries}


@dataclass
class ImpactSummary:
    devices: int = 0
    flipped_to_deny: int = 0
    flipped_to_allow: int = 0
    changed: int = 0
    warnings_changed: int = 0
    by_organization: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_ban: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def as_dict(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "flipped_to_deny": self.flipped_to_deny,
            "flipped_to_allow": self.flipped_to_allow,
            "changed": self.changed,
            "warnings_changed": self.warnings_changed,
            "by_organization": {k: dict(sorted(v.items())) for k, v in sorted(self.by_organization.items())},
            "by_ban": {k: dict(sorted(v.items())) for k, v in sorted(self.by_ban.items())},
        }


def compare(before: dict[str, Any], after: dict[str, Any], summary: ImpactSummary) -> dict[str, Any] | None:
    """The change for one device (None when nothing that matters changed), counted into ``summary``."""
    summary.devices += 1
    b, a = _brief(before), _brief(after)
    if _decisive(b) == _decisive(a):
        if b != a:
            summary.warnings_changed += 1
        return None
    summary.changed += 1
    org = after.get("organization") or before.get("organization") or "(none)"
    if b["allow"] and not a["allow"]:
        summary.flipped_to_deny += 1
        summary.by_organization[org]["flipped_to_deny"] += 1
    elif a["allow"] and not b["allow"]:
        summary.flipped_to_allow += 1
        summary.by_organization[org]["flipped_to_allow"] += 1
    summary.by_organization[org]["changed"] += 1
    added = _keys(after["violations"]) - _keys(before["violations"])
    removed = _keys(before["violations"]) - _keys(after["violations"])
    bans_of = {(e["rule"], e["app_id"]): e["ban"] for e in [*before["violations"], *after["violations"]]}
    for key in added:
        summary.by_ban[bans_of[key]]["violations_added"] += 1
    for key in removed:
        summary.by_ban[bans_of[key]]["violations_removed"] += 1
    return {
        "device_id": after.get("device_id") or before.get("device_id"),
        "organization": org,
        "source": after.get("source"),
        "before": b,
        "after": a,
        "violations_added": [{"rule": r, "app_id": app} for r, app in sorted(added)],
        "violations_removed": [{"rule": r, "app_id": app} for r, app in sorted(removed)],
    }
