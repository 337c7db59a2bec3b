"""osquery: ``osqueryi --json "select * from TABLE"`` output, from a file or by running osqueryi.

``osqueryi --json`` prints a JSON array of row objects; every value is a string, whatever the column type
(osquery issue #2687), empty columns as ``""``. Four tables are understood, told apart by their columns:

========================  ========  =======================================================================
table                     platform  app id
========================  ========  =======================================================================
``apps``                  macos     ``bundle_identifier``
``programs``              windows   ``package_family_name`` (MSIX/Store apps, newer osquery), else
                                    ``identifying_number`` (MSI product code or bundle identifier)
``deb_packages``          linux     ``name``
``rpm_packages``          linux     ``name``
========================  ========  =======================================================================

The table is told by a column only it has (``publisher`` is a ``programs`` column, ``release`` an
``rpm_packages`` one, ...); ``arch`` or ``source`` without any such column is a Linux package table,
read as ``deb_packages`` (both read the same way). Columns that tell nothing (``name`` and ``version``
alone, which ``programs`` has too; ``path``, ``status`` or ``size``, which many other osquery tables have)
are refused unless the table is named (``--table``): read as Linux packages, a Windows export would hide
every Windows app. So is a column none of the four tables has (``pid``, ``cmdline``: the rows of
``processes``, whose ``path`` and ``name`` would otherwise read as macOS apps). An empty result is
refused, as an empty ``pm list packages`` capture is: no device has no software, and a device reported
with none would be compliant. A ``programs`` export without ``package_family_name`` (osquery before
5.17) cannot list Store (MSIX) apps, TikTok's Windows app among them: it is read, with a note, and the
report says so (``collector.not_listed: ["windows-store"]``), so that a ban of a Store app is reported
as not checked (a warning), never passed in silence.

When a row has no identifier, its display name is looked up in :mod:`~pyagent.collectors.known_apps`;
failing that its id is ``name:<display name>``. Either way the app is marked ``evidence: display_name``.
Rows must all have the same columns (one query of one table); a mix is refused. ``deb_packages`` rows
whose ``status`` says the package is not installed (``config-files``, ``not-installed``) are left out and
counted in the facts, as the linux collector does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pyagent.collectors import known_apps
from pyagent.collectors.base import (
    MAX_ID_CHARS,
    MAX_PATH_CHARS,
    App,
    Collector,
    CollectorError,
    CollectorInputError,
    Inventory,
    Platform,
    check_text,
    clip,
    optional_text,
)
from pyagent.collectors.files import decode_text, input_name, load_json, read_input_bytes
from pyagent.collectors.run import DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT, find_tool, run_tool
from pyagent.errors import listed
from pyagent.jsonio import json_kind

SOURCE = "osquery"
Table = Literal["apps", "programs", "deb_packages", "rpm_packages"]
TABLE_PLATFORM: dict[str, Platform] = {
    "apps": "macos",
    "programs": "windows",
    "deb_packages": "linux",
    "rpm_packages": "linux",
}
DEB_NOT_INSTALLED = frozenset({"not-installed", "config-files"})
"""dpkg states in which a package's files are not on the disk (see the linux collector)."""


#: Columns each table has and none of the other three (osquery 5 schema): one of them tells the table.
_ONLY: dict[Table, frozenset[str]] = {
    "apps": frozenset(
        {
            "path",
            "bundle_executable",
            "bundle_identifier",
            "bundle_name",
            "bundle_short_version",
            "bundle_version",
            "bundle_package_type",
            "environment",
            "element",
            "compiler",
            "development_region",
            "display_name",
            "info_string",
            "minimum_system_version",
            "category",
            "applescript_enabled",
            "copyright",
            "last_opened_time",
        }
    ),
    "programs": frozenset(
        {
            "install_location",
            "install_source",
            "language",
            "publisher",
            "uninstall_string",
            "install_date",
            "identifying_number",
            "package_family_name",
            "upgrade_code",
        }
    ),
    "deb_packages": frozenset({"revision", "status", "maintainer", "section", "priority", "admindir"}),
    "rpm_packages": frozenset({"release", "sha1", "epoch", "install_time", "vendor", "package_group"}),
}
#: Columns both Linux package tables have (and neither apps nor programs).
_LINUX_PACKAGES = frozenset({"source", "size", "arch", "pid_with_namespace", "mount_namespace_id"})
#: Every column of each table.
_COLUMNS: dict[Table, frozenset[str]] = {
    "apps": _ONLY["apps"] | {"name"},
    "programs": _ONLY["programs"] | {"name", "version"},
    "deb_packages": _ONLY["deb_packages"] | _LINUX_PACKAGES | {"name", "version"},
    "rpm_packages": _ONLY["rpm_packages"] | _LINUX_PACKAGES | {"name", "version"},
}
_KNOWN = frozenset().union(*_COLUMNS.values())
#: Columns of one of the four tables that many other osquery tables have too (``processes``,
#: ``chocolatey_packages``, ``kernel_modules``, ...): they never tell the table on their own.
_COMMON = frozenset({"path", "status", "size"})


def tables_of(columns: frozenset[str]) -> list[Table]:
    """The tables whose own columns (:data:`_ONLY`) are among ``columns``: more than one is a mix."""
    return [table for table, only in _ONLY.items() if columns & only]


def foreign_columns(columns: frozenset[str]) -> frozenset[str]:
    """The columns that none of the four tables has (osquery 5 schema)."""
    return columns - _KNOWN


def detect_table(columns: frozenset[str]) -> Table | None:
    """The table a row with these columns comes from, or None when they cannot tell: a column none of
    the four has, or columns that other tables have too (``name`` and ``version`` alone are in all but
    apps: a Windows ``programs`` export read as Linux packages would hide every Windows app; ``name`` and
    ``path`` are columns of ``processes``), so the table must then be named."""
    if foreign_columns(columns):
        return None
    found = tables_of(columns - _COMMON)
    if len(found) == 1:
        return found[0]
    if not found and "name" in columns and columns & (_LINUX_PACKAGES - _COMMON):
        return "deb_packages"  # one of the two Linux package tables, which read the same way
    return None


def _rows(data: object, *, where: str) -> list[dict[str, str]]:
    if not isinstance(data, list):
        raise CollectorInputError(f"{where}: not osquery --json output (expected a JSON array of rows)")
    rows: list[dict[str, str]] = []
    for index, row in enumerate(data, start=1):  # rows as a reader counts them
        if not isinstance(row, dict):
            raise CollectorInputError(f"{where}: row {index} is not a JSON object")
        clean: dict[str, str] = {}
        for key, value in row.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise CollectorInputError(
                    f"{where}: row {index} column {key!r} is {json_kind(value)}; osquery prints strings "
                    "(a NULL as an empty one)"
                )
            clean[key] = value if isinstance(value, str) else str(value)
        rows.append(clean)
    return rows


def _name_based(name: str, platform: Platform, *, where: str) -> tuple[str, str]:
    """(id, evidence) for an app known only by its display name."""
    known = known_apps.lookup(name, platform)
    if known is not None:
        return known, "display_name"
    return check_text(
        f"name:{name}", what="name-derived id", where=where, limit=MAX_ID_CHARS, identifier=True
    ), "display_name"


#: Why a row is no app: a Debian package removed with its configuration kept; or a row with neither an
#: identifier nor a name (osquery's ``programs`` lists any uninstall registry key with a value it
#: knows, such as only an ``UninstallString``): nothing a ban could match.
Skipped = Literal["not_installed", "unnamed"]


def _app(row: Mapping[str, str], table: Table, *, where: str) -> App | Skipped:
    platform = TABLE_PLATFORM[table]

    def text(column: str) -> str | None:
        return optional_text(row.get(column), what=column, where=where)

    def path_text(column: str) -> str | None:
        return optional_text(row.get(column), what=column, where=where, limit=MAX_PATH_CHARS)

    evidence: str | None = None
    version: str | None
    if table == "apps":
        name = text("display_name") or text("bundle_name") or text("name")
        if name is not None and name.endswith(".app") and name == text("name"):
            name = name[: -len(".app")] or name
        app_id = text("bundle_identifier")
        version = text("bundle_short_version") or text("bundle_version")
        path = path_text("path")
    elif table == "programs":
        name = text("name")
        app_id = text("package_family_name") or text("identifying_number")
        version = text("version")
        path = path_text("install_location")
    else:
        if table == "deb_packages":
            status = (text("status") or "").split()
            if status and status[-1] in DEB_NOT_INSTALLED:
                return "not_installed"
        name = text("name")
        app_id = name
        version = text("version")
        if table == "rpm_packages" and version is not None and text("release"):
            version = f"{version}-{text('release')}"
            epoch = text("epoch")
            if epoch not in (None, "0"):
                version = f"{epoch}:{version}"
        path = None
    if app_id is None:
        if name is None:
            return "unnamed"
        app_id, evidence = _name_based(name, platform, where=where)
    app_id = check_text(app_id, what="id", where=where, limit=MAX_ID_CHARS, identifier=True)
    return App(
        id=app_id,
        name=name,
        version=version,
        source=SOURCE,
        evidence="display_name" if evidence else None,
        path=path,
    )


def _check_saved_output(text: str, *, where: str) -> None:
    """A saved export that does not start as JSON: osqueryi's log lines or its own error saved with its
    output (``> FILE 2>&1``), or another tool's file; said so, where the JSON parser said "line 1,
    column 1"."""
    start = text.lstrip("\ufeff \t\r\n")
    if start and start[0] not in "[{":
        line = clip(start.splitlines()[0])
        raise CollectorInputError(
            f"{where}: not osqueryi --json output (a JSON array): it starts with {line} (osqueryi writes "
            "its log lines and errors to stderr: save its standard output only, "
            "`osqueryi --json 'SELECT ...' > FILE`)"
        )


def parse_osquery_json(
    text: str, *, where: str, table: Table | None = None
) -> tuple[Table, list[App], dict[str, object]]:
    """(table, apps, facts) from ``osqueryi --json`` output. ``table`` forces the table (needed when the
    rows were selected with too few columns to tell, or have columns of a newer osquery)."""
    if table is not None and table not in TABLE_PLATFORM:
        raise CollectorInputError(f"osquery: unknown table {table!r}; one of {', '.join(TABLE_PLATFORM)}")
    rows = _rows(load_json(text, where=where), where=where)
    if not rows:
        raise CollectorInputError(
            f"{where}: no rows: osquery found no software (the wrong table for this system?), and a "
            "device reported with none would be compliant"
        )
    # osqueryi prints the same columns in every row; an export put together by hand may not. The table
    # is told from every column seen, and rows of different tables are refused below.
    columns = frozenset().union(*(frozenset(row) for row in rows))
    seen: list[Table] = []
    for index, row in enumerate(rows, start=1):
        found = tables_of(frozenset(row))
        if found and seen and found != seen:
            raise CollectorInputError(
                f"{where}: row {index} is from another table than the rest; mixed tables are refused"
            )
        seen = seen or found
    own = tables_of(columns)
    if len(own) > 1:
        raise CollectorInputError(
            f"{where}: the columns are those of {' and '.join(own)}; one table at a time"
        )
    foreign = foreign_columns(columns)
    if table is None and foreign:
        raise CollectorInputError(
            f"{where}: columns {clip(', '.join(sorted(foreign)), 200)} are not columns of apps, programs, "
            "deb_packages or rpm_packages: rows of another table? (name the table with --table to read "
            "them as one of these)"
        )
    if table is None:
        detected = detect_table(columns)
        if detected is None:
            raise CollectorInputError(
                f"{where}: columns {clip(', '.join(sorted(columns)), 200)} do not tell which of "
                "apps, programs, deb_packages, rpm_packages they are from; use `select *` or name the "
                "table (--table)"
            )
        table = detected
    elif own and own[0] != table:
        raise CollectorInputError(f"{where}: the columns are those of {own[0]}, not {table}")
    apps: list[App] = []
    skipped: dict[Skipped, list[int]] = {"not_installed": [], "unnamed": []}
    for index, row in enumerate(rows, start=1):
        app = _app(row, table, where=f"{where}: row {index}")
        if isinstance(app, App):
            apps.append(app)
        else:
            skipped[app].append(index)
    if not apps:
        raise CollectorInputError(
            f"{where}: none of its {len(rows)} rows is installed software with an identifier or a name, "
            "and a device reported with no apps would be compliant"
        )
    facts: dict[str, object] = {"osquery_table": table, "rows": len(rows)}
    if table == "deb_packages":
        facts["not_installed_skipped"] = len(skipped["not_installed"])
    if unnamed := skipped["unnamed"]:
        facts["unnamed_skipped"] = len(unnamed)
        shown = listed(map(str, unnamed[:10]), len(unnamed))
        print(
            f"pyagent: note: {where}: {len(unnamed)} row(s) with neither an identifier nor a name skipped "
            f"(row {shown}): no ban can match them",
            file=sys.stderr,
        )
    if table == "programs" and "package_family_name" not in columns:
        facts["store_apps_listed"] = False
        print(
            f"pyagent: note: {where}: programs rows without package_family_name (osquery before 5.17, "
            "or not selected) list no Store (MSIX) apps, TikTok's Windows app among them",
            file=sys.stderr,
        )
    return table, apps, facts


def default_table() -> Table:
    """The table to query when running osqueryi on this machine."""
    if sys.platform == "darwin":
        return "apps"
    if sys.platform == "win32":
        return "programs"
    return "deb_packages" if find_tool("dpkg-query") else "rpm_packages"


class OsqueryCollector(Collector):
    """osquery rows from a file (``from_file``), or from running ``osqueryi --json`` on this machine.

    Options: ``from_file``, ``table`` (force the table; live mode: which table to query, default the
    one for this OS), ``osqueryi`` (the program), ``timeout`` (seconds), ``max_output`` (bytes).
    """

    name = "osquery"

    def __init__(
        self,
        *,
        from_file: str | os.PathLike[str] | None = None,
        table: Table | None = None,
        osqueryi: str = "osqueryi",
        timeout: float = DEFAULT_TIMEOUT,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        if table is not None and table not in TABLE_PLATFORM:
            raise CollectorInputError(f"osquery: unknown table {table!r}; one of {', '.join(TABLE_PLATFORM)}")
        self.from_file = Path(from_file) if from_file is not None else None
        self.table = table
        self.osqueryi = osqueryi
        self.timeout = timeout
        self.max_output = max_output

    def collect(self) -> Inventory:
        if self.from_file is not None:
            where = input_name(self.from_file)
            text = decode_text(read_input_bytes(self.from_file), where=where)
            _check_saved_output(text, where=where)
            table, apps, facts = parse_osquery_json(text, where=where, table=self.table)
            facts["input"] = "file"
        else:
            table = self.table or default_table()
            query = f"select * from {table}"
            out = run_tool([self.osqueryi, "--json", query], timeout=self.timeout, max_output=self.max_output)
            where = f"osqueryi --json {query!r}"
            try:
                table, apps, facts = parse_osquery_json(
                    decode_text(out, where=where), where=where, table=table
                )
            except CollectorInputError as exc:
                raise CollectorError(f"osqueryi: unexpected output: {exc}") from exc
            facts["input"] = "osqueryi"
        # (an export that cannot list Store apps says so in the report: a ban of one is not checked)
        not_listed = ("windows-store",) if facts.get("store_apps_listed") is False else ()
        return self.inventory(TABLE_PLATFORM[table], apps, facts=facts, not_listed=not_listed)
