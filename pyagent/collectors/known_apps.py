"""Display names of well-known apps, mapped to their identifiers per platform.

For inventories that carry display names instead of identifiers (Microsoft Graph ``detectedApps``,
osquery rows without an identifier). A match made this way is weaker evidence than an identifier, and
collectors mark it ``evidence: display_name``. Identifiers are those of ``shared/domain.md``; a name with
no identifier on a platform gives no match there. To add an app, add a row. Names are compared with case
and runs of whitespace ignored (see :func:`normalize`).
"""

from __future__ import annotations

import unicodedata
from types import MappingProxyType
from typing import Final

# app: (display names, {platform: identifier})
_TABLE: Final[tuple[tuple[tuple[str, ...], dict[str, str]], ...]] = (
    (
        ("TikTok",),
        {
            "android": "com.zhiliaoapp.musically",
            "ios": "com.zhiliaoapp.musically",
            "windows": "BytedancePte.Ltd.TikTok_6yccndn6064se",
        },
    ),
    (("TikTok Lite",), {"android": "com.zhiliaoapp.musically.go"}),
    (("Douyin", "抖音"), {"android": "com.ss.android.ugc.aweme", "ios": "com.ss.iphone.ugc.Aweme"}),
    (("CapCut",), {"android": "com.lemon.lvoverseas", "windows": "ByteDance.CapCut"}),
    (("Lemon8",), {"android": "com.bd.nproject"}),
    (
        ("Microsoft Outlook", "Outlook"),
        {"android": "com.microsoft.office.outlook", "ios": "com.microsoft.Office.Outlook"},
    ),
    (("Microsoft Teams", "Teams"), {"android": "com.microsoft.teams", "ios": "com.microsoft.skype.teams"}),
    (("Cisco Webex Meetings", "Webex Meetings", "Webex"), {"android": "com.cisco.webex.meetings"}),
    (
        ("Intune Company Portal", "Company Portal"),
        {"android": "com.microsoft.windowsintune.companyportal"},
    ),
)


def normalize(name: str) -> str:
    """The form names are compared in: NFKC, case-folded, whitespace runs as one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _index() -> MappingProxyType[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for names, ids in _TABLE:
        for name in names:
            for platform, app_id in ids.items():
                key = (normalize(name), platform)
                if key in index and index[key] != app_id:
                    raise ValueError(f"known_apps: {name!r} on {platform} maps to two identifiers")
                index[key] = app_id
    return MappingProxyType(index)


KNOWN_APPS: Final = _index()
"""(normalized display name, platform) -> identifier."""


def lookup(display_name: str, platform: str) -> str | None:
    """The identifier of the app called ``display_name`` on ``platform``, or None when not known."""
    return KNOWN_APPS.get((normalize(display_name), platform))
