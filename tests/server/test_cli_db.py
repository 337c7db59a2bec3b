"""`pyagent server … --db`: what names no usable database is the user's mistake, said in one line
(exit 2), and nothing is made of it; a database of someone else's tables is not migrated into (3)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pyagent.cli import cli


def _server(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["server", *args])
    return result.exit_code, result.stderr


def test_a_file_that_is_no_database_or_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    """Both were exit 3 with SQLite's words ("unable to open database file", "file is not a database")."""
    folder, report = tmp_path / "folder", tmp_path / "report.json"
    folder.mkdir()
    report.write_text('{"schema_version": 1}')
    assert _server("migrate", "--db", f"sqlite:///{folder}") == (
        2, f"pyagent: error: --db {folder}: a directory, not a SQLite database file\n"
    )  # fmt: skip
    assert _server("migrate", "--db", str(report)) == (
        2, f"pyagent: error: --db {report}: not a SQLite database file\n"
    )  # fmt: skip
    assert report.read_text() == '{"schema_version": 1}'


@pytest.mark.parametrize("command", [["token", "list"], ["token", "revoke", "fleet"]])
def test_reading_or_revoking_in_a_database_that_does_not_exist_makes_none(
    tmp_path: Path, command: list[str]
) -> None:
    """A typo in --db listed no token (exit 0) and left an empty database, side files and all."""
    typo = tmp_path / "typo.db"
    assert _server(*command, "--db", str(typo)) == (
        2, f"pyagent: error: --db {typo}: no such database (`pyagent server migrate`, `run` or `token add` "
        "makes it)\n",
    )  # fmt: skip
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("given", "shown"),
    [("postgresql:/u:secret@db.example.org/pyagent", "postgresql:…@db.example.org/pyagent"),
     ("postgresql:u:s3cret@db.example.org/pyagent", "postgresql:…@db.example.org/pyagent"),
     ("postgresql:/u:p/w@db.example.org/pyagent", "postgresql:…@db.example.org/pyagent"),
     ("postgresql:pyagent.db", "postgresql:pyagent.db"), ("sqlite:server.db", "sqlite:server.db")],
)  # fmt: skip
def test_a_url_without_its_slashes_is_no_file_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, shown: str
) -> None:
    """``postgresql:/db.example.org/pyagent`` was taken for a relative file path and made; one with no
    slash at all was too, its password printed in the error."""
    monkeypatch.chdir(tmp_path)
    for command in (["migrate"], ["token", "list"]):
        assert _server(*command, "--db", given) == (
            2, f"pyagent: error: --db {shown}: not a database URL (a URL is scheme://…); expected "
            "postgresql://HOST[:PORT]/DATABASE or sqlite:///FILE\n",
        )  # fmt: skip
    assert sorted(tmp_path.iterdir()) == []


def test_someone_else_s_database_is_not_migrated_into(tmp_path: Path) -> None:
    other = tmp_path / "inventory.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE hosts (name TEXT)")
    assert _server("migrate", "--db", f"sqlite:///{other}") == (
        3, f"pyagent: error: database sqlite:///{other}: it holds tables that are not this pyagent's (hosts) "
        "and no pyagent schema: give an empty database or pyagent's\n",
    )  # fmt: skip
    with sqlite3.connect(other) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["hosts"]


def test_a_password_in_the_server_config_is_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The agent's config refuses an inline token; the server's took a database password unsaid."""
    from pyagent.server.settings import load_settings

    config = tmp_path / "server.toml"
    config.write_text('[server]\ndb = "postgresql://pyagent:hunter2@db.internal/pyagent"\n')
    assert load_settings(config).db == "postgresql://pyagent:hunter2@db.internal/pyagent"
    said = capsys.readouterr().err
    assert said == (
        f"pyagent: warning: {config}: server.db holds a password: secrets stay out of config files; "
        "give it in PYAGENT_SERVER_DB, or to PostgreSQL in a password file (PGPASSFILE, ~/.pgpass)\n"
    )
    assert "hunter2" not in said
    in_query = tmp_path / "query.toml"  # (warned once per file and process)
    in_query.write_text('[server]\ndb = "postgresql://pyagent@db.internal/pyagent?password=hunter2"\n')
    load_settings(in_query)
    assert f"pyagent: warning: {in_query}: server.db holds a password" in capsys.readouterr().err
    config.write_text('[server]\ndb = "postgresql://pyagent@db.internal/pyagent"\n')
    load_settings(config)
    assert capsys.readouterr().err == ""


def test_a_postgresql_database_holding_an_extension_s_table_is_migrated(postgres: Any) -> None:
    """PostGIS puts spatial_ref_sys in a database: the foreign-table check is a SQLite file's only."""
    from sqlalchemy import text

    from pyagent.server.store import open_store
    from pyagent.server.store.engine import open_engine

    url = postgres.create_database("with_extension_table")
    engine = open_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE spatial_ref_sys (srid integer PRIMARY KEY)"))
    engine.dispose()
    store = open_store(url)
    try:
        assert store.migrate() == []  # (open_store migrated it: every revision applied, none left)
        assert store.list_tokens() == []
    finally:
        store.close()
