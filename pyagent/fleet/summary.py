"""The fleet summary, accumulated one device at a time (CONTRACT section 3, `fleet --format json`)."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from pyagent.errors import listed

UNKNOWN_ORG = "(none)"
#: Repeated device ids named by the warning (all are counted).
MAX_REPEATED_LISTED = 5


@dataclass
class StatusCounts:
    """Devices by outcome: for the whole fleet, and per organisation and platform."""

    devices: int = 0
    compliant: int = 0
    non_compliant: int = 0
    invalid: int = 0
    undecided: int = 0

    def count(self, status: str) -> None:
        self.devices += 1
        setattr(self, status, getattr(self, status) + 1)

    def as_dict(self) -> dict[str, int]:
        return {
            "devices": self.devices,
            "compliant": self.compliant,
            "non_compliant": self.non_compliant,
            "invalid": self.invalid,
            "undecided": self.undecided,
        }


@dataclass
class BanCounts:
    devices: int = 0
    violations: int = 0
    warnings: int = 0
    exempted: int = 0
    apps: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "violations": self.violations,
            "warnings": self.warnings,
            "exempted": self.exempted,
            "apps": dict(sorted(self.apps.items())),
        }


@dataclass
class RepeatedIds:
    """Reports whose device id an earlier report already gave (each is still decided and counted), and
    the first few of them as "ID (SOURCE)". Ids are remembered by a 64-bit hash, not kept themselves."""

    repeated: int = 0
    examples: list[str] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set, repr=False)

    def note(self, device: dict[str, Any]) -> None:
        device_id = device.get("device_id")
        if not isinstance(device_id, str):
            return
        key = int.from_bytes(
            hashlib.blake2b(device_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        )
        if key not in self._seen:
            self._seen.add(key)
            return
        self.repeated += 1
        if len(self.examples) < MAX_REPEATED_LISTED:
            self.examples.append(f"{device_id} ({device.get('source')})")

    def text(self) -> str | None:
        """A warning for people when some device id came in more than one report, else None."""
        if not self.repeated:
            return None
        noun = "report repeats a device id" if self.repeated == 1 else "reports repeat a device id"
        told = f"{self.repeated} {noun} given by an earlier one (each decided and counted)"
        return f"warning: {told}: {listed(self.examples, self.repeated)}"


@dataclass
class FleetSummary:
    """Counts over every device seen. ``undecided`` devices had valid input but no engine answer."""

    totals: StatusCounts = field(default_factory=StatusCounts)
    by_organization: defaultdict[str, StatusCounts] = field(default_factory=lambda: defaultdict(StatusCounts))
    by_ban: defaultdict[str, BanCounts] = field(default_factory=lambda: defaultdict(BanCounts))
    by_platform: defaultdict[str, StatusCounts] = field(default_factory=lambda: defaultdict(StatusCounts))
    ids: RepeatedIds = field(default_factory=RepeatedIds)

    @property
    def devices(self) -> int:
        return self.totals.devices

    @property
    def compliant(self) -> int:
        return self.totals.compliant

    @property
    def non_compliant(self) -> int:
        return self.totals.non_compliant

    @property
    def invalid(self) -> int:
        return self.totals.invalid

    @property
    def undecided(self) -> int:
        return self.totals.undecided

    def add(self, device: dict[str, Any]) -> None:
        self.ids.note(device)
        status = device_status(device)
        self.totals.count(status)
        self.by_organization[device.get("organization") or UNKNOWN_ORG].count(status)
        self.by_platform[device.get("platform") or UNKNOWN_ORG].count(status)
        for kind in ("violations", "warnings", "exempted"):
            for entry in device.get(kind, []):
                ban = self.by_ban[entry["ban"]]
                setattr(ban, kind, getattr(ban, kind) + 1)
                if kind == "violations":
                    ban.apps[entry["app_id"]] += 1
        for ban_name in {entry["ban"] for entry in device.get("violations", [])}:
            self.by_ban[ban_name].devices += 1

    def repeated_text(self) -> str | None:
        """A warning for people when some device id came in more than one report, else None."""
        return self.ids.text()

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.totals.as_dict(),
            "by_organization": {k: v.as_dict() for k, v in sorted(self.by_organization.items())},
            "by_ban": {k: v.as_dict() for k, v in sorted(self.by_ban.items())},
            "by_platform": {k: v.as_dict() for k, v in sorted(self.by_platform.items())},
        }


def device_status(device: dict[str, Any]) -> str:
    """compliant | non_compliant | invalid | undecided."""
    if device.get("errors"):
        codes = {e.get("code") for e in device["errors"]}
        return "undecided" if codes == {"no_decision"} else "invalid"
    return "compliant" if device.get("allow") else "non_compliant"
