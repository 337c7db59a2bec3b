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
from pyagent.collectors.files import decode_text, load_json, read_input_bytes
from pyagent.collectors.run import DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT, find_tool, run_tool

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


def detect_table(columns: frozenset[str]) -> Table | None:
    """The table a row with these columns comes from, or None when they match none of the four."""
    if "bundle_identifier" in columns:
        return "apps"
    if "identifying_number" in columns or "package_family_name" in columns:
        return "programs"
    if "name" not in columns:
        return None
    if "release" in columns:
        return "rpm_packages"
    if columns & {"maintainer", "section", "priority", "revision", "admindir"}:
        return "deb_packages"
    if "version" in columns:
        # `name`, `version`, `arch` only: both Linux package tables read the same way; dpkg's is the default.
        return "deb_packages"
    return None


def _rows(data: object, *, where: str) -> list[dict[str, str]]:
    if not isinstance(data, list):
        raise CollectorInputError(f"{where}: not osquery --json output (expected a JSON array of rows)")
    rows: list[dict[str, str]] = []
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise CollectorInputError(f"{where}: row {index} is not a JSON object")
        clean: dict[str, str] = {}
        for key, value in row.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise CollectorInputError(
                    f"{where}: row {index} column {key!r} is {type(value).__name__}; osquery prints strings"
                )
            clean[key] = value if isinstance(value, str) else str(value)
        rows.append(clean)
    return rows


def _name_based(name: str, platform: Platform, *, where: str) -> tuple[str, str]:
    """(id, evidence) for an app known only by its display name."""
    known = known_apps.lookup(name, platform)
    if known is not None:
        return known, "display_name"
    return check_text(f"name:{name}", what="name-derived id", where=where, limit=MAX_ID_CHARS), "display_name"


def _app(row: Mapping[str, str], table: Table, *, where: str) -> App | None:
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
                return None
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
            raise CollectorInputError(f"{where}: row has neither an identifier nor a name")
        app_id, evidence = _name_based(name, platform, where=where)
    app_id = check_text(app_id, what="id", where=where, limit=MAX_ID_CHARS)
    return App(
        id=app_id,
        name=name,
        version=version,
        source=SOURCE,
        evidence="display_name" if evidence else None,
        path=path,
    )


def parse_osquery_json(
    text: str, *, where: str, table: Table | None = None
) -> tuple[Table, list[App], dict[str, object]]:
    """(table, apps, facts) from ``osqueryi --json`` output. ``table`` forces the table (needed when the
    result has no rows, or was selected with too few columns to tell)."""
    if table is not None and table not in TABLE_PLATFORM:
        raise CollectorInputError(f"osquery: unknown table {table!r}; one of {', '.join(TABLE_PLATFORM)}")
    rows = _rows(load_json(text, where=where), where=where)
    if not rows:
        if table is None:
            raise CollectorInputError(
                f"{where}: no rows, so no way to tell the table; name the table (--table)"
            )
        return table, [], {"osquery_table": table, "rows": 0}
    # osqueryi prints the same columns in every row; an export put together by hand may not. The table
    # is told from every column seen, and rows of different tables are refused below.
    columns = frozenset().union(*(frozenset(row) for row in rows))
    for index, row in enumerate(rows):
        if detect_table(frozenset(row)) not in (None, detect_table(columns)):
            raise CollectorInputError(
                f"{where}: row {index} is from another table than the rest; mixed tables are refused"
            )
    detected = detect_table(columns)
    if table is None:
        if detected is None:
            raise CollectorInputError(
                f"{where}: columns {clip(', '.join(sorted(columns)), 200)} match none of "
                "apps, programs, deb_packages, rpm_packages; use `select *` or name the table (--table)"
            )
        table = detected
    elif detected is not None and detected != table:
        raise CollectorInputError(f"{where}: the columns are those of {detected}, not {table}")
    apps: list[App] = []
    skipped = 0
    for index, row in enumerate(rows):
        app = _app(row, table, where=f"{where}: row {index}")
        if app is None:
            skipped += 1
        else:
            apps.append(app)
    facts: dict[str, object] = {"osquery_table": table, "rows": len(rows)}
    if table == "deb_packages":
        facts["not_installed_skipped"] = skipped
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
            where = os.fspath(self.from_file)
            text = decode_text(read_input_bytes(self.from_file), where=where)
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
        return self.inventory(TABLE_PLATFORM[table], apps, facts=facts)
