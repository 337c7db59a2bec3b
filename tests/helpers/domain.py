"""The domain's facts (shared/domain.md), written down independently of the policy data.

Tests decide devices with the real policy and compare with what these facts imply, so a wrong
date, scope or identifier in `policies/data/` fails a test instead of shipping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EU_BAN_DATE = datetime(2023, 3, 15, tzinfo=UTC)
#: CONTRACT.md section 5's example exemption (its id: EX-2023-001): a Commission phone keeps TikTok.
CONTRACT_EXEMPTION: dict[str, str] = {
    "device_id": "fr-brussels-0042",
    "organization": "eu-commission",
    "ban": "tiktok",
    "until": "2023-06-30T00:00:00Z",
    "reason": "official communications account",
    "approved_by": "DIGIT.S",
}
US_BAN_DATE = datetime(2022, 12, 29, tzinfo=UTC)  # No TikTok on Government Devices Act, December 2022
INDIA_BAN_DATE = datetime(2020, 6, 29, tzinfo=UTC)

TIKTOK_FAMILY: dict[str, tuple[str, ...]] = {
    "android": (
        "com.zhiliaoapp.musically",  # TikTok
        "com.ss.android.ugc.trill",  # TikTok, some Asian markets
        "com.zhiliaoapp.musically.go",  # TikTok Lite
        "com.ss.android.ugc.aweme",  # Douyin
    ),
    "ios": (
        "com.zhiliaoapp.musically",  # TikTok
        "com.ss.iphone.ugc.Aweme",  # Douyin
        "835599320",  # TikTok's App Store ID, as store inventories list it
        "id835599320",  # the same, as App Store links write it
    ),
    "windows": (
        "BytedancePte.Ltd.TikTok_6yccndn6064se",  # Store app package family name
        "9NH2GPH4JZS4",  # Microsoft Store product ID
    ),
}
NOT_BANNED_BYTEDANCE: dict[str, tuple[str, ...]] = {
    "android": ("com.lemon.lvoverseas", "com.bd.nproject"),  # CapCut, Lemon8: not TikTok
    "windows": ("ByteDance.CapCut",),
}
WORK_APPS: dict[str, tuple[str, ...]] = {
    "android": (
        "com.microsoft.office.outlook",
        "com.microsoft.teams",
        "com.cisco.webex.meetings",
        "com.microsoft.windowsintune.companyportal",
    ),
    "ios": ("com.microsoft.Office.Outlook", "com.microsoft.skype.teams"),
}


@dataclass(frozen=True)
class OrgFacts:
    scopes: frozenset[str]
    effective: datetime | None


ORGS: dict[str, OrgFacts] = {
    "eu-commission": OrgFacts(frozenset({"corporate", "personal-enrolled"}), EU_BAN_DATE),
    "eu-council": OrgFacts(frozenset({"corporate", "personal-with-work-apps"}), EU_BAN_DATE),
    # EEAS aligns with the Commission and adds private phones with work-related apps.
    "eeas": OrgFacts(frozenset({"corporate", "personal-enrolled", "personal-with-work-apps"}), EU_BAN_DATE),
    "eu-parliament": OrgFacts(frozenset(), None),  # monitoring and assessing: no ban
    "us-federal": OrgFacts(frozenset({"corporate"}), US_BAN_DATE),
    "india": OrgFacts(frozenset({"all"}), INDIA_BAN_DATE),
}


def device_scopes(report: dict[str, Any]) -> set[str]:
    device = report["device"]
    scopes = {"all"}
    if device["ownership"] == "corporate":
        return scopes | {"corporate"}
    if device["mdm"]["enrolled"]:
        scopes.add("personal-enrolled")
    work = set(WORK_APPS.get(device["platform"], ()))
    android_work_profile = device["platform"] == "android" and device.get("work_profile")  # domain.md
    if android_work_profile or any(app["id"] in work for app in report["apps"]):
        scopes.add("personal-with-work-apps")
    return scopes


def expected_banned(report: dict[str, Any], at: datetime) -> tuple[set[str], set[str]]:
    """(app ids that are violations, app ids that are warnings) per the domain's facts."""
    org = ORGS[report["device"]["organization"]]
    if not org.scopes & device_scopes(report):
        return set(), set()
    family = set(TIKTOK_FAMILY.get(report["device"]["platform"], ()))
    found = {app["id"] for app in report["apps"] if app["id"] in family}
    if org.effective is not None and at < org.effective:
        return set(), found
    return found, set()


def make_report(
    org: str,
    platform: str,
    ownership: str,
    enrolled: bool,
    apps: list[str],
    *,
    work_profile: bool | None = None,
    device_id: str = "device-under-test",
) -> dict[str, Any]:
    device: dict[str, Any] = {
        "id": device_id,
        "platform": platform,
        "ownership": ownership,
        "organization": org,
        "mdm": {"enrolled": enrolled},
    }
    if work_profile is not None:
        device["work_profile"] = work_profile
    return {
        "schema_version": 1,
        "collected_at": "2023-03-16T09:30:00Z",
        "device": device,
        "apps": [{"id": app} for app in apps],
    }
