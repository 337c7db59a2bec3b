"""android-pm: `pm list packages` captures in all their variants, and live mode through a fake adb."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyagent.collectors import CollectorError, CollectorInputError, get_collector
from pyagent.collectors.android_pm import (
    MAX_LINE_CHARS,
    AndroidPmCollector,
    parse_package_line,
    parse_pm_list_packages,
    parse_pm_list_users,
)
from pyagent.collectors.base import MAX_ID_CHARS, MAX_PATH_CHARS, App
from tests.collectors.conftest import FIXTURES

FakeTool = Callable[[str, str], Path]
LIVE = "live-pixel-android14-work-profile"


def _ids_in_capture(path: Path) -> list[str]:
    """The package names of a capture, read independently of the collector: text after the last '='
    (or after 'package:'), up to the first space."""
    names = []
    for line in path.read_text().splitlines():
        body = line.strip().removeprefix("package:").split(" ")[0]
        names.append(body.rsplit("=", 1)[-1])
    return names


def _by_id(apps: list[App]) -> dict[str, App]:
    return {app.id: app for app in apps}


def test_personal_phone_capture_reports_every_package_with_outlook_and_tiktok() -> None:
    capture = FIXTURES / "android-pm" / "personal-outlook-tiktok-f-i-versioncode.txt"
    inventory = AndroidPmCollector(from_file=capture).collect()
    assert inventory.platform == "android"
    assert inventory.collector_json() == {"name": "android-pm", "version": "0.1.0"}
    assert [app.id for app in inventory.apps] == _ids_in_capture(capture)
    assert len(inventory.apps) == 45
    apps = _by_id(inventory.apps)
    outlook = apps["com.microsoft.office.outlook"]
    assert outlook.version == "4453312"
    assert outlook.installer == "com.android.vending"
    assert outlook.source == "android-pm"
    assert outlook.path is not None
    assert outlook.path.startswith("/data/app/~~") and outlook.path.endswith("/base.apk")
    assert "==/com.microsoft.office.outlook-" in outlook.path
    tiktok = apps["com.zhiliaoapp.musically"]
    assert tiktok.to_json() == {
        "id": "com.zhiliaoapp.musically",
        "version": "2023403030",
        "source": "android-pm",
        "installer": "com.android.vending",
        "path": tiktok.path,
    }
    assert apps["android"].path == "/system/framework/framework-res.apk"
    assert apps["android"].installer is None  # installer=null
    assert apps["com.sec.android.app.sbrowser"].installer == "com.google.android.packageinstaller"
    assert inventory.work_profile is None and inventory.os_version is None


@pytest.mark.parametrize("name", ["personal-plain.txt", "personal-f.txt", "personal-i.txt"])
def test_other_flag_variants_list_the_same_packages(name: str) -> None:
    full = AndroidPmCollector(
        from_file=FIXTURES / "android-pm" / "personal-outlook-tiktok-f-i-versioncode.txt"
    ).collect()
    variant = AndroidPmCollector(from_file=FIXTURES / "android-pm" / name).collect()
    assert [a.id for a in variant.apps] == [a.id for a in full.apps]
    assert all(a.version is None for a in variant.apps)
    assert all((a.path is not None) == (name == "personal-f.txt") for a in variant.apps)


def test_all_users_capture_gives_one_entry_per_user() -> None:
    inventory = AndroidPmCollector(
        from_file=FIXTURES / "android-pm" / "android14-all-users-U-versioncode.txt"
    ).collect()
    entries = {(a.id, a.user) for a in inventory.apps}
    assert ("com.microsoft.office.outlook", 0) in entries
    assert ("com.microsoft.office.outlook", 10) in entries
    assert ("com.zhiliaoapp.musically", 0) in entries
    assert ("com.zhiliaoapp.musically", 10) not in entries
    assert ("com.microsoft.teams", 10) in entries and ("com.microsoft.teams", 0) not in entries
    assert ("android", 0) in entries and ("android", 10) in entries
    assert inventory.facts["android_users_seen"] == [0, 10]


def test_crlf_capture_from_an_old_device() -> None:
    inventory = AndroidPmCollector(
        from_file=FIXTURES / "android-pm" / "android6-adb-pty-crlf-f.txt"
    ).collect()
    apps = _by_id(inventory.apps)
    assert apps["com.zhiliaoapp.musically"].path == "/data/app/com.zhiliaoapp.musically-1/base.apk"
    assert len(apps) == 7


def test_package_name_is_after_the_last_equals_sign() -> None:
    line = (
        "package:/data/app/~~QmFzZTY0PT0=a==/com.x.y-Zm9vYmFy==/base.apk=com.x.y versionCode:12"
        "  installer=null uid:10234"
    )
    [app] = parse_package_line(line, where="t")
    assert app == App(
        id="com.x.y",
        version="12",
        source="android-pm",
        installer=None,
        user=0,
        path="/data/app/~~QmFzZTY0PT0=a==/com.x.y-Zm9vYmFy==/base.apk",
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("package:com.x", {"id": "com.x"}),
        ("package:com.x versionCode:7", {"id": "com.x", "version": "7"}),
        ("package:com.x  installer=com.android.vending", {"id": "com.x", "installer": "com.android.vending"}),
        ("package:com.x uid:1010123", {"id": "com.x", "user": 10}),
        ("package:com.x versionCode:7 uid:10123", {"id": "com.x", "version": "7", "user": 0}),
        ("package:com.x  installer=null uid:10123", {"id": "com.x", "user": 0}),
        ("package:/a/b.apk=com.x  installer=null", {"id": "com.x", "path": "/a/b.apk"}),
        ("  package:com.x  \r", {"id": "com.x"}),
    ],
)
def test_line_variants(line: str, expected: dict[str, object]) -> None:
    [app] = parse_package_line(line, where="t")
    assert app.to_json() == {**expected, "source": "android-pm"}


def test_user_option_labels_apps_without_uid(tmp_path: Path) -> None:
    capture = tmp_path / "work.txt"
    capture.write_text("package:com.microsoft.office.outlook\npackage:com.android.vending\n")
    inventory = AndroidPmCollector(from_file=capture, user=10).collect()
    assert {a.user for a in inventory.apps} == {10}


def test_uid_of_another_user_than_the_one_given_is_refused() -> None:
    with pytest.raises(CollectorInputError, match=r"uid 10123 is not in user 10"):
        parse_package_line("package:com.x uid:10123", where="t", user=10)


def test_blank_lines_are_ignored() -> None:
    assert [a.id for a in parse_pm_list_packages("\n\npackage:a.b\n\n  \npackage:c.d\n", where="t")] == [
        "a.b",
        "c.d",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("package:a.b\nError: java.lang.SecurityException: Shell does not have permission\n", r"^f:2: not a"),
        ("package:a.b\npackage:\n", r"^f:2: not a"),
        ("package:a.b\npackage:com.x garbage\n", r"^f:2: not a package name: 'com.x garbage'"),
        ("package:a.b\npackage:/data/app/x/base.apk=\n", r"^f:2: not a package name: ''"),
        ("package:=com.x\n", r"^f:1: empty APK path"),
        ("package:com.x versionCode:abc\n", r"^f:1: not a package name"),
        ("package:com.x uid:\u0661\u0660\n", r"^f:1: not a package name"),
        ("permission:android.permission.INTERNET\n", r"^f:1: not a `pm list packages` line"),
        ("sdk:com.google.android.sdk.ads:33\n", r"^f:1: not a `pm list packages` line"),
        ("package:com.x versionCode:1 versionCode:2\n", r"^f:1: not a package name: 'com.x versionCode:1'"),
        (
            "package:a." + "b" * 520 + "\n",
            r"^f:1: not a package name: 'a\.b+…' \(it is 522 characters; an id is at most 512\)$",
        ),
        # another tool's field (Termux's pm -l) or a suffix given twice: never the app after its '='
        (
            "package:com.zhiliaoapp.musically  launcher=com.ss.android.ugc.aweme.splash.SplashActivity\n",
            r"^f:1: not a package name: 'com.zhiliaoapp.musically launcher=com.ss.android.ugc.aweme.splash."
            r"SplashActivity' \(pm prints only versionCode:, installer= and uid: after it, each once\)$",
        ),
        (
            "package:com.zhiliaoapp.musically  installer=com.android.vending  installer=com.android.vending"
            "\n",
            r"^f:1: not a package name: 'com.zhiliaoapp.musically installer=com.android.vending' \(pm",
        ),
        (
            "package:/data/app/x/base.apk=com.zhiliaoapp.musically  launcher=com.x.Main\n",
            r"^f:1: not a package",
        ),
        (
            "package:data/app/x/base.apk=com.zhiliaoapp.musically\n",
            r"^f:1: not an APK path \(pm prints absolute",
        ),
        ("\n\n", r"^f: no `package:` lines$"),
    ],
)
def test_bad_lines_are_errors_naming_file_and_line(text: str, message: str) -> None:
    with pytest.raises(CollectorInputError, match=message):
        parse_pm_list_packages(text, where="f")


def test_a_line_longer_than_any_package_line_is_refused_before_it_is_parsed() -> None:
    """A line of megabytes (a corrupt or hostile capture) is refused by its length alone: matched as a
    package name first, 50 MB took 3 GB of memory."""
    longest = "package:/" + "p" * (MAX_PATH_CHARS - 1) + "=" + "a" * MAX_ID_CHARS + " versionCode:1"
    assert [app.id for app in parse_pm_list_packages(longest + "\n", where="f")] == ["a" * MAX_ID_CHARS]
    huge = "package:" + "a." * 1_000_000 + "!"
    with pytest.raises(CollectorInputError) as refused:
        parse_pm_list_packages(f"package:a.b\n{huge}\n", where="f")
    assert str(refused.value) == (
        f"f:2: a line of 2000009 characters, longer than any package line ({MAX_LINE_CHARS} at most): "
        f"'package:{'a.' * 35}a…'"
    )


@pytest.mark.parametrize(
    "text", ["package:a.b\npackage:c.d versionCo", "package:a.b\npackage:com.zhiliaoapp.musi"]
)
def test_live_output_cut_mid_line_is_refused(text: str) -> None:
    """pm ends every line with a line break: live output without one was cut (``com.zhiliaoapp.musi``)."""
    with pytest.raises(CollectorInputError, match=r"^f:2: the last line has no line break, so the capture"):
        parse_pm_list_packages(text, where="f", whole_lines=True)


def test_a_files_last_line_may_lack_its_line_break() -> None:
    apps = parse_pm_list_packages("package:com.android.chrome\npackage:com.zhiliaoapp.musically", where="f")
    assert [app.id for app in apps] == ["com.android.chrome", "com.zhiliaoapp.musically"]


@pytest.mark.parametrize(
    "line",
    [
        "package:/data/app/~~a==/com.zhiliaoapp.musically-b==/base.apk=com.zhiliaoapp.musically"
        "  installer=com.android.vending versionCode:2023 uid:10234",
        "package:com.zhiliaoapp.musically uid:10234 versionCode:2023  installer=com.android.vending",
        "package:com.zhiliaoapp.musically versionCode:2023 uid:10234  installer=com.android.vending",
    ],
)
def test_suffixes_are_read_in_any_order(line: str) -> None:
    """A capture that went through another tool may have its suffixes reordered: the package must
    never become the installer's name (``com.android.vending``), hiding TikTok."""
    [app] = parse_package_line(line, where="f:1")
    assert (app.id, app.version, app.installer, app.user) == (
        "com.zhiliaoapp.musically", "2023", "com.android.vending", 0,
    )  # fmt: skip


LINKER = "WARNING: linker: /system/bin/pm: unused DT entry: type 0x6ffffffe arg 0x8b4\n"


def test_the_linker_s_warnings_before_pm_s_output_are_skipped_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Some devices' bionic linker warns on every command, and `adb shell` merges it into the output."""
    capture = tmp_path / "pm.txt"
    capture.write_text(
        LINKER + "package:com.android.chrome\n" + LINKER + "package:com.zhiliaoapp.musically\n"
    )
    inventory = AndroidPmCollector(from_file=capture).collect()
    assert [app.id for app in inventory.apps] == ["com.android.chrome", "com.zhiliaoapp.musically"]
    assert inventory.facts["linker_warnings_skipped"] == 2
    notes = capsys.readouterr().err.splitlines()
    assert [line.split(": skipped")[0] for line in notes] == [
        f"pyagent: note: {capture}:1",
        f"pyagent: note: {capture}:3",
    ]
    with pytest.raises(CollectorInputError, match=r"f:1: not a `pm list packages` line: 'WARNING: linker'"):
        parse_pm_list_packages("WARNING: linker\npackage:a.b\n", where="f")  # only the linker's own prefix
    run_into = LINKER.rstrip("\n") + "package:com.zhiliaoapp.musically\n"  # pm's output on the same line
    with pytest.raises(CollectorInputError, match=r"f:1: not a `pm list packages` line: 'WARNING: linker: "):
        parse_pm_list_packages(run_into, where="f")  # never skipped with a banned app in it


def test_osquery_json_given_to_android_pm() -> None:
    with pytest.raises(CollectorInputError, match=r"macos-apps\.json:1: not a `pm list packages` line: '\['"):
        AndroidPmCollector(from_file=FIXTURES / "osquery" / "macos-apps.json").collect()


def test_pm_list_users() -> None:
    users = parse_pm_list_users((FIXTURES / "android-pm" / LIVE / "pm-list-users.txt").read_text(), where="u")
    assert [(u.id, u.flags, u.managed_profile, u.running) for u in users] == [
        (0, 0x4C13, False, True),
        (10, 0x1030, True, True),
    ]


def test_pm_list_users_name_with_colons() -> None:
    [user] = parse_pm_list_users("Users:\n\tUserInfo{11:Guest: visitor:14}\n", where="u")
    assert (user.id, user.flags, user.running) == (11, 0x14, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("UserInfo{0:Owner:c13} running\n", "u: not `pm list users` output (no 'Users:' header)"),
        ("Users:\n", "u: no users listed"),
        ("Users:\n\tUserInfo{x:Owner:c13}\n", "u:2: not a `pm list users` line: '\\tUserInfo{x:Owner:c13}'"),
        ("Users:\n\tjunk", "u:2: not a `pm list users` line: '\\tjunk'"),
    ],
)
def test_bad_pm_list_users(text: str, message: str) -> None:
    with pytest.raises(CollectorInputError, match=f"^{re.escape(message)}$"):
        parse_pm_list_users(text, where="u")


# ---- live mode, through a fake adb that replays real captures -------------------------------------------


def _install_replay_adb(fake_tool: FakeTool, tmp_path: Path, users: str | None = None) -> Path:
    live = FIXTURES / "android-pm" / LIVE
    log = tmp_path / "adb.log"
    users_file = live / "pm-list-users.txt"
    if users is not None:
        users_file = tmp_path / "users.txt"
        users_file.write_text(users)
    packages = "shell pm list packages -f -i -U --show-versioncode --user"
    fake_tool(
        "adb",
        f"""echo "$*" >> '{log}'
if [ "$1" = "-s" ]; then shift 2; fi
case "$*" in
  "shell pm list users") cat '{users_file}' ;;
  "shell getprop ro.build.version.release") cat '{live}/getprop-ro.build.version.release.txt' ;;
  "{packages} 0") cat '{live}/pm-list-packages-f-i-U-versioncode-user-0.txt' ;;
  "{packages} 10") cat '{live}/pm-list-packages-f-i-U-versioncode-user-10.txt' ;;
  *) echo "fake adb: unexpected arguments: $*" >&2; exit 64 ;;
esac
""",
    )
    return log


def test_live_reads_every_user_and_finds_the_work_profile(fake_tool: FakeTool, tmp_path: Path) -> None:
    log = _install_replay_adb(fake_tool, tmp_path)
    inventory = get_collector("android-pm").collect()
    assert inventory.platform == "android"
    assert inventory.os_version == "14"
    assert inventory.work_profile is True
    assert inventory.facts["android_users"] == [
        {"id": 0, "flags": "0x4c13", "managed_profile": False, "running": True},
        {"id": 10, "flags": "0x1030", "managed_profile": True, "running": True},
    ]
    entries = {(a.id, a.user) for a in inventory.apps}
    assert ("com.zhiliaoapp.musically", 0) in entries
    assert ("com.zhiliaoapp.musically", 10) not in entries
    assert {("com.microsoft.office.outlook", 0), ("com.microsoft.office.outlook", 10)} <= entries
    assert ("com.microsoft.teams", 10) in entries
    live = FIXTURES / "android-pm" / LIVE
    for user in (0, 10):
        lines = (live / f"pm-list-packages-f-i-U-versioncode-user-{user}.txt").read_text().splitlines()
        assert sorted(a.id for a in inventory.apps if a.user == user) == sorted(
            _ids_in_capture(live / f"pm-list-packages-f-i-U-versioncode-user-{user}.txt")
        )
        assert len([a for a in inventory.apps if a.user == user]) == len(lines)
    assert log.read_text().splitlines() == [
        "shell pm list users",
        "shell getprop ro.build.version.release",
        "shell pm list packages -f -i -U --show-versioncode --user 0",
        "shell pm list packages -f -i -U --show-versioncode --user 10",
    ]


def test_live_with_serial_and_one_user(fake_tool: FakeTool, tmp_path: Path) -> None:
    log = _install_replay_adb(fake_tool, tmp_path)
    inventory = AndroidPmCollector(serial="R58M123ABC", user=10).collect()
    assert {a.user for a in inventory.apps} == {10}
    assert inventory.facts["adb_serial"] == "R58M123ABC"
    assert log.read_text().splitlines()[-1] == (
        "-s R58M123ABC shell pm list packages -f -i -U --show-versioncode --user 10"
    )


def test_live_without_work_profile(fake_tool: FakeTool, tmp_path: Path) -> None:
    _install_replay_adb(fake_tool, tmp_path, users="Users:\n\tUserInfo{0:Owner:c13} running\n")
    inventory = AndroidPmCollector().collect()
    assert inventory.work_profile is False
    assert {a.user for a in inventory.apps} == {0}


def test_live_unknown_user(fake_tool: FakeTool, tmp_path: Path) -> None:
    _install_replay_adb(fake_tool, tmp_path)
    with pytest.raises(CollectorInputError, match=r"the device has no user 5 \(users: 0, 10\)"):
        AndroidPmCollector(user=5).collect()


def test_live_adb_hangs(fake_tool: FakeTool) -> None:
    fake_tool("adb", "exec sleep 30\n")
    start = time.monotonic()
    with pytest.raises(CollectorError, match=r"^adb: no result after 0\.5 s; stopped it$") as info:
        AndroidPmCollector(timeout=0.5).collect()
    assert info.value.exit_code == 3
    assert time.monotonic() - start < 5


def test_live_no_device(fake_tool: FakeTool) -> None:
    fake_tool("adb", "echo 'adb: no devices/emulators found' >&2\nexit 1\n")
    with pytest.raises(CollectorError, match=r"^adb: exited with status 1: adb: no devices/emulators found$"):
        AndroidPmCollector().collect()


def test_live_adb_missing(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match=r"^adb: not found"):
        AndroidPmCollector(adb=str(tmp_path / "adb")).collect()


def test_live_unexpected_output_is_a_tool_failure(fake_tool: FakeTool) -> None:
    users = FIXTURES / "android-pm" / LIVE / "pm-list-users.txt"
    fake_tool(
        "adb",
        f"""case "$*" in
  "shell pm list users") cat '{users}' ;;
  "shell getprop ro.build.version.release") echo 8.0.0 ;;
  *) echo "Error: Unknown option: --show-versioncode" ;;
esac
""",
    )
    with pytest.raises(CollectorError, match=r"adb: unexpected output: .*--user 0:1: not a `pm list") as info:
        AndroidPmCollector().collect()
    assert info.value.exit_code == 3


def test_serial_with_file_is_a_usage_error(tmp_path: Path) -> None:
    refused = r"^android-pm: a serial is for live mode; it cannot go with a file$"
    with pytest.raises(CollectorInputError, match=refused):
        AndroidPmCollector(from_file=tmp_path / "x.txt", serial="abc")


@pytest.mark.parametrize("user", [-1, True, "10"])
def test_bad_user_option(user: object) -> None:
    with pytest.raises(CollectorInputError, match=r"user must be a user id"):
        AndroidPmCollector(user=user)  # type: ignore[arg-type]
