"""A reproducible synthetic fleet for demos, tests and benchmarks.

Seeded: the same seed and size give byte-identical JSONL. Mixes are realistic rather than uniform:
mostly Android and iOS phones, some Windows and macOS laptops; corporate and personal devices;
enrolment and work apps on part of the personal ones; the TikTok family (and other ByteDance apps)
on a minority; the six shipped organisations.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import IO, Any

ORGANIZATIONS = (
    ("eu-commission", 30),
    ("eu-council", 15),
    ("eeas", 15),
    ("eu-parliament", 15),
    ("us-federal", 15),
    ("india", 10),
)
PLATFORMS = (("android", 45), ("ios", 35), ("windows", 12), ("macos", 8))
TIKTOK_FAMILY = {
    "android": [
        "com.zhiliaoapp.musically",
        "com.ss.android.ugc.trill",
        "com.zhiliaoapp.musically.go",
        "com.ss.android.ugc.aweme",
    ],
    "ios": ["com.zhiliaoapp.musically", "com.ss.iphone.ugc.Aweme"],
    "windows": ["BytedancePte.Ltd.TikTok_6yccndn6064se"],
    "macos": [],
}
OTHER_BYTEDANCE = {"android": ["com.lemon.lvoverseas", "com.bd.nproject"], "windows": ["ByteDance.CapCut"]}
WORK_APPS = {
    "android": [
        "com.microsoft.office.outlook",
        "com.microsoft.teams",
        "com.cisco.webex.meetings",
        "com.microsoft.windowsintune.companyportal",
    ],
    "ios": ["com.microsoft.Office.Outlook", "com.microsoft.skype.teams"],
}
COMMON_APPS = {
    "android": [
        "com.whatsapp",
        "com.spotify.music",
        "org.mozilla.firefox",
        "com.google.android.gm",
        "com.google.android.apps.maps",
        "com.instagram.android",
        "com.duolingo",
        "org.telegram.messenger",
        "com.netflix.mediaclient",
        "com.google.android.youtube",
        "de.dbnavigator",
        "com.booking",
    ],
    "ios": [
        "net.whatsapp.WhatsApp",
        "com.spotify.client",
        "org.mozilla.ios.Firefox",
        "com.google.Maps",
        "com.burbn.instagram",
        "com.duolingo.DuolingoMobile",
        "ph.telegra.Telegraph",
        "com.netflix.Netflix",
    ],
    "windows": [
        "Microsoft.WindowsTerminal_8wekyb3d8bbwe",
        "Mozilla.Firefox",
        "Microsoft.VisualStudioCode",
        "SpotifyAB.SpotifyMusic_zpdnekdrzrea0",
        "7zip.7zip",
        "Microsoft.Teams",
    ],
    "macos": [
        "org.mozilla.firefox",
        "com.microsoft.VSCode",
        "com.spotify.client",
        "com.apple.Safari",
        "us.zoom.xos",
        "com.microsoft.Outlook",
    ],
}


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def device(rng: random.Random, index: int, *, apps_per_device: int = 40) -> dict[str, Any]:
    """One synthetic device report."""
    org = _weighted(rng, ORGANIZATIONS)
    platform = _weighted(rng, PLATFORMS)
    corporate = rng.random() < (0.7 if platform in ("windows", "macos") else 0.45)
    enrolled = corporate or rng.random() < 0.4
    apps = rng.sample(COMMON_APPS[platform], k=min(len(COMMON_APPS[platform]), rng.randint(3, 8)))
    if platform in WORK_APPS and (corporate or rng.random() < 0.5):
        apps += rng.sample(WORK_APPS[platform], k=rng.randint(1, len(WORK_APPS[platform])))
    if TIKTOK_FAMILY[platform] and rng.random() < 0.22:
        apps.append(rng.choice(TIKTOK_FAMILY[platform]))
    if platform in OTHER_BYTEDANCE and rng.random() < 0.08:
        apps.append(rng.choice(OTHER_BYTEDANCE[platform]))
    filler = max(0, apps_per_device - len(apps))
    apps += [f"com.example.{platform}.app{rng.randrange(100_000):05d}" for _ in range(filler)]
    device_doc: dict[str, Any] = {
        "id": f"{org}-{platform}-{index:06d}",
        "platform": platform,
        "ownership": "corporate" if corporate else "personal",
        "organization": org,
        "mdm": {"enrolled": enrolled},
    }
    if platform == "android" and not corporate and rng.random() < 0.15:
        device_doc["work_profile"] = True
    return {
        "schema_version": 1,
        "collected_at": "2023-03-16T08:00:00Z",
        "device": device_doc,
        "apps": [{"id": app_id} for app_id in dict.fromkeys(apps)],
        "collector": {"name": "generate", "version": "1"},
    }


def devices(count: int, *, seed: int, apps_per_device: int = 40) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for index in range(count):
        yield device(rng, index, apps_per_device=apps_per_device)


def write_jsonl(out: IO[str], count: int, *, seed: int, apps_per_device: int = 40) -> None:
    for report in devices(count, seed=seed, apps_per_device=apps_per_device):
        out.write(json.dumps(report, separators=(",", ":")) + "\n")
