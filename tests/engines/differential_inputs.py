"""Policy inputs for comparing engines: every shipped example at instants around each ban's effective
date, and seeded generated devices (every domain identifier, work apps, near-miss spellings and case
variants, display-name evidence, an unknown organisation) on every platform."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tests.helpers import domain

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "reports"
SEED = 20230315
OTHER_APPS = [
    "org.mozilla.firefox",
    "com.whatsapp",
    "com.spotify.music",
    "com.google.android.gm",
    "com.apple.mobilesafari",
    "Microsoft.WindowsTerminal_8wekyb3d8bbwe",
    "org.example.notes",
]
TIMES = [
    "2020-06-28T23:59:59Z",
    "2022-12-29T00:00:00Z",
    "2023-03-14T23:59:59.999Z",
    "2023-03-15T00:00:00Z",
    "2023-03-15T01:00:00+01:00",
    "2023-03-16T09:30:00Z",
    "2024-01-01T00:00:00-05:00",
]


def _app_id(rng: random.Random, platform: str) -> str:
    pool = [
        *domain.TIKTOK_FAMILY.get(platform, ()),
        *domain.WORK_APPS.get(platform, ()),
        *domain.NOT_BANNED_BYTEDANCE.get(platform, ()),
        *OTHER_APPS,
    ]
    app = rng.choice(pool)
    variant = rng.random()
    if platform == "windows" and app.startswith("BytedancePte") and variant < 0.5:
        return rng.choice(
            [
                "bytedancepte.ltd.tiktok",
                "BytedancePte.Ltd.TikTok_1.0.0.0_x64__6yccndn6064se",
                "BytedancePte.Ltd.TikTok_wronghash",
                "9NH2GPH4JZS4",
            ]
        )
    if platform == "ios" and variant < 0.2:
        return app.lower()
    if variant < 0.05:
        return app.upper()
    return app


def generated_inputs(count: int) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    orgs = [*domain.ORGS, "eu-senate"]
    inputs = []
    for i in range(count):
        platform = rng.choice(["android", "ios", "windows", "macos", "linux"])
        report = domain.make_report(
            rng.choice(orgs),
            platform,
            rng.choice(["corporate", "personal"]),
            rng.random() < 0.5,
            [_app_id(rng, platform) for _ in range(rng.randint(0, 12))],
            work_profile=rng.choice([None, True, False]),
            device_id=f"gen-{i:05d}",
        )
        if rng.random() < 0.1:
            report["apps"] = [{**app, "name": "TikTok", "evidence": "display_name"} for app in report["apps"]]
        inputs.append({"at": rng.choice(TIMES), "report": report})
    return inputs


def example_inputs() -> list[dict[str, Any]]:
    return [
        {"at": at, "report": json.loads(path.read_text())}
        for path in sorted(EXAMPLES.glob("*.json"))
        for at in TIMES
    ]
