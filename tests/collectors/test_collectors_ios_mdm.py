"""ios-mdm: InstalledApplicationList command responses (XML plists), and hostile plists."""

from __future__ import annotations

import plistlib
import time

import pytest

from pyagent.collectors import CollectorInputError, get_collector
from pyagent.collectors.ios_mdm import IosMdmCollector, parse_installed_application_list
from tests.collectors.conftest import FIXTURES


def _plist(root: dict[str, object] | list[object]) -> bytes:
    return plistlib.dumps(root, fmt=plistlib.FMT_XML)


def test_iphone_response() -> None:
    path = FIXTURES / "ios-mdm" / "iphone-installed-application-list-response.plist"
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


def test_error_response_is_refused() -> None:
    with pytest.raises(CollectorInputError, match=r"the command's Status is 'Error', not Acknowledged"):
        IosMdmCollector(from_file=FIXTURES / "ios-mdm" / "iphone-error-response.plist").collect()


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


def _two_lists(first: str, second: str) -> bytes:
    """A response that gives its InstalledApplicationList twice (plistlib kept the second)."""
    lists = "".join(
        f"<key>InstalledApplicationList</key><array><dict><key>Identifier</key><string>{bundle}</string>"
        "</dict></array>"
        for bundle in (first, second)
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{lists}</dict></plist>'.encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_two_lists("com.zhiliaoapp.musically", "com.apple.Maps"),
         "f: not a valid XML plist: the key 'InstalledApplicationList' is given twice in one dictionary"),
        (b"<plist><dict><key>InstalledApplicationList</key><array><dict><key>Identifier</key>"
         b"<string>com.zhiliaoapp.musically</string><key>Identifier</key><string>com.apple.Maps</string>"
         b"</dict></array></dict></plist>",
         "f: not a valid XML plist: the key 'Identifier' is given twice in one dictionary"),
        (_two_lists("a", "b").replace(b"UTF-8", b"bogus", 1),
         "f: not a valid XML plist: unknown encoding: bogus"),
        (b"\xff\xfe<\x00?\x00x\xd8", "f: not valid UTF-16 text (byte 6)"),
    ],
)  # fmt: skip
def test_a_repeated_key_or_an_unknown_encoding_is_refused_in_one_line(data: bytes, message: str) -> None:
    """A repeated key hid TikTok behind the value given last (exit 0, compliant); an unknown encoding
    was an internal error (exit 3) that named no file."""
    with pytest.raises(CollectorInputError) as err:
        parse_installed_application_list(data, where="f")
    assert str(err.value) == message


def test_a_utf16_response_with_its_byte_order_mark_is_read() -> None:
    """As Windows PowerShell saves it: it was "not an XML property list"."""
    text = _plist(
        {"InstalledApplicationList": [{"Identifier": "com.zhiliaoapp.musically", "Name": "TikTok"}]}
    )
    for encoding in ("utf-16", "utf-16-be"):
        declared = text.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
        data = (b"\xfe\xff" if encoding == "utf-16-be" else b"") + declared.encode(encoding)
        apps, _ = parse_installed_application_list(data, where="f")
        assert [(app.id, app.name) for app in apps] == [("com.zhiliaoapp.musically", "TikTok")]
