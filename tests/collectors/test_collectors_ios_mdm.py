"""ios-mdm: InstalledApplicationList command responses (XML plists), and hostile plists."""

from __future__ import annotations

import plistlib
import time
from pathlib import Path

import pytest

from pyagent.collectors import CollectorInputError, get_collector
from pyagent.collectors.ios_mdm import IosMdmCollector, parse_installed_application_list


def _plist(root: dict[str, object] | list[object]) -> bytes:
    return plistlib.dumps(root, fmt=plistlib.FMT_XML)


def test_iphone_response(fixtures: Path) -> None:
    path = fixtures / "ios-mdm" / "iphone-installed-application-list-response.plist"
    inventory = IosMdmCollector(from_file=path).collect()
    assert inventory.platform == "ios"
    assert [a.id for a in inventory.apps] == [
        "com.microsoft.Office.Outlook",
        "com.zhiliaoapp.musically",
        "com.microsoft.skype.teams",
        "net.whatsapp.WhatsApp",
        "com.google.chrome.ios",
        "com.microsoft.CompanyPortal",
        "com.spotify.client",
    ]
    tiktok = inventory.apps[1]
    assert tiktok.to_json() == {
        "id": "com.zhiliaoapp.musically",
        "name": "TikTok",
        "version": "34.3.0",
        "source": "ios-mdm",
    }
    assert inventory.facts == {"installing": 1, "udid": "00008110-001A2B3C4D5E801E"}


def test_error_response_is_refused(fixtures: Path) -> None:
    with pytest.raises(CollectorInputError, match=r"the command's Status is 'Error', not Acknowledged"):
        IosMdmCollector(from_file=fixtures / "ios-mdm" / "iphone-error-response.plist").collect()


def test_item_without_identifier_is_named() -> None:
    data = _plist({"InstalledApplicationList": [{"Name": "TikTok", "Version": "1"}, {"Name": "Pages"}]})
    apps, _ = parse_installed_application_list(data, where="f")
    assert [(a.id, a.evidence, a.version) for a in apps] == [
        ("com.zhiliaoapp.musically", "display_name", "1"),
        ("name:Pages", "display_name", None),
    ]


def test_macos_platform_option() -> None:
    data = _plist({"InstalledApplicationList": [{"Identifier": "com.microsoft.Outlook", "Name": "Outlook"}]})
    path_free = parse_installed_application_list(data, where="f", platform="macos")
    assert path_free[0][0].id == "com.microsoft.Outlook"
    with pytest.raises(CollectorInputError, match=r"platform must be ios or macos"):
        IosMdmCollector(from_file="x", platform="android")  # type: ignore[arg-type]


def test_from_file_is_required() -> None:
    with pytest.raises(CollectorInputError, match=r"needs the saved InstalledApplicationList response"):
        get_collector("ios-mdm")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE plist [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<plist version="1.0"><dict><key>InstalledApplicationList</key><array><dict>
<key>Identifier</key><string>&d;</string></dict></array></dict></plist>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE plist [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<plist version="1.0"><dict><key>InstalledApplicationList</key><array><dict>
<key>Identifier</key><string>&xxe;</string></dict></array></dict></plist>
"""

UNDECLARED_ENTITY = b"""<?xml version="1.0"?>
<plist version="1.0"><dict><key>InstalledApplicationList</key><array><dict>
<key>Identifier</key><string>&xxe;</string></dict></array></dict></plist>
"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY, UNDECLARED_ENTITY])
def test_entities_are_refused(data: bytes) -> None:
    start = time.monotonic()
    with pytest.raises(CollectorInputError, match=r"not a valid XML plist"):
        parse_installed_application_list(data, where="f")
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (plistlib.dumps({"InstalledApplicationList": []}, fmt=plistlib.FMT_BINARY), "a binary plist"),
        (b'{"InstalledApplicationList": []}', "not an XML property list"),
        (b"<?xml version='1.0'?><html><body>502 Bad Gateway</body></html>", "not a dictionary"),
        (_plist(["a"]), "the plist is not a dictionary"),
        (_plist({"Status": "NotNow", "UDID": "x"}), "Status is 'NotNow'"),
        (_plist({"Status": "Acknowledged"}), "no InstalledApplicationList array"),
        (_plist({"InstalledApplicationList": ["com.x"]}), r"InstalledApplicationList\[0\]: not a dictionary"),
        (_plist({"InstalledApplicationList": [{"Version": "1"}]}), "neither Identifier nor Name"),
        (_plist({"InstalledApplicationList": [{"Identifier": 7}]}), "Identifier must be a string, not int"),
        (
            _plist({"InstalledApplicationList": [{"Identifier": "a\nb"}]}),
            "Identifier contains a control character",
        ),
        (_plist({"InstalledApplicationList": [{"Identifier": "com.x"}]})[:-30], "not a valid XML plist"),
        (b"<plist><dict><key>A</key><date>yesterday</date></dict></plist>", "not a valid XML plist"),
        (b"<plist><dict><key>A</key><integer>x</integer></dict></plist>", "not a valid XML plist"),
        (b"<plist><dict><key>A</key></dict></plist>", "not a valid XML plist"),
    ],
)
def test_bad_responses(data: bytes, message: str) -> None:
    with pytest.raises(CollectorInputError, match=message):
        parse_installed_application_list(data, where="f")


def test_an_empty_list_is_refused_not_a_compliant_device() -> None:
    """Every iPhone has apps: an answer listing none (a command that failed, or an MDM that filters to
    managed apps and had none) must not report a device with no apps, which would be compliant."""
    with pytest.raises(CollectorInputError) as err:
        parse_installed_application_list(
            _plist({"Status": "Acknowledged", "InstalledApplicationList": []}), where="f"
        )
    assert str(err.value) == (
        "f: the InstalledApplicationList is empty, and a device reported with no apps would be compliant"
    )
