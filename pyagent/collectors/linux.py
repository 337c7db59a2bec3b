"""Linux: this machine's packages, from every package manager present.

- ``dpkg``: ``dpkg-query -W -f '${binary:Package}\\t${Version}\\t${Status}\\n'``; id the package name;
- ``rpm``: ``rpm -qa --qf '%{NAME}\\t[EPOCH:]VERSION-RELEASE\\t%{ARCH}\\n'``; id ``%{NAME}``;
- ``flatpak``: ``flatpak list --app --columns=application,version``; id the application ID;
- ``snap``: ``snap list``; id the snap name.

dpkg reads ``${binary:Package}``, the name ``dpkg-query -W`` itself prints, and reports the package name
without the ``:arch`` qualifier that it carries for ``Multi-Arch: same`` packages (which may be installed
for several architectures at once, e.g. ``libc6:amd64`` and ``libc6:i386``): the id is the name a policy
lists, whatever the architecture, as for rpm (``%{NAME}``) and osquery's ``deb_packages`` (``name``).
``dpkg-query -W`` also lists packages in state ``config-files`` (removed, configuration kept) and
``not-installed``; those are left out and counted in the facts. Every other state (``installed``,
``unpacked``, ``half-configured``, ``half-installed``, ``triggers-awaited``, ``triggers-pending``) is
reported, whatever the selection (``hold`` and ``deinstall`` packages are still on the disk).

rpm may hold one name several times (kernels): each version is its own entry. Entries that are the same
in every report field are one: a multi-arch package (dpkg's ``libc6`` for ``amd64`` and ``i386``, rpm's
``glibc`` ``.i686`` and ``.x86_64``) of one version, or a flatpak app installed both system-wide and per
user (the report has no architecture or installation).

The OS version is ``VERSION_ID`` of ``/etc/os-release`` (fallback ``/usr/lib/os-release``), else its
``PRETTY_NAME``.

A package manager whose program is present but fails (snapd not running, a locked rpm database) fails
the collection with CollectorError: a report without its packages could hide a banned app. Use the
``sources`` option to leave a manager out on purpose.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pyagent.collectors.base import (
    MAX_ID_CHARS,
    App,
    Collector,
    CollectorError,
    CollectorInputError,
    Inventory,
    check_text,
    clip,
    optional_text,
)
from pyagent.collectors.files import read_input_bytes
from pyagent.collectors.run import DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT, find_tool, run_tool

# Both tools expand the \t and \n escapes of their format strings themselves.
DPKG_FORMAT = r"${binary:Package}\t${Version}\t${Status}\n"
RPM_FORMAT = r"%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n"
DPKG_NOT_INSTALLED = frozenset({"not-installed", "config-files"})
OS_RELEASE_PATHS = (Path("/etc/os-release"), Path("/usr/lib/os-release"))
SOURCES = ("dpkg", "rpm", "flatpak", "snap")
PROGRAMS = {"dpkg": "dpkg-query", "rpm": "rpm", "flatpak": "flatpak", "snap": "snap"}
_T = TypeVar("_T")
_TOOL_ENV = ("HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")


def _lines(data: bytes, *, where: str) -> list[tuple[str, str]]:
    """(position, line) for each non-blank line of a tool's output."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CollectorInputError(f"{where}: output is not UTF-8 (byte {exc.start})") from exc
    if "\x00" in text:
        raise CollectorInputError(f"{where}: output has a NUL byte; binary, not a package list")
    return [(f"{where}:{n}", line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]


def _fields(line: str, count: int, *, at: str) -> list[str]:
    fields = line.split("\t")
    if len(fields) != count:
        raise CollectorInputError(
            f"{at}: expected {count} tab-separated fields, got {len(fields)}: {clip(line)}"
        )
    return fields


def parse_dpkg_query(data: bytes, *, where: str = "dpkg-query") -> tuple[list[App], int]:
    """(apps, packages left out as not on the disk) from ``dpkg-query -W -f DPKG_FORMAT`` output."""
    apps: list[App] = []
    skipped = 0
    for at, line in _lines(data, where=where):
        package, version, status = _fields(line, 3, at=at)
        words = status.split()
        if len(words) != 3:
            raise CollectorInputError(f"{at}: status is not 'WANT EFLAG STATE': {clip(status)}")
        if words[2] in DPKG_NOT_INSTALLED:
            skipped += 1
            continue
        package = check_text(package.strip(), what="package", where=at, limit=MAX_ID_CHARS, identifier=True)
        package = package.partition(":")[0] or package  # (no package name holds a colon)
        apps.append(App(id=package, version=optional_text(version, what="version", where=at), source="dpkg"))
    return apps, skipped


def parse_rpm_qa(data: bytes, *, where: str = "rpm") -> list[App]:
    """Apps from ``rpm -qa --qf RPM_FORMAT`` output."""
    apps: list[App] = []
    for at, line in _lines(data, where=where):
        name, version, _arch = _fields(line, 3, at=at)
        name = check_text(name.strip(), what="package", where=at, limit=MAX_ID_CHARS, identifier=True)
        apps.append(App(id=name, version=optional_text(version, what="version", where=at), source="rpm"))
    return apps


def parse_flatpak_list(data: bytes, *, where: str = "flatpak") -> list[App]:
    """Apps from ``flatpak list --app --columns=application,version`` output (not a terminal: no header,
    columns separated by tabs; an app without a version has an empty second column)."""
    apps: list[App] = []
    for at, line in _lines(data, where=where):
        fields = line.split("\t")
        if len(fields) > 2:
            raise CollectorInputError(f"{at}: expected application and version columns: {clip(line)}")
        app_id = check_text(
            fields[0].strip(), what="application ID", where=at, limit=MAX_ID_CHARS, identifier=True
        )
        if " " in app_id:
            raise CollectorInputError(f"{at}: not a flatpak application ID: {clip(app_id)}")
        version = optional_text(fields[1].strip(), what="version", where=at) if len(fields) == 2 else None
        apps.append(App(id=app_id, version=version, source="flatpak"))
    return apps


def parse_snap_list(data: bytes, *, where: str = "snap") -> list[App]:
    """Apps from ``snap list`` output: a ``Name Version Rev ...`` header, then one snap a line. Empty output
    (snap prints "No snaps are installed yet" on standard error) means no snaps."""
    lines = _lines(data, where=where)
    if not lines:
        return []
    header = lines[0][1].split()
    if header[:3] != ["Name", "Version", "Rev"]:
        raise CollectorInputError(f"{lines[0][0]}: not the `snap list` header: {clip(lines[0][1])}")
    apps: list[App] = []
    for at, line in lines[1:]:
        fields = line.split()
        if len(fields) < 3 or not (fields[2].isdigit() or fields[2].startswith("x")):
            raise CollectorInputError(f"{at}: not a `snap list` line: {clip(line)}")
        name = check_text(fields[0], what="snap name", where=at, limit=MAX_ID_CHARS, identifier=True)
        version = optional_text(fields[1] if fields[1] != "-" else None, what="version", where=at)
        apps.append(App(id=name, version=version, source="snap"))
    return apps


def parse_os_release(text: str) -> dict[str, str]:
    """The KEY=value assignments of an os-release file (os-release(5)); other lines are ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            continue  # an unbalanced quote: the line is not an assignment os-release(5) allows
        if key.isidentifier() and len(parts) <= 1:
            values[key] = parts[0] if parts else ""
    return values


def os_version_from(values: dict[str, str]) -> str | None:
    """VERSION_ID, else PRETTY_NAME, else None."""
    for key in ("VERSION_ID", "PRETTY_NAME"):
        value = values.get(key, "").strip()
        if value and "\x00" not in value and len(value) <= 200:
            return value
    return None


class LinuxCollector(Collector):
    """This machine's packages.

    Options: ``sources`` (which of dpkg, rpm, flatpak, snap, as a list or a comma-separated string;
    default: those whose program is on PATH), ``os_release`` (path of the os-release file),
    ``timeout`` (seconds per command), ``max_output`` (bytes per command).
    """

    name = "linux"

    def __init__(
        self,
        *,
        sources: Sequence[str] | None = None,
        os_release: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        if isinstance(sources, str):
            sources = [part.strip() for part in sources.split(",") if part.strip()]
        if sources is not None:
            unknown = [s for s in sources if s not in SOURCES]
            if unknown or not sources:
                raise CollectorInputError(
                    f"linux: unknown package source(s) {', '.join(unknown) or '(none given)'}; "
                    f"choose from {', '.join(SOURCES)}"
                )
        self.sources = tuple(dict.fromkeys(sources)) if sources is not None else None
        self.os_release = Path(os_release) if os_release is not None else None
        self.timeout = timeout
        self.max_output = max_output

    def _run(self, source: str, *args: str) -> bytes:
        return run_tool(
            [PROGRAMS[source], *args],
            timeout=self.timeout,
            max_output=self.max_output,
            env_passthrough=_TOOL_ENV,
        )

    def _parsed(self, source: str, parse: Callable[[bytes], _T], out: bytes) -> _T:
        try:
            return parse(out)
        except CollectorInputError as exc:
            raise CollectorError(f"{PROGRAMS[source]}: unexpected output: {exc}") from exc

    def collect(self) -> Inventory:
        sources = self.sources or tuple(s for s in SOURCES if find_tool(PROGRAMS[s]))
        if not sources:
            raise CollectorError("linux: no package manager found on PATH (dpkg-query, rpm, flatpak, snap)")
        apps: list[App] = []
        facts: dict[str, object] = {"package_managers": list(sources)}
        for source in sources:
            if source == "dpkg":
                out = self._run(source, "-W", "-f", DPKG_FORMAT)
                dpkg_apps, skipped = self._parsed(source, parse_dpkg_query, out)
                apps.extend(dpkg_apps)
                facts["dpkg_not_installed_skipped"] = skipped
            elif source == "rpm":
                out = self._run(source, "-qa", "--qf", RPM_FORMAT)
                apps.extend(self._parsed(source, parse_rpm_qa, out))
            elif source == "flatpak":
                out = self._run(source, "list", "--app", "--columns=application,version")
                apps.extend(self._parsed(source, parse_flatpak_list, out))
            else:
                out = self._run(source, "list")
                apps.extend(self._parsed(source, parse_snap_list, out))
        if not apps:  # (a package database that could not be read as this machine's)
            raise CollectorError(
                f"linux: {', '.join(sources)} listed no installed package, and a device reported with no "
                "apps would be compliant"
            )
        values = self._os_release()
        if values.get("ID"):
            facts["os_release_id"] = values["ID"][:100]
        return self.inventory("linux", apps, os_version=os_version_from(values), facts=facts)

    def _os_release(self) -> dict[str, str]:
        if self.os_release is not None:
            paths: tuple[Path, ...] = (self.os_release,)
        else:
            paths = tuple(p for p in OS_RELEASE_PATHS if p.exists())
        for path in paths[:1]:
            data = read_input_bytes(path, max_bytes=64 * 1024)
            try:
                return parse_os_release(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise CollectorInputError(f"{path}: not UTF-8 text") from exc
        return {}
