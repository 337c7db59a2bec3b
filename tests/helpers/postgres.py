"""A throwaway real PostgreSQL (``initdb`` + ``pg_ctl``) on a free loopback port, for the server tests.

PostgreSQL refuses to run as root, so as root its programs run as the ``postgres`` OS user
(``runuser -u postgres --``; Debian's ``postgresql`` package creates that user). Its files therefore
live in a fresh ``tempfile.mkdtemp()`` directory owned by that user (pytest's ``tmp_path`` is root's
and private), removed afterwards; the server log is copied into ``workdir`` when it stops.
Clients connect over TCP as the superuser ``pyagent`` with ``trust`` authentication. ``fsync``
stays on: the tests kill clients and servers, never PostgreSQL, and expect committed data to stay.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.opa_server import free_port
from tests.helpers.services import require_binary

HOST = "127.0.0.1"
SUPERUSER = "pyagent"
DATABASE = "pyagent"
OS_USER = "postgres"
START_TIMEOUT = 20
SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "max_connections": "100",
    "shared_buffers": "'128MB'",
    "work_mem": "'4MB'",
    "max_worker_processes": "4",
    "max_parallel_workers": "2",
    "max_parallel_workers_per_gather": "1",
    "fsync": "on",
    "synchronous_commit": "on",
}
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass
class RunningPostgres:
    port: int
    host: str
    url: str
    """SQLAlchemy URL of the ``pyagent`` database: ``postgresql+psycopg://pyagent@127.0.0.1:PORT/pyagent``."""
    dsn: str
    """libpq URL of the same database: ``postgresql://pyagent@127.0.0.1:PORT/pyagent``."""
    bin_dir: Path
    data_dir: Path
    """The cluster's data directory (``postmaster.pid`` names its server process)."""

    def create_database(self, name: str, *, icu_locale: str | None = None) -> str:
        """Create a fresh, empty database ``name`` (collated by ICU's ``icu_locale`` if given, as a
        database made by a distribution's defaults is); returns its SQLAlchemy URL."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain PostgreSQL database name: {name!r}")
        collation = ["--template=template0", "--locale-provider=icu", f"--icu-locale={icu_locale}"]
        createdb = [str(self.bin_dir / "createdb"), "-h", self.host, "-p", str(self.port), "-U", SUPERUSER]
        _run([*createdb, *(collation if icu_locale else []), name])
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{name}"


def _as_postgres(args: Sequence[str]) -> list[str]:
    """``args`` run as the ``postgres`` OS user when we are root (PostgreSQL refuses root)."""
    return ["runuser", "-u", OS_USER, "--", *args] if os.geteuid() == 0 else list(args)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _run(args: Sequence[str], cwd: Path | None = None, timeout: float = 60, log: Path | None = None) -> None:
    """Run ``args``; raises with their output (and the tail of the server ``log``) when they fail."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        tail = f"\npostgres log tail:\n{_tail(log)}" if log else ""
        output = f"{done.stdout}{done.stderr}"
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}: {output}{tail}")


def _private_dir() -> Path:
    """A fresh directory the ``postgres`` user owns when we are root (mode 0700 either way)."""
    if os.geteuid() != 0:
        return Path(tempfile.mkdtemp(prefix="pyagent-pg-"))
    try:
        account = pwd.getpwnam(OS_USER)
    except KeyError:
        reason = f"as root, PostgreSQL needs the {OS_USER!r} OS user (apt-get install postgresql)"
        raise RuntimeError(reason) from None
    base = Path(tempfile.mkdtemp(prefix="pyagent-pg-"))
    os.chown(base, account.pw_uid, account.pw_gid)
    return base


def _wait_ready(bin_dir: Path, port: int, log: Path, deadline: float) -> None:
    isready = [
        str(bin_dir / "pg_isready"),
        "-q",
        "-h",
        HOST,
        "-p",
        str(port),
        "-U",
        SUPERUSER,
        "-d",
        "postgres",
        "-t",
        "1",
    ]
    while time.monotonic() < deadline:
        if subprocess.run(isready, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(
        f"postgres did not accept connections on {HOST}:{port} within "
        f"{START_TIMEOUT}s; log tail:\n{_tail(log)}"
    )


def _stop(bin_dir: Path, data: Path) -> None:
    """``pg_ctl stop -m fast``; SIGKILL the postmaster when that does not work."""
    stop = subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "10"]),
        capture_output=True,
        check=False,
    )
    pid_file = data / "postmaster.pid"
    if stop.returncode and pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


@contextlib.contextmanager
def run_postgres(workdir: Path) -> Iterator[RunningPostgres]:
    """Start a fresh PostgreSQL cluster with a ``pyagent`` database; stop and delete it afterwards."""
    bin_dir = require_binary("initdb").parent
    port = free_port()
    base = _private_dir()
    data, sockets, log = base / "data", base / "sockets", base / "postgres.log"
    started = False
    try:
        _run(
            _as_postgres(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            ),
            cwd=base,
        )
        _run(_as_postgres(["mkdir", "-m", "0700", str(sockets)]))
        settings = {**SETTINGS, "port": str(port), "unix_socket_directories": f"'{sockets}'"}
        with (data / "postgresql.conf").open("a") as conf:  # appending keeps the file's owner
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
        started = True
        _run(
            _as_postgres(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    str(START_TIMEOUT),
                ]
            ),
            cwd=base,
            timeout=START_TIMEOUT + 10,
            log=log,
        )
        _wait_ready(bin_dir, port, log, time.monotonic() + START_TIMEOUT)
        _run([str(bin_dir / "createdb"), "-h", HOST, "-p", str(port), "-U", SUPERUSER, DATABASE], log=log)
        yield RunningPostgres(
            port=port,
            host=HOST,
            url=f"postgresql+psycopg://{SUPERUSER}@{HOST}:{port}/{DATABASE}",
            dsn=f"postgresql://{SUPERUSER}@{HOST}:{port}/{DATABASE}",
            bin_dir=bin_dir,
            data_dir=data,
        )
    finally:
        if started:
            _stop(bin_dir, data)
        if log.exists():
            shutil.copyfile(log, workdir / f"postgres-{port}.log")
        shutil.rmtree(base, ignore_errors=True)
