"""linux: the real dpkg-query of this machine, and captured rpm/flatpak/snap output through fake tools."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyagent.collectors import CollectorError, CollectorInputError, get_collector
from pyagent.collectors.linux import (
    LinuxCollector,
    os_version_from,
    parse_dpkg_query,
    parse_flatpak_list,
    parse_os_release,
    parse_rpm_qa,
    parse_snap_list,
)
from tests.collectors.conftest import FIXTURES

FakeTool = Callable[[str, str], Path]
HAS_DPKG = shutil.which("dpkg-query") is not None


def _dpkg_query(*args: str) -> list[str]:
    """Run the real dpkg-query, independently of the collector's runner."""
    out = subprocess.run(["dpkg-query", *args], check=True, capture_output=True, text=True).stdout
    return [line for line in out.split("\n") if line]


def _dpkg_snapshot() -> list[tuple[str, str, str]]:
    """(package, version, status abbreviation) of every line `dpkg-query -W` prints."""
    rows = []
    for line in _dpkg_query("-W", "-f", "${binary:Package}\t${Version}\t${db:Status-Abbrev}\n"):
        package, version, abbrev = line.split("\t")
        rows.append((package, version, abbrev))
    return rows


@pytest.mark.skipif(not HAS_DPKG, reason="needs dpkg-query (a Debian-family machine)")
def test_reports_every_package_that_dpkg_query_lists() -> None:
    # `dpkg-query -W` (default format: ${binary:Package} TAB ${Version}) lists every package dpkg knows of
    # that is not purged. The collector reports each one whose files are on the disk: all but the
    # `config-files` and `not-installed` states (second letter c / n of ${db:Status-Abbrev}).
    # The comparison needs a database that holds still: when apt runs meanwhile, take it again.
    for _ in range(10):
        before = _dpkg_snapshot()
        listed = [tuple(line.split("\t")) for line in _dpkg_query("-W")]
        inventory = LinuxCollector(sources=["dpkg"]).collect()
        if _dpkg_snapshot() == before:
            break
        time.sleep(3)
    else:
        pytest.skip("the dpkg database kept changing (a package installation running)")
    assert listed == [(package, version) for package, version, _ in before]
    on_disk = [(package, version or None) for package, version, abbrev in before if abbrev[1] not in "cn"]
    assert len(on_disk) > 50
    # each by its name (libc6:amd64 is libc6), a package of several architectures at one version once
    expected = {(package.partition(":")[0], version) for package, version in on_disk}
    assert any(":" in package for package, _ in on_disk)  # (Debian's libc6 is Multi-Arch: same)

    reported = [(app.id, app.version) for app in inventory.apps]
    assert len(reported) == len(set(reported)) == len(expected)
    assert set(reported) == expected
    assert all(app.source == "dpkg" for app in inventory.apps)
    assert inventory.facts["dpkg_not_installed_skipped"] == len(listed) - len(on_disk)


@pytest.mark.skipif(not HAS_DPKG, reason="needs dpkg-query (a Debian-family machine)")
def test_collects_this_machine() -> None:
    inventory = get_collector("linux").collect()
    assert inventory.platform == "linux"
    managers = inventory.facts["package_managers"]
    assert isinstance(managers, list) and "dpkg" in managers
    values = parse_os_release(Path("/etc/os-release").read_text())
    assert inventory.os_version == (values.get("VERSION_ID") or values.get("PRETTY_NAME"))
    assert inventory.collector_json()["name"] == "linux"
    ids = {app.id for app in inventory.apps}
    assert {
        line.split("\t")[0]
        for line in _dpkg_query("-W", "-f", "${Package}\t${Status}\n")
        if line.endswith(" installed")
    } <= ids


def test_dpkg_states() -> None:
    data = (FIXTURES / "linux" / "dpkg-query-W-binary-package-version-status-mixed.txt").read_bytes()
    apps, skipped = parse_dpkg_query(data)
    assert skipped == 2  # zoom and the old kernel: configuration files only
    assert [(a.id, a.version) for a in apps] == [
        ("adduser", "3.134"),
        ("bash", "5.2.15-2+b7"),
        ("bsdutils", "1:2.38.1-5+deb12u1"),
        ("libc6", "2.36-9+deb12u7"),  # libc6:amd64: the name, whatever the architecture
        ("libc6", "2.36-9+deb12u7"),  # libc6:i386 (the report holds one: the same in every field)
        ("teams-for-linux", "1.4.22"),  # held
        ("google-chrome-stable", "123.0.6312.105-1"),  # selected for removal, still installed
        ("libreoffice-core", "4:7.4.7-1+deb12u1"),  # unpacked
        ("python3-apt", "2.6.0"),  # half-configured
        ("man-db", "2.11.2-2"),  # triggers-pending
        ("firefox-esr", "115.9.1esr-1~deb12u1"),  # half-installed: files may be there
    ]


def test_rpm() -> None:
    apps = parse_rpm_qa((FIXTURES / "linux" / "rpm-qa-qf-name-epoch-version-release-arch.txt").read_bytes())
    assert [(a.id, a.version) for a in apps] == [
        ("bash", "5.2.26-3.fc40"),
        ("glibc", "2.39-6.fc40"),  # i686 and x86_64; deduplicated by the collector
        ("glibc", "2.39-6.fc40"),
        ("kernel-core", "6.8.5-301.fc40"),
        ("kernel-core", "6.8.7-300.fc40"),
        ("NetworkManager", "1:1.46.0-1.fc40"),
        ("gpg-pubkey", "a15b79cc-63d04c2c"),
        ("teams-for-linux", "1.4.22-1"),
    ]


def test_flatpak() -> None:
    apps = parse_flatpak_list(
        (FIXTURES / "linux" / "flatpak-list-app-columns-application-version.txt").read_bytes()
    )
    assert [(a.id, a.version) for a in apps] == [
        ("org.mozilla.firefox", "124.0.2"),
        ("com.slack.Slack", "4.37.94"),
        ("org.gnome.Calculator", "46.0"),
        ("com.github.IsmaelMartinez.teams_for_linux", "1.4.22"),
        ("org.videolan.VLC", "3.0.20"),
        ("org.mozilla.firefox", "124.0.2"),  # installed for the system and for the user
        ("io.github.example.NoVersion", None),
    ]
    assert {a.source for a in apps} == {"flatpak"}


def test_snap() -> None:
    apps = parse_snap_list((FIXTURES / "linux" / "snap-list.txt").read_bytes())
    assert [(a.id, a.version) for a in apps] == [
        ("bare", "1.0"),
        ("core22", "20240111"),
        ("firefox", "124.0.2-1"),
        ("gnome-42-2204", "0+git.510a601"),
        ("gtk-common-themes", "0.1-81-g442e511"),
        ("my-local-tool", "0.3"),
        ("snapd", "2.61.3"),
        ("teams-for-linux", "1.4.22"),
    ]
    assert parse_snap_list(b"") == []


@pytest.mark.parametrize(
    ("parse", "data", "message"),
    [
        (parse_dpkg_query, b"bash\t5.2\n", "expected 3 tab-separated fields, got 2"),
        (parse_dpkg_query, b"bash\t5.2\tinstalled\n", "status is not 'WANT EFLAG STATE'"),
        (parse_dpkg_query, b"\t5.2\tinstall ok installed\n", "package is empty"),
        (parse_dpkg_query, b"bash\t5.2\tinstall ok installed\n\xff\n", "not UTF-8"),
        (parse_rpm_qa, b"bash 5.2 x86_64\n", "expected 3 tab-separated fields"),
        (parse_flatpak_list, b"org.a.B\t1\tsystem\n", "expected application and version columns"),
        (parse_flatpak_list, b"Application ID\tVersion\n", "not a flatpak application ID"),
        (parse_snap_list, b"core22 20240111 1122\n", "not the `snap list` header"),
        (parse_snap_list, b"Name Version Rev\ncore22\n", "not a `snap list` line"),
        (parse_snap_list, b"Name Version Rev\ncore22 2024 abc\n", "not a `snap list` line"),
    ],
)
def test_bad_tool_output(parse: Callable[[bytes], object], data: bytes, message: str) -> None:
    with pytest.raises(CollectorInputError, match=message):
        parse(data)


def test_other_package_managers_through_fake_tools(fake_tool: FakeTool, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    linux = FIXTURES / "linux"
    for tool, capture in [
        ("rpm", "rpm-qa-qf-name-epoch-version-release-arch.txt"),
        ("flatpak", "flatpak-list-app-columns-application-version.txt"),
        ("snap", "snap-list.txt"),
    ]:
        fake_tool(
            tool, f"""printf '%s|' {tool} "$@" >> '{log}'; echo >> '{log}'\ncat '{linux / capture}'\n"""
        )
    inventory = LinuxCollector(sources=["rpm", "flatpak", "snap"]).collect()
    assert log.read_text().splitlines() == [
        r"rpm|-qa|--qf|%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n|",
        "flatpak|list|--app|--columns=application,version|",
        "snap|list|",
    ]
    sources = {a.source for a in inventory.apps}
    assert sources == {"rpm", "flatpak", "snap"}
    # identical entries (glibc for two architectures, firefox in two flatpak installations) are one
    assert [a.id for a in inventory.apps if a.source == "flatpak"].count("org.mozilla.firefox") == 1
    assert [a.id for a in inventory.apps if a.source == "rpm"].count("glibc") == 1
    assert inventory.facts["package_managers"] == ["rpm", "flatpak", "snap"]


def test_a_failing_package_manager_fails_the_collection(fake_tool: FakeTool) -> None:
    fake_tool("snap", "echo 'error: cannot communicate with server: connection refused' >&2\nexit 1\n")
    with pytest.raises(CollectorError, match=r"^snap: exited with status 1: error: cannot communicate"):
        LinuxCollector(sources=["snap"]).collect()


def test_garbage_from_a_package_manager_is_a_tool_failure(fake_tool: FakeTool) -> None:
    fake_tool("rpm", "echo 'error: rpmdb: BDB0113 Thread/process 1234 failed'\n")
    with pytest.raises(
        CollectorError, match=r"^rpm: unexpected output: rpm:1: expected 3 tab-separated"
    ) as info:
        LinuxCollector(sources=["rpm"]).collect()
    assert info.value.exit_code == 3


def test_package_managers_that_list_nothing_fail_the_collection(fake_tool: FakeTool, tmp_path: Path) -> None:
    """The real dpkg-query on an empty package database (and an empty flatpak): no device has no
    package at all, and one reported with none would be compliant (it was "collected 0 apps")."""
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "status").write_text("")
    fake_tool("dpkg-query", f"exec /usr/bin/dpkg-query --admindir='{admin}' \"$@\"\n")
    fake_tool("flatpak", "exit 0\n")
    with pytest.raises(CollectorError) as refused:
        LinuxCollector(sources=["dpkg", "flatpak"]).collect()
    assert (str(refused.value), refused.value.exit_code) == (
        "linux: dpkg, flatpak listed no installed package, and a device reported with no apps would be "
        "compliant",
        3,
    )


def test_hanging_package_manager(fake_tool: FakeTool) -> None:
    fake_tool("flatpak", "exec sleep 30\n")
    with pytest.raises(CollectorError, match=r"^flatpak: no result after 0\.5 s"):
        LinuxCollector(sources=["flatpak"], timeout=0.5).collect()


def test_no_package_manager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CollectorError, match=r"no package manager found"):
        LinuxCollector().collect()


def test_sources_as_a_comma_separated_string() -> None:
    assert LinuxCollector(sources="dpkg, snap").sources == ("dpkg", "snap")


def test_unknown_source_option() -> None:
    with pytest.raises(CollectorInputError, match=r"unknown package source"):
        LinuxCollector(sources=["apk"])
    with pytest.raises(CollectorInputError, match=r"none given"):
        LinuxCollector(sources=[])


def test_os_release_parsing(tmp_path: Path, fake_tool: FakeTool) -> None:
    text = (
        '# comment\nNAME="Fedora Linux"\nVERSION_ID=40\n'
        "PRETTY_NAME='Fedora Linux 40'\nBROKEN=\"x\nID=fedora\n"
    )
    values = parse_os_release(text)
    assert values == {
        "NAME": "Fedora Linux",
        "VERSION_ID": "40",
        "PRETTY_NAME": "Fedora Linux 40",
        "ID": "fedora",
    }
    assert os_version_from(values) == "40"
    assert os_version_from({"PRETTY_NAME": "Debian GNU/Linux trixie/sid"}) == "Debian GNU/Linux trixie/sid"
    assert os_version_from({}) is None
    release = tmp_path / "os-release"
    release.write_text(text)
    fake_tool("snap", f"cat '{FIXTURES / 'linux' / 'snap-list.txt'}'\n")
    inventory = LinuxCollector(sources=["snap"], os_release=release).collect()
    assert (inventory.os_version, inventory.facts["os_release_id"]) == ("40", "fedora")


def test_os_release_given_but_missing(tmp_path: Path, fake_tool: FakeTool) -> None:
    fake_tool("snap", f"cat '{FIXTURES / 'linux' / 'snap-list.txt'}'\n")
    with pytest.raises(CollectorInputError, match=r"os-release: input not found$"):
        LinuxCollector(sources=["snap"], os_release=tmp_path / "os-release").collect()
