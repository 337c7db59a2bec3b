"""osquery: the four tables, told apart by their columns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pyagent.collectors import CollectorError, CollectorInputError, get_collector
from pyagent.collectors.base import App
from pyagent.collectors.osquery import OsqueryCollector, detect_table, parse_osquery_json
from tests.collectors.conftest import FIXTURES

FakeTool = Callable[[str, str], Path]


def _collect(path: Path, **options: object) -> tuple[list[App], dict[str, object], str]:
    inventory = OsqueryCollector(from_file=path, **options).collect()  # type: ignore[arg-type]
    return inventory.apps, inventory.facts, inventory.platform


def _by_id(apps: list[App]) -> dict[str, App]:
    return {app.id: app for app in apps}


def test_macos_apps() -> None:
    apps, facts, platform = _collect(FIXTURES / "osquery" / "macos-apps.json")
    assert platform == "macos"
    assert facts["osquery_table"] == "apps"
    rows = json.loads((FIXTURES / "osquery" / "macos-apps.json").read_text())
    assert len(apps) == len(rows) == 11
    by_id = _by_id(apps)
    assert by_id["com.zhiliaoapp.musically"].to_json() == {
        "id": "com.zhiliaoapp.musically",
        "name": "TikTok",
        "version": "34.3.0",
        "source": "osquery",
        "path": "/Applications/TikTok.app",
    }
    assert by_id["com.microsoft.Outlook"].name == "Microsoft Outlook"
    assert by_id["com.microsoft.Outlook"].version == "16.83"
    assert by_id["com.apple.calculator"].name == "Calculator"  # no display_name: bundle_name
    legacy = by_id["name:Legacy Scanner"]  # no bundle identifier: named, and marked as such
    assert legacy.evidence == "display_name"
    assert legacy.name == "Legacy Scanner"
    assert all(a.evidence is None for a in apps if a is not legacy)


def test_windows_programs_before_osquery_5_17() -> None:
    apps, _, platform = _collect(FIXTURES / "osquery" / "windows-programs-osquery-5.16.json")
    assert platform == "windows"
    by_id = _by_id(apps)
    assert by_id["{3b2ec71d-7b41-4a7c-8a5e-2ab4ab8b8b5e}"].evidence is None  # MSI product code
    capcut = by_id["ByteDance.CapCut"]  # no identifier; the display name is a known app
    assert (capcut.name, capcut.evidence, capcut.version) == ("CapCut", "display_name", "3.9.0.1459")
    firefox = by_id["name:Mozilla Firefox (x64 en-GB)"]
    assert firefox.evidence == "display_name"
    assert len(apps) == 8


def test_windows_programs_msix_package_family_name() -> None:
    apps, facts, platform = _collect(FIXTURES / "osquery" / "windows-programs-osquery-5.17-msix.json")
    assert platform == "windows"
    assert "store_apps_listed" not in facts
    by_id = _by_id(apps)
    tiktok = by_id["BytedancePte.Ltd.TikTok_6yccndn6064se"]
    assert (tiktok.name, tiktok.evidence, tiktok.version) == ("TikTok", None, "1.0.19.0")
    assert tiktok.path == r"C:\Program Files\WindowsApps\BytedancePte.Ltd.TikTok_1.0.19.0_x64__6yccndn6064se"
    assert by_id["MSTeams_8wekyb3d8bbwe"].evidence is None
    assert len(apps) == 11


def test_programs_rows_with_neither_an_identifier_nor_a_name_are_skipped_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """osquery lists any uninstall registry key with a value it knows: one holding only an
    ``UninstallString`` is a row without a name. It can match no ban, and the rest of the inventory
    (TikTok's Store app here) is still read."""
    rows = json.loads((FIXTURES / "osquery" / "windows-programs-osquery-5.17-msix.json").read_text())
    leftover = {**dict.fromkeys(rows[0], ""), "uninstall_string": r"C:\Windows\unins000.exe"}
    capture = tmp_path / "programs.json"
    capture.write_text(json.dumps([leftover, *rows, leftover]))
    apps, facts, platform = _collect(capture)
    assert (platform, len(apps), facts["unnamed_skipped"]) == ("windows", 11, 2)
    assert "BytedancePte.Ltd.TikTok_6yccndn6064se" in _by_id(apps)
    assert capsys.readouterr().err == (
        f"pyagent: note: {capture}: 2 row(s) with neither an identifier nor a name skipped (row 1, 13): "
        "no ban can match them\n"
    )


DEBIAN12 = [  # debian12-deb_packages.json, as read: zoom (config-files only) and libc6:i386 left out
    ("adduser", "3.134"), ("bash", "5.2.15-2+b7"), ("coreutils", "9.1-1"), ("libc6", "2.36-9+deb12u7"),
    ("bsdutils", "1:2.38.1-5+deb12u1"), ("firefox-esr", "115.9.1esr-1~deb12u1"),
    ("teams-for-linux", "1.4.22"), ("openssh-server", "1:9.2p1-2+deb12u2"),
]  # fmt: skip


def test_deb_packages() -> None:
    apps, facts, platform = _collect(FIXTURES / "osquery" / "debian12-deb_packages.json")
    assert platform == "linux"
    ids = [a.id for a in apps]
    assert "zoom" not in ids  # deinstall ok config-files: only configuration left
    assert facts["not_installed_skipped"] == 1
    assert "teams-for-linux" in ids  # hold ok installed: on the disk
    # amd64 and i386 rows: the report has no architecture field, so they make one identical entry
    assert ids.count("libc6") == 1
    assert [(a.id, a.version) for a in apps] == DEBIAN12


def test_rpm_packages() -> None:
    apps, _, platform = _collect(FIXTURES / "osquery" / "fedora40-rpm_packages.json")
    assert platform == "linux"
    # glibc x86_64 and i686 are the same entry (same id and version); two kernels are two
    assert [(a.id, a.version) for a in apps] == [
        ("bash", "5.2.26-3.fc40"), ("glibc", "2.39-6.fc40"), ("kernel-core", "6.8.5-301.fc40"),
        ("kernel-core", "6.8.7-300.fc40"), ("NetworkManager", "1:1.46.0-1.fc40"),
        ("gpg-pubkey", "a15b79cc-63d04c2c"),
    ]  # fmt: skip


@pytest.mark.parametrize("table", [None, "programs"])
def test_an_empty_result_is_refused(table: str | None) -> None:
    """As an empty `pm list packages` capture: a device reported with no software would be compliant."""
    with pytest.raises(CollectorInputError, match=r"no-rows.json: no rows: osquery found no software"):
        _collect(FIXTURES / "osquery" / "no-rows.json", table=table)


#: One row of `osqueryi --json "select * from processes"` on Windows (osquery 5.12), TikTok running.
PROCESSES_ROW = {
    "cmdline": '"C:\\Program Files\\WindowsApps\\BytedancePte.Ltd.TikTok_1.0.22.0_x64__6yccndn6064se'
    '\\TikTok.exe"',
    "cwd": "C:\\Windows\\System32\\",
    "disk_bytes_read": "1048576",
    "disk_bytes_written": "0",
    "egid": "-1",
    "elapsed_time": "182",
    "elevated_token": "0",
    "euid": "-1",
    "gid": "-1",
    "handle_count": "712",
    "name": "TikTok.exe",
    "nice": "32",
    "on_disk": "1",
    "parent": "1044",
    "path": "C:\\Program Files\\WindowsApps\\BytedancePte.Ltd.TikTok_1.0.22.0_x64__6yccndn6064se\\TikTok.exe",
    "percent_processor_time": "3125000",
    "pgroup": "-1",
    "pid": "9132",
    "protection_type": "",
    "resident_size": "187392000",
    "root": "",
    "sgid": "-1",
    "start_time": "1678959000",
    "state": "STILL_ACTIVE",
    "suid": "-1",
    "system_time": "1406",
    "threads": "38",
    "total_size": "201412608",
    "uid": "-1",
    "user_time": "1718",
    "virtual_process": "0",
    "wired_size": "0",
}


@pytest.mark.parametrize(
    ("rows", "columns"),
    [
        ([PROCESSES_ROW], "cmdline, cwd, disk_bytes_read"),
        (  # `select * from chocolatey_packages`
            [{"author": "ByteDance", "license": "", "name": "capcut", "path": "C:\\ProgramData\\chocolatey"
              "\\lib\\capcut\\capcut.nuspec", "summary": "", "version": "3.6.0"}],
            "author, license, summary",
        ),
        (  # `select * from kernel_modules`
            [{"address": "0xffffffffc0a00000", "name": "nvme", "size": "49152", "status": "Live",
              "used_by": "-"}],
            "address, used_by",
        ),
    ],
)  # fmt: skip
def test_rows_of_another_table_are_refused(rows: list[dict[str, str]], columns: str) -> None:
    """`path` (apps), `status` and `size` (deb_packages) are columns of many osquery tables: rows of
    processes were read as a Mac's apps, and the device, running TikTok, was compliant."""
    with pytest.raises(CollectorInputError) as refused:
        parse_osquery_json(json.dumps(rows), where="f")
    assert str(refused.value).startswith(f"f: columns '{columns}")
    assert str(refused.value).endswith(
        " are not columns of apps, programs, deb_packages or rpm_packages: rows of another table? "
        "(name the table with --table to read them as one of these)"
    )


def test_a_programs_export_without_package_family_name_says_store_apps_are_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    export = FIXTURES / "osquery" / "windows-programs-osquery-5.16.json"
    _, facts, _ = _collect(export)
    assert facts["store_apps_listed"] is False
    assert capsys.readouterr().err == (
        f"pyagent: note: {export}: programs rows without "
        "package_family_name (osquery before 5.17, or not selected) list no Store (MSIX) apps, TikTok's "
        "Windows app among them\n"
    )


def test_forced_table_must_match_the_columns() -> None:
    with pytest.raises(CollectorInputError, match=r"the columns are those of apps, not programs"):
        _collect(FIXTURES / "osquery" / "macos-apps.json", table="programs")


def test_unknown_table_option() -> None:
    with pytest.raises(CollectorInputError, match=r"unknown table 'processes'"):
        OsqueryCollector(from_file="x", table="processes")  # type: ignore[arg-type]


def test_pm_list_packages_text_given_to_osquery() -> None:
    with pytest.raises(
        CollectorInputError, match=r"not osqueryi --json output \(a JSON array\): it starts with"
    ):
        _collect(FIXTURES / "android-pm" / "personal-plain.txt")


@pytest.mark.parametrize(
    ("prefix", "shown"),
    [
        ("W0316 09:30:00.123456 12345 init.cpp:700] Error reading config\n", "'W0316 09:30:00.123456 12345 "),
        ("Error: no such table: apps\n", "'Error: no such table: apps'"),
    ],
)
def test_osqueryi_messages_saved_with_its_output_are_said_so(prefix: str, shown: str, tmp_path: Path) -> None:
    """``osqueryi --json ... > f 2>&1``: its glog lines or error before the JSON ("line 1, column 1")."""
    export = tmp_path / "apps.json"
    export.write_text(prefix + '[{"name": "bash", "version": "5", "release": "1"}]')
    with pytest.raises(CollectorInputError) as refused:
        _collect(export)
    message = str(refused.value)
    assert message.startswith(f"{export}: not osqueryi --json output (a JSON array): it starts with {shown}")
    assert message.endswith(
        "(osqueryi writes its log lines and errors to stderr: save its standard output only, "
        "`osqueryi --json 'SELECT ...' > FILE`)"
    )


def test_intune_export_given_to_osquery() -> None:
    with pytest.raises(CollectorInputError, match=r"expected a JSON array of rows"):
        _collect(FIXTURES / "intune" / "windows-laptop-detectedapps.json")


@pytest.mark.parametrize(
    ("columns", "table"),
    [
        ({"bundle_identifier", "name"}, "apps"),
        ({"name", "identifying_number"}, "programs"),
        ({"name", "package_family_name"}, "programs"),
        ({"name", "version", "release", "arch"}, "rpm_packages"),
        ({"name", "version", "arch", "maintainer"}, "deb_packages"),
        ({"name", "version", "arch"}, "deb_packages"),
        ({"name", "arch"}, "deb_packages"),
        ({"name", "version"}, None),  # programs has both too: the table must be named
        ({"name", "version", "publisher"}, "programs"),
        ({"name", "version", "arch", "vendor"}, "rpm_packages"),
        ({"name", "publisher", "maintainer"}, None),
        ({"name", "path"}, None),  # processes, chocolatey_packages, python_packages, ... have both
        ({"name", "status", "size"}, None),  # kernel_modules
        ({"name", "path", "bundle_identifier"}, "apps"),
        ({"name", "version", "status", "arch"}, "deb_packages"),
        ({"name", "pid", "path"}, None),
    ],
)
def test_detect_table(columns: set[str], table: str | None) -> None:
    assert detect_table(frozenset(columns)) == table


def test_a_programs_export_without_identifiers_is_windows_and_finds_tiktok_by_name() -> None:
    """`select name, version, publisher from programs`: publisher tells the table; read as Linux
    packages, TikTok would have been the id "TikTok" on linux, matched by no ban."""
    rows = '[{"name": "TikTok", "version": "1.0.22.0", "publisher": "TikTok Pte. Ltd."}]'
    table, [app], _ = parse_osquery_json(rows, where="f")
    assert (table, app.id, app.evidence) == (
        "programs",
        "BytedancePte.Ltd.TikTok_6yccndn6064se",
        "display_name",
    )
    bare = '[{"name": "TikTok", "version": "1.0.22.0"}]'
    table, [app], _ = parse_osquery_json(bare, where="f", table="programs")
    assert (table, app.id) == ("programs", "BytedancePte.Ltd.TikTok_6yccndn6064se")


@pytest.mark.parametrize(
    "rows",
    [
        '[{"name": "bash", "version": "5.2.26", "arch": "x86_64"}]',
        '[{"name": "bash", "version": "5.2.26", "arch": "x86_64", "vendor": "Fedora Project"}]',
    ],
)
def test_rpm_packages_with_the_columns_domain_md_lists_may_be_named(rows: str) -> None:
    table, [app], facts = parse_osquery_json(rows, where="f", table="rpm_packages")
    assert (table, app.id, app.version, facts["osquery_table"]) == (
        "rpm_packages",
        "bash",
        "5.2.26",
        "rpm_packages",
    )


def test_live_osqueryi(fake_tool: FakeTool, tmp_path: Path) -> None:
    log = tmp_path / "osqueryi.log"
    fake_tool(
        "osqueryi",
        f"""printf '%s\\n' "$@" >> '{log}'\ncat '{FIXTURES}/osquery/debian12-deb_packages.json'\n""",
    )
    inventory = get_collector("osquery", table="deb_packages").collect()
    assert log.read_text().splitlines() == ["--json", "select * from deb_packages"]
    assert inventory.platform == "linux" and inventory.facts["input"] == "osqueryi"
    assert [(a.id, a.version) for a in inventory.apps] == DEBIAN12


def test_live_osqueryi_fails(fake_tool: FakeTool) -> None:
    fake_tool("osqueryi", "echo 'Error: no such table: apps' >&2\nexit 1\n")
    with pytest.raises(CollectorError, match=r"^osqueryi: exited with status 1: Error: no such table: apps$"):
        OsqueryCollector(table="apps").collect()


def test_live_osqueryi_garbage_is_a_tool_failure(fake_tool: FakeTool) -> None:
    fake_tool("osqueryi", "echo 'W0101 something'\n")
    with pytest.raises(CollectorError, match=r"osqueryi: unexpected output: .*not valid JSON"):
        OsqueryCollector(table="apps").collect()


def test_linux_rows_with_only_the_documented_columns() -> None:
    """domain.md names `name`, `version`, `arch` for deb_packages / rpm_packages: those alone are enough."""
    text = json.dumps(
        [
            {"name": "firefox-esr", "version": "115.9.1esr-1~deb12u1", "arch": "amd64"},
            {"name": "bash", "version": "5.2.15-2+b2", "arch": "amd64"},
        ]
    )
    table, apps, _facts = parse_osquery_json(text, where="f")
    assert table == "deb_packages"
    assert [(a.id, a.version) for a in apps] == [
        ("firefox-esr", "115.9.1esr-1~deb12u1"),
        ("bash", "5.2.15-2+b2"),
    ]


def test_rows_of_one_table_may_differ_in_columns() -> None:
    text = json.dumps(
        [
            {
                "bundle_identifier": "com.zhiliaoapp.musically",
                "display_name": "TikTok",
                "bundle_short_version": "34.1",
            },
            {
                "bundle_identifier": "org.mozilla.firefox",
                "display_name": "Firefox",
                "bundle_short_version": "124.0",
                "path": "/Applications/Firefox.app",
            },
        ]
    )
    table, apps, _facts = parse_osquery_json(text, where="f")
    assert table == "apps"
    assert [a.id for a in apps] == ["com.zhiliaoapp.musically", "org.mozilla.firefox"]


def test_a_tab_in_a_version_is_kept_where_an_id_refuses_it() -> None:
    """The schema refuses control characters in ids only; a version or name keeps what it says."""
    _, [app], _ = parse_osquery_json('[{"name": "bash", "version": "5.2\\t", "release": "1"}]', where="f")
    assert (app.id, app.version) == ("bash", "5.2\t-1")


def test_rows_of_which_none_is_installed_are_refused_not_a_compliant_device() -> None:
    """Only TikTok's configuration is left (``deinstall ok config-files``): no installed software at all
    is no inventory, not a device with no apps."""
    rows = '[{"name": "tiktok", "version": "1", "status": "deinstall ok config-files", "arch": "amd64"}]'
    with pytest.raises(CollectorInputError) as err:
        parse_osquery_json(rows, where="f")
    assert str(err.value) == (
        "f: none of its 1 rows is installed software with an identifier or a name, and a device reported "
        "with no apps would be compliant"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[{"bundle_identifier": "com.a", "display_name": "X\\ud800", "path": "/A"}]',
         "contains an unpaired UTF-16 surrogate escape (\\ud800-\\udfff), which is no text"),
        ('[{"bundle_identifier": "com.zhiliaoapp.musically", "bundle_identifier": "com.safe", "path": "/A"}]',
         "not valid JSON: $[0].bundle_identifier: duplicate key 'bundle_identifier'"),
    ],
)  # fmt: skip
def test_an_export_that_says_two_things_or_no_text_is_refused(text: str, problem: str) -> None:
    """A lone surrogate had been an internal error after emptying -o; a key said twice had kept the last
    (a TikTok row read as com.safe), where a report with a key said twice is refused."""
    with pytest.raises(CollectorInputError) as err:
        parse_osquery_json(text, where="f")
    assert str(err.value) == f"f: {problem}"
    paired = (
        parse_osquery_json(text.replace("\\ud800", "\\ud83d\\ude00"), where="f") if "ud800" in text else None
    )
    assert paired is None or paired[1][0].name == "X\U0001f600"
