"""Property-based fuzzing: whatever the input, a parser returns apps or raises CollectorInputError with a
one-line message; nothing else escapes."""

from __future__ import annotations

import json
import plistlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pyagent.collectors.android_pm import parse_package_line, parse_pm_list_packages, parse_pm_list_users
from pyagent.collectors.base import App, CollectorInputError, Platform
from pyagent.collectors.files import decode_text
from pyagent.collectors.intune import parse_detected_apps
from pyagent.collectors.ios_mdm import parse_installed_application_list
from pyagent.collectors.linux import (
    parse_dpkg_query,
    parse_flatpak_list,
    parse_os_release,
    parse_rpm_qa,
    parse_snap_list,
)
from pyagent.collectors.osquery import Table, parse_osquery_json
from tests.helpers.fuzz import FUZZ

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "device-report.schema.json"
T = TypeVar("T")
TABLES: list[Table | None] = [None, "apps", "programs", "deb_packages", "rpm_packages"]
PLATFORMS: list[Platform | None] = [None, "windows", "android", "ios"]


def _only_input_errors(call: Callable[[], T]) -> T | None:
    try:
        result = call()
    except CollectorInputError as exc:
        assert str(exc) and "\n" not in str(exc), f"message must be one line: {str(exc)!r}"
        return None
    return result


def _app_validator() -> Draft202012Validator:
    assert SCHEMA_PATH.is_file(), SCHEMA_PATH  # the schema ships with the code: never skip its check
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/app"})


APP_VALIDATOR = _app_validator()


def _check_apps(apps: object) -> None:
    """Every app a parser returns is a valid report entry (schemas/device-report.schema.json)."""
    assert isinstance(apps, list)
    for app in apps:
        assert isinstance(app, App)
        assert app.id and "\x00" not in app.id and "\n" not in app.id
        entry = app.to_json()
        json.dumps(entry)
        assert [e.message for e in APP_VALIDATOR.iter_errors(entry)] == []


# ---- strategies: raw noise, and noise built from each format's own pieces ---------------------------

PM_PIECES = st.sampled_from(
    [
        "package:",
        "com.zhiliaoapp.musically",
        "/data/app/~~abc==/com.x-def==/base.apk",
        "=",
        " versionCode:",
        "123",
        "  installer=",
        "null",
        "com.android.vending",
        " uid:",
        "10234,1010234",
        ",",
        " ",
        "\n",
        "\r\n",
        "\t",
        "Error: ",
        "é",
        "\x00",
        "\u2028",
    ]
)
pm_noise = st.lists(PM_PIECES, max_size=40).map("".join)
package_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){0,3}", fullmatch=True)
_PM_PARTS = (
    package_names,
    st.sampled_from(["", " versionCode:1", " versionCode:2023403030"]),
    st.sampled_from(["", "  installer=null", "  installer=com.android.vending"]),
    st.sampled_from(["", " uid:10234", " uid:10234,1010234", " uid:1000"]),
)
pm_lines = st.tuples(
    st.sampled_from(["", "/data/app/~~Zm9v==/x-YmFy==/base.apk=", "/system/app/A/A.apk=", "null="]),
    *_PM_PARTS,
).map(lambda parts: "package:" + "".join(parts))
pm_line_and_ids = st.tuples(  # a well-formed line, and the packages it lists (one per user of its uids)
    st.sampled_from(["", "/data/app/~~Zm9v==/x-YmFy==/base.apk=", "/system/app/A/A.apk="]), *_PM_PARTS
).map(lambda parts: ("package:" + "".join(parts), [parts[1]] * (1 + parts[4].count(","))))
pm_text = st.one_of(
    pm_noise,
    st.lists(pm_lines | pm_noise, min_size=1, max_size=8).map(lambda lines: "\n".join(lines) + "\n"),
    st.lists(pm_lines, min_size=1, max_size=8).map(lambda lines: "\r\n".join(lines) + "\r\n"),
)
USERS_PIECES = st.sampled_from(
    ["Users:\n", "\tUserInfo{", "0", "10", ":", "Owner", "c13", "1030", "}", " running", "\n"]
)
users_text = st.lists(USERS_PIECES, max_size=30).map("".join)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
OSQUERY_KEYS = st.sampled_from(
    [
        "name",
        "version",
        "bundle_identifier",
        "display_name",
        "bundle_short_version",
        "identifying_number",
        "package_family_name",
        "release",
        "epoch",
        "arch",
        "status",
        "maintainer",
        "path",
        "install_location",
    ]
)
osquery_rows = st.lists(
    st.dictionaries(OSQUERY_KEYS, st.text(max_size=15) | st.integers() | st.none(), max_size=8), max_size=6
)
INTUNE_PLATFORMS = st.sampled_from(
    ["windows", "ios", "macOS", "androidWorkProfile", "unknown", "chromeOS", "x"]
)


def _mostly(usual: st.SearchStrategy[object], rare: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """``usual`` nine times in ten, else ``rare``: inputs that mostly parse, so the fuzzing goes deep."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda n: usual if n else rare)


def _intune_entries(platform: str) -> st.SearchStrategy[list[dict[str, object]]]:
    known = st.sampled_from(["TikTok", "Microsoft Outlook", "CapCut", "7-Zip", "Douyin"])
    return st.lists(
        st.fixed_dictionaries(
            {"displayName": _mostly(known, st.text(max_size=20) | st.none() | st.integers())},
            optional={
                "version": st.text(max_size=10) | st.none(),
                "platform": _mostly(st.sampled_from([platform, "unknown"]), INTUNE_PLATFORMS),
            },
        ),
        max_size=6,
    )


intune_docs = INTUNE_PLATFORMS.flatmap(_intune_entries).flatmap(
    lambda rows: st.sampled_from([rows, {"value": rows}, {"value": rows, "@odata.nextLink": "x"}])
)
plist_text = st.text(  # plists cannot hold control characters other than tab and line breaks
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\t\n\r"), max_size=15
)
plist_scalars = (
    st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | plist_text | st.binary(max_size=8)
)
plist_items = st.dictionaries(
    st.sampled_from(["Identifier", "Name", "ShortVersion", "Version", "Installing", "Other"]),
    plist_scalars,
    max_size=5,
)
plist_good_items = st.fixed_dictionaries(
    {"Identifier": package_names},
    optional={"Name": plist_text, "ShortVersion": plist_text, "Installing": st.booleans()},
)
plist_docs = st.fixed_dictionaries(
    {},
    optional={
        "InstalledApplicationList": st.lists(plist_good_items, max_size=5)
        | st.lists(plist_items | plist_scalars, max_size=5)
        | plist_scalars,
        "Status": st.sampled_from(["Acknowledged", "Error", "NotNow"]) | plist_scalars,
        "UDID": plist_scalars,
    },
)


# ---- android-pm --------------------------------------------------------------------------------------


@FUZZ
@given(st.text())
def test_pm_list_packages_any_text(text: str) -> None:
    result = _only_input_errors(lambda: parse_pm_list_packages(text, where="f"))
    if result is not None:
        _check_apps(result)


@FUZZ
@given(pm_text, st.none() | st.integers(min_value=0, max_value=20))
def test_pm_list_packages_format_pieces(text: str, user: int | None) -> None:
    result = _only_input_errors(lambda: parse_pm_list_packages(text, where="f", user=user))
    if result is not None:
        _check_apps(result)


@FUZZ
@given(st.lists(pm_line_and_ids, min_size=1, max_size=8, unique_by=lambda pair: pair[1][0]))
def test_well_formed_pm_lines_are_each_read_with_their_package(lines: list[tuple[str, list[str]]]) -> None:
    """Not only no crash: a parser that refused or dropped good lines would pass the others."""
    apps = parse_pm_list_packages("\n".join(line for line, _ in lines) + "\n", where="f")
    assert sorted(app.id for app in apps) == sorted(name for _, names in lines for name in names)


@FUZZ
@given(pm_text)
def test_pm_package_line(line: str) -> None:
    result = _only_input_errors(lambda: parse_package_line(line, where="f"))
    if result is not None:
        _check_apps(result)


@FUZZ
@given(st.binary())
def test_pm_list_packages_any_bytes(data: bytes) -> None:
    _only_input_errors(lambda: parse_pm_list_packages(decode_text(data, where="f"), where="f"))


@FUZZ
@given(users_text | st.text())
def test_pm_list_users(text: str) -> None:
    _only_input_errors(lambda: parse_pm_list_users(text, where="f"))


# ---- osquery and intune (JSON) -------------------------------------------------------------------------


@FUZZ
@given(st.text())
def test_osquery_any_text(text: str) -> None:
    _only_input_errors(lambda: parse_osquery_json(text, where="f"))


@FUZZ
@given(json_values)
def test_osquery_any_json(value: object) -> None:
    _only_input_errors(lambda: parse_osquery_json(json.dumps(value), where="f"))


@FUZZ
@given(osquery_rows, st.sampled_from(TABLES))
def test_osquery_row_shapes(rows: list[dict[str, object]], table: Table | None) -> None:
    result = _only_input_errors(lambda: parse_osquery_json(json.dumps(rows), where="f", table=table))
    if result is not None:
        _check_apps(result[1])


@FUZZ
@given(st.binary())
def test_osquery_any_bytes(data: bytes) -> None:
    _only_input_errors(lambda: parse_osquery_json(decode_text(data, where="f"), where="f"))


@FUZZ
@given(st.text() | json_values.map(json.dumps))
def test_intune_any_text(text: str) -> None:
    _only_input_errors(lambda: parse_detected_apps(text, where="f"))


@FUZZ
@given(intune_docs, st.sampled_from(PLATFORMS))
def test_intune_doc_shapes(doc: object, platform: Platform | None) -> None:
    result = _only_input_errors(lambda: parse_detected_apps(json.dumps(doc), where="f", platform=platform))
    if result is not None:
        _check_apps(result[1])


# ---- ios-mdm (plist) ---------------------------------------------------------------------------------


@FUZZ
@given(st.binary())
def test_ios_mdm_any_bytes(data: bytes) -> None:
    _only_input_errors(lambda: parse_installed_application_list(data, where="f"))


@FUZZ
@given(st.text().map(lambda t: ("<?xml version='1.0'?><plist>" + t).encode()))
def test_ios_mdm_xml_noise(data: bytes) -> None:
    _only_input_errors(lambda: parse_installed_application_list(data, where="f"))


@FUZZ
@given(plist_docs, st.integers(min_value=0, max_value=400))
def test_ios_mdm_plist_shapes(doc: dict[str, object], cut: int) -> None:
    data = plistlib.dumps(doc, fmt=plistlib.FMT_XML)
    result = _only_input_errors(lambda: parse_installed_application_list(data, where="f"))
    if result is not None:
        _check_apps(result[0])
    truncated = data[: len(data) - cut] if cut else data
    _only_input_errors(lambda: parse_installed_application_list(truncated, where="f"))


# ---- linux tool output ---------------------------------------------------------------------------------


@FUZZ
@pytest.mark.parametrize("parse", [parse_dpkg_query, parse_rpm_qa, parse_flatpak_list, parse_snap_list])
@given(data=st.binary() | st.text().map(str.encode))
def test_linux_tool_output(parse: Callable[[bytes], object], data: bytes) -> None:
    result = _only_input_errors(lambda: parse(data))
    if isinstance(result, tuple):
        result = result[0]
    if result is not None:
        _check_apps(result)


@FUZZ
@given(st.text())
def test_os_release_never_raises(text: str) -> None:
    assert isinstance(parse_os_release(text), dict)
