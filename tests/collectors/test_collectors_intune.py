"""intune: Graph detectedApps exports carry display names; ids derived from them say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyagent.collectors import CollectorInputError, get_collector
from pyagent.collectors.intune import GRAPH_PLATFORMS, IntuneCollector, parse_detected_apps
from pyagent.collectors.known_apps import lookup, normalize
from tests.collectors.conftest import FIXTURES


def test_windows_laptop() -> None:
    inventory = IntuneCollector(from_file=FIXTURES / "intune" / "windows-laptop-detectedapps.json").collect()
    assert inventory.platform == "windows"
    assert inventory.work_profile is None
    ids = [a.id for a in inventory.apps]
    assert ids[:4] == [
        "BytedancePte.Ltd.TikTok_6yccndn6064se",
        "name:Microsoft Teams",  # no Windows identifier in the table
        "name:Google Chrome",
        "ByteDance.CapCut",
    ]
    assert len(ids) == 8
    assert all(a.evidence == "display_name" and a.source == "intune" for a in inventory.apps)
    assert inventory.apps[0].to_json() == {
        "id": "BytedancePte.Ltd.TikTok_6yccndn6064se",
        "name": "TikTok",
        "version": "1.0.19.0",
        "source": "intune",
        "evidence": "display_name",
    }
    assert inventory.facts == {"graph_platforms": ["windows"], "detected_apps": 8}


def test_android_work_profile() -> None:
    inventory = IntuneCollector(
        from_file=FIXTURES / "intune" / "android-work-profile-detectedapps.json"
    ).collect()
    assert inventory.platform == "android"
    assert inventory.work_profile is True
    assert inventory.not_listed == ("unmanaged-apps",)  # Intune cannot see the rest of the phone
    assert [a.id for a in inventory.apps] == [
        "com.microsoft.office.outlook",
        "com.microsoft.teams",
        "name:Microsoft Authenticator",
        "com.microsoft.windowsintune.companyportal",
        "com.cisco.webex.meetings",
    ]


def test_android_fully_managed() -> None:
    inventory = IntuneCollector(
        from_file=FIXTURES / "intune" / "android-fully-managed-tiktok-detectedapps.json"
    ).collect()
    assert inventory.platform == "android"
    assert inventory.work_profile is None
    assert inventory.not_listed == ()  # a fully managed phone: Intune lists every app
    assert [a.id for a in inventory.apps] == [
        "com.zhiliaoapp.musically", "com.microsoft.office.outlook", "com.bd.nproject", "name:Google Maps",
        "com.microsoft.windowsintune.companyportal",
    ]  # fmt: skip


def test_ios_bare_array() -> None:
    inventory = IntuneCollector(
        from_file=FIXTURES / "intune" / "ios-detectedapps-value-array-only.json"
    ).collect()
    assert inventory.platform == "ios"
    assert [a.id for a in inventory.apps] == [
        "com.zhiliaoapp.musically",
        "com.microsoft.Office.Outlook",
        "com.microsoft.skype.teams",
        "com.ss.iphone.ugc.Aweme",
        "name:Intune Company Portal",  # no iOS identifier known
        "name:WhatsApp Messenger",
    ]


def test_one_page_of_many_is_refused() -> None:
    with pytest.raises(CollectorInputError, match=r"@odata.nextLink.*export every page"):
        IntuneCollector(
            from_file=FIXTURES / "intune" / "windows-laptop-detectedapps-page-1-of-2.json"
        ).collect()


TENANT_CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/detectedApps"


@pytest.mark.parametrize("fragment", ["", "(id,displayName,deviceCount)"])
def test_the_tenants_list_is_refused(fragment: str) -> None:
    """``GET /deviceManagement/detectedApps`` lists every device's apps (TikTok on 57 of them): it was
    taken as one device's, and banned that device for the others'."""
    export = {"@odata.context": TENANT_CONTEXT + fragment, "@odata.count": 2, "value": [
        {"id": "00a", "displayName": "TikTok", "version": "28.1.3", "deviceCount": 57, "platform": "ios"},
        {"id": "00b", "displayName": "Zoom", "version": "5.17.0", "deviceCount": 300, "platform": "ios"},
    ]}  # fmt: skip
    with pytest.raises(CollectorInputError) as refused:
        parse_detected_apps(json.dumps(export), where="tenant.json")
    assert str(refused.value) == (
        "tenant.json: @odata.context says this is the tenant's detectedApps list, every device's apps; "
        "export one device's: /deviceManagement/managedDevices/{id}/detectedApps"
    )
    one_device = TENANT_CONTEXT.replace("#deviceManagement/", "#deviceManagement/managedDevices('7f1c')/")
    platform, apps, _ = parse_detected_apps(json.dumps({**export, "@odata.context": one_device}), where="f")
    assert (platform, [app.id for app in apps]) == ("ios", ["com.zhiliaoapp.musically", "name:Zoom"])


def test_mixed_platforms_are_refused() -> None:
    win = json.loads((FIXTURES / "intune" / "windows-laptop-detectedapps.json").read_text())["value"]
    ios = json.loads((FIXTURES / "intune" / "ios-detectedapps-value-array-only.json").read_text())
    with pytest.raises(CollectorInputError, match=r"apps of several platforms \(ios, windows\)"):
        parse_detected_apps(json.dumps(win + ios), where="f")


def test_platforms_of_one_family_mix_fine() -> None:
    doc = [
        {"displayName": "TikTok", "platform": "androidWorkProfile"},
        {"displayName": "Lemon8", "platform": "androidDeviceAdministrator"},
        {"displayName": "Old thing", "platform": "unknown"},
    ]
    platform, apps, _ = parse_detected_apps(json.dumps(doc), where="f")
    assert platform == "android"
    assert [a.id for a in apps] == ["com.zhiliaoapp.musically", "com.bd.nproject", "name:Old thing"]


def test_unknown_platform_needs_the_option() -> None:
    doc = json.dumps([{"displayName": "TikTok", "platform": "unknown"}, {"displayName": "X"}])
    with pytest.raises(CollectorInputError, match=r"no entry tells the platform"):
        parse_detected_apps(doc, where="f")
    platform, apps, _ = parse_detected_apps(doc, where="f", platform="ios")
    assert platform == "ios" and apps[0].id == "com.zhiliaoapp.musically"


def test_platform_option_must_agree() -> None:
    with pytest.raises(CollectorInputError, match=r"the apps are windows apps, not ios"):
        parse_detected_apps('[{"displayName": "TikTok", "platform": "windows"}]', where="f", platform="ios")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('{"@odata.context": "x"}', "no `value` array"),
        ('"TikTok"', "expected an object or array"),
        ('{"value": ["TikTok"]}', r"value\[0\]: not a detectedApp object"),
        ('{"value": [{"displayName": "", "platform": "ios"}]}', r"value\[0\]: displayName is empty"),
        ('{"value": [{"displayName": " \\t ", "platform": "ios"}]}', r"value\[0\]: displayName is blank"),
        ('{"value": [{"platform": "ios"}]}', r"value\[0\]: displayName is missing"),
        ('{"value": [{"displayName": "A", "platform": "tvOS"}]}', "unknown detectedApp platform 'tvOS'"),
        ('{"value": [{"displayName": "A", "platform": 4}]}', "unknown detectedApp platform '4'"),
        ('{"value": [{"displayName": "A", "platform": "chromeOS"}]}', "chromeOS is not one pyagent reports"),
        ('{"value": [{"displayName": "A", "version": 3, "platform": "ios"}]}', "version must be a string"),
        (
            '{"value": [{"displayName": "A\\nB", "platform": "ios"}]}',
            "displayName contains a control character",
        ),
        ('{"value": [', "not valid JSON"),
        (  # (it named the file only)
            '{"value": [{"displayName": "Outlook", "platform": "ios"}, {"displayName": "Tik\\u200bTok"}]}',
            r"^f: value\[1\]: name-derived id contains the invisible character U\+200B",
        ),
    ],
)
def test_bad_exports(doc: str, message: str) -> None:
    with pytest.raises(CollectorInputError, match=message):
        parse_detected_apps(doc, where="f")


def test_an_empty_list_is_refused_not_a_compliant_device() -> None:
    """Intune lists what it detected (on a personal device, its managed apps only): none is an export
    that failed or saw nothing, never a device with no apps, which would be compliant."""
    with pytest.raises(CollectorInputError) as err:
        parse_detected_apps('{"value": []}', where="f", platform="windows")
    assert str(err.value) == "f: no detectedApps, and a device reported with no apps would be compliant"


def test_from_file_is_required() -> None:
    with pytest.raises(CollectorInputError, match=r"needs an exported detectedApps file"):
        get_collector("intune")


def test_graph_platform_enum_is_complete() -> None:
    # detectedAppPlatformType, Microsoft Graph v1.0, in declaration order (values 0 to 11)
    assert list(GRAPH_PLATFORMS) == [
        "unknown",
        "windows",
        "windowsMobile",
        "windowsHolographic",
        "ios",
        "macOS",
        "chromeOS",
        "androidOSP",
        "androidDeviceAdministrator",
        "androidWorkProfile",
        "androidDedicatedAndFullyManaged",
        "unknownFutureValue",
    ]


def test_known_app_names_ignore_case_and_spacing() -> None:
    assert normalize("  Microsoft   OUTLOOK ") == "microsoft outlook"
    assert lookup("tiktok", "android") == "com.zhiliaoapp.musically"
    assert lookup("TikTok Lite", "ios") is None
    assert lookup("TikTok", "linux") is None
    assert lookup("抖音", "ios") == "com.ss.iphone.ugc.Aweme"


def test_windows_store_apps_listed_by_package_name_keep_it_as_their_id(tmp_path: Path) -> None:
    """Intune lists a Store app under its package's name: the policy matches that name (weaker evidence)."""
    names = [
        "BytedancePte.Ltd.TikTok",
        "BytedancePte.Ltd.TikTok_6yccndn6064se",
        "Microsoft.WindowsCalculator",
        "Notepad++",
        "7-Zip 23.01 (x64)",
        "TikTok",
    ]
    export = {"value": [{"displayName": n, "version": "1.0", "platform": "windows"} for n in names]}
    _, apps, _ = parse_detected_apps(json.dumps(export), where="w.json")
    assert [a.id for a in apps] == [
        "BytedancePte.Ltd.TikTok",
        "BytedancePte.Ltd.TikTok_6yccndn6064se",
        "Microsoft.WindowsCalculator",
        "name:Notepad++",
        "name:7-Zip 23.01 (x64)",
        "BytedancePte.Ltd.TikTok_6yccndn6064se",  # the known display name
    ]
    assert {a.evidence for a in apps} == {"display_name"}
    android = {"value": [{"displayName": "BytedancePte.Ltd.TikTok", "platform": "androidOSP"}]}
    assert [a.id for a in parse_detected_apps(json.dumps(android), where="a.json")[1]] == [
        "name:BytedancePte.Ltd.TikTok"
    ]
