"""The benchmark's inputs: one realistic device of N apps, and policy data with N banned identifiers.

The device is an Android phone, corporate, of the European Commission, that has TikTok installed
among its apps: the decision exercises organisation rules, scopes, dates, matching and a violation.
Everything is seeded, so two runs measure the same documents.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pyagent.fleet.generate import COMMON_APPS, device

__all__ = [
    "AT",
    "BENCH_BAN",
    "ban_overlay",
    "device_report",
    "policy_input",
    "write_json",
]

AT = "2023-03-16T09:30:00Z"
ORGANIZATION = "eu-commission"
BANNED_APP = "com.zhiliaoapp.musically"
BENCH_BAN = "bench-ban"
BENCH_BANNED_PREFIX = "com.bench.banned."


def device_report(apps: int, *, seed: int = 2023, banned_extra: str | None = None) -> dict[str, Any]:
    """A schema-valid report of exactly ``apps`` apps (at least 1): TikTok, common apps, then filler.
    ``banned_extra``: one more installed app id (e.g. one of the overlay's banned identifiers)."""
    rng = random.Random(seed)
    report = device(rng, 0, apps_per_device=0)
    report["device"] = {
        "id": f"bench-android-{apps:05d}",
        "platform": "android",
        "ownership": "corporate",
        "organization": ORGANIZATION,
        "mdm": {"enrolled": True, "provider": "bench"},
    }
    ids = [BANNED_APP] + ([banned_extra] if banned_extra else []) + list(COMMON_APPS["android"])
    filler = (f"com.example.android.app{i:05d}" for i in range(max(0, apps - len(ids))))
    ids = (ids + list(filler))[: max(1, apps)]
    report["apps"] = [
        {"id": app_id, "name": app_id.rsplit(".", 1)[-1], "version": "1.0", "source": "android-pm"}
        for app_id in ids
    ]
    return report


def policy_input(report: dict[str, Any]) -> dict[str, Any]:
    """The policy input for ``report``, as every engine receives it."""
    return {"at": AT, "report": report}


def banned_id(index: int) -> str:
    return f"{BENCH_BANNED_PREFIX}app{index:06d}"


def ban_overlay(identifiers: int) -> dict[str, Any]:
    """A ``--data`` overlay: a ban of ``identifiers`` Android ids, used by a rule of the organisation."""
    return {
        "pyagent": {
            "bans": {
                BENCH_BAN: {
                    "title": "Benchmark ban",
                    "reason": "benchmark: many banned identifiers",
                    "apps": {"android": [banned_id(i) for i in range(identifiers)]},
                }
            },
            "organizations": {
                ORGANIZATION: {
                    "rules": {
                        "bench-many-ids": {
                            "ban": BENCH_BAN,
                            "scopes": ["corporate", "personal-enrolled"],
                            "effective_from": "2023-03-01T00:00:00Z",
                            "enforcement": "deny",
                            "remediation": "Uninstall the app (benchmark rule).",
                        }
                    }
                }
            },
        }
    }


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    return path
