"""The registry, the data classes, and bad input files given to every file-reading collector."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pyagent.collectors import (
    COLLECTORS,
    App,
    CollectorError,
    CollectorInputError,
    CollectorName,
    Inventory,
    collector_options,
    get_collector,
)
from pyagent.collectors.android_pm import AndroidPmCollector
from pyagent.collectors.files import MAX_INPUT_BYTES
from pyagent.collectors.intune import IntuneCollector
from pyagent.collectors.ios_mdm import IosMdmCollector
from pyagent.collectors.linux import LinuxCollector
from pyagent.collectors.osquery import OsqueryCollector
from pyagent.errors import InvalidInputError, NoDecisionError
from tests.collectors.conftest import FIXTURES


def test_names() -> None:
    assert [n.value for n in CollectorName] == ["linux", "android-pm", "osquery", "intune", "ios-mdm"]
    assert CollectorName("android-pm") is CollectorName.ANDROID_PM
    assert CollectorName.ANDROID_PM.value == "android-pm" and str(CollectorName.IOS_MDM) == "ios-mdm"
    assert isinstance(CollectorName.LINUX, str)
    assert dict(COLLECTORS) == {
        CollectorName.LINUX: LinuxCollector,
        CollectorName.ANDROID_PM: AndroidPmCollector,
        CollectorName.OSQUERY: OsqueryCollector,
        CollectorName.INTUNE: IntuneCollector,
        CollectorName.IOS_MDM: IosMdmCollector,
    }
    assert all(cls.name == name.value for name, cls in COLLECTORS.items())


def test_get_collector_by_name_or_enum() -> None:
    capture = FIXTURES / "android-pm" / "personal-plain.txt"
    a = get_collector("android-pm", from_file=capture)
    b = get_collector(CollectorName.ANDROID_PM, from_file=str(capture), serial=None)
    assert isinstance(a, AndroidPmCollector) and isinstance(b, AndroidPmCollector)
    assert a.collect() == b.collect()


def test_unknown_collector() -> None:
    with pytest.raises(CollectorInputError, match=r"unknown collector 'ipa'; choose from linux, android-pm"):
        get_collector("ipa")


def test_option_a_collector_does_not_take() -> None:
    with pytest.raises(
        CollectorInputError, match=r"collector linux does not take from_file; it takes sources,"
    ):
        get_collector("linux", from_file="x.txt")


def test_none_options_count_as_not_given() -> None:
    assert isinstance(get_collector("linux", from_file=None, serial=None), LinuxCollector)


def test_collector_options() -> None:
    assert collector_options("intune") == ("from_file", "platform")
    assert "serial" in collector_options(CollectorName.ANDROID_PM)


def test_error_classes_and_exit_codes() -> None:
    assert issubclass(CollectorError, NoDecisionError) and CollectorError("x").exit_code == 3
    assert issubclass(CollectorInputError, InvalidInputError) and CollectorInputError("x").exit_code == 2


def test_app_to_json_drops_nones() -> None:
    app = App(id="com.x", user=0, evidence="display_name")
    assert app.to_json() == {"id": "com.x", "evidence": "display_name", "user": 0}
    full = App("i", "n", "v", "s", "id", "inst", 10, "/p")
    assert list(full.to_json()) == [
        "id",
        "name",
        "version",
        "source",
        "evidence",
        "installer",
        "user",
        "path",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": ""}, "invalid app id ''"),
        ({"id": "a\x00b"}, "invalid app id 'a\\x00b'"),
        ({"id": "x" * 513}, f"invalid app id '{'x' * 513}'"),
        ({"id": "a", "evidence": "guess"}, "invalid evidence 'guess'"),
        ({"id": "a", "user": -1}, "invalid user -1"),
    ],
)
def test_app_guards(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        App(**kwargs)  # type: ignore[arg-type]


def test_inventory_json() -> None:
    inventory = Inventory(platform="ios", apps=[App(id="com.x")], collector_name="ios-mdm")
    assert inventory.apps_json() == [{"id": "com.x"}]
    assert inventory.collector_json() == {"name": "ios-mdm", "version": "0.1.0"}
    with pytest.raises(ValueError, match=r"^invalid platform 'symbian'$"):
        Inventory(platform="symbian", apps=[])  # type: ignore[arg-type]


# ---- bad input files, for every collector that reads one --------------------------------------------

FILE_COLLECTORS = ["android-pm", "osquery", "intune", "ios-mdm"]
GOOD = {
    "android-pm": "android-pm/personal-outlook-tiktok-f-i-versioncode.txt",
    "osquery": "osquery/macos-apps.json",
    "intune": "intune/windows-laptop-detectedapps.json",
    "ios-mdm": "ios-mdm/iphone-installed-application-list-response.plist",
}
WRONG = {  # another collector's input
    "android-pm": "osquery/macos-apps.json",
    "osquery": "ios-mdm/iphone-installed-application-list-response.plist",
    "intune": "android-pm/personal-plain.txt",
    "ios-mdm": "intune/windows-laptop-detectedapps.json",
}
WRONG_SAYS = {  # and what each collector says of it, after the file's name
    "android-pm": ":1: not a `pm list packages` line: '['",
    "osquery": ': not osqueryi --json output (a JSON array): it starts with \'<?xml version="1.0" '
    'encoding="UTF-8"?>\' (osqueryi writes its log lines and errors to stderr: save its standard output '
    "only, `osqueryi --json 'SELECT ...' > FILE`)",
    "intune": ": not valid JSON at line 1, column 1: Expecting value",
    "ios-mdm": ": not an XML property list (an MDM command response)",
}


def _collect(name: str, path: Path) -> Inventory:
    return get_collector(name, from_file=path).collect()


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_good_input(name: str) -> None:
    inventory = get_collector(name, from_file=FIXTURES / GOOD[name]).collect()
    assert inventory.apps and inventory.collector_name == name


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_wrong_format(name: str) -> None:
    path = FIXTURES / WRONG[name]
    with pytest.raises(CollectorInputError, match=f"^{re.escape(f'{path}{WRONG_SAYS[name]}')}$"):
        _collect(name, path)


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_empty_file(name: str, tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(CollectorInputError, match=r"empty"):
        _collect(name, path)


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_truncated_file(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (FIXTURES / GOOD[name]).read_bytes()
    path = tmp_path / "truncated"
    path.write_bytes(data[: len(data) // 2 - 7])
    if name != "android-pm":
        with pytest.raises(CollectorInputError):
            _collect(name, path)
        return
    # android-pm: a file whose last line lacks its line break is read, and the user is told
    inventory = _collect(name, path)
    assert inventory.facts["input_last_line_unterminated"] is True  # and the report keeps it
    lines = data[: len(data) // 2 - 7].decode().split("\n")
    assert capsys.readouterr().err == (
        f"pyagent: note: {path}:{len(lines)}: the last line has no line break; read as whole "
        "('package:/data/app/~~kLjquRuQSrEOWKhDiYyhKQ==/com.microsoft.office.outlook-paIdf…'), but a capture "
        "cut there would have cut its package name\n"
    )


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_binary_file(name: str, tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CollectorInputError, match=r"binary|not UTF-8|not an XML property list"):
        _collect(name, path)


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_enormous_file(name: str, tmp_path: Path) -> None:
    path = tmp_path / "enormous"
    with path.open("wb") as handle:
        handle.truncate(MAX_INPUT_BYTES + 1)
    with pytest.raises(CollectorInputError, match=r"enormous: input is larger than 64 MiB$"):
        _collect(name, path)


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_fifo(name: str, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(CollectorInputError, match=r"fifo: input is a pipe, not a regular file$"):
        _collect(name, fifo)


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_dangling_symlink(name: str, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(CollectorInputError, match=r"symbolic link to a missing file"):
        _collect(name, link)


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_symlink_to_a_good_file_is_read(name: str, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(FIXTURES / GOOD[name])
    assert _collect(name, link) == _collect(name, FIXTURES / GOOD[name])


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_directory(name: str, tmp_path: Path) -> None:
    with pytest.raises(CollectorInputError, match=r"directory"):
        _collect(name, tmp_path)
