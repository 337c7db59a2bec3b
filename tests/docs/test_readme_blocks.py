"""Every shell block of README.md and deploy/ runs as written, in order, in a fresh workspace.

How (the conventions are in ``tests/docs/readme_blocks.py``):

- The workspace is a temporary directory that looks like a checkout after ``make venv opa``: copies of
  the files the blocks read (``examples/``, ``policies/``, ``deploy/``, ``schemas/``, the Makefile) and
  links to the repository's ``.venv`` and ``.tools``. Every other file a block uses (``report.json``,
  the key pair, ``tokens/``, the certificates, ``reports/``...) is made by an earlier block.
- All blocks of a document run in one bash process, as a reader types them into one terminal: ``cd``,
  ``export`` and shell variables carry over. Each command must exit 0, or N where it says ``# exit N``.
- The environment has no ``pyagent`` or ``opa`` on ``PATH`` and no ``PYAGENT_*`` variable: the README's
  own ``export PATH=...`` block is what makes them work. One departure: ``PYAGENT_STATE_DIR`` points
  into the workspace, since as root the default state directory is ``/var/lib/pyagent``.
- A server a block starts with ``&`` (OPA, ``pyagent server``, nginx) keeps running for the later
  blocks, which wait for it with ``curl --retry``; the test stops the whole process group at the end.
- Marks before a block: ``skip REASON`` for the few that install system-wide or need a remote service,
  ``dry-run REASON`` for the Quickstart's ``make`` commands (CI runs ``make test`` after ``make venv
  opa``, and ``make test`` would run this test again): they run as ``make -n``, which checks the targets
  exist and parse. ``env PYAGENT_SERVER_DB`` gives the scale-out block a throwaway PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.readme_blocks import Block, BlockError, read_blocks, script
from tests.helpers.postgres import RunningPostgres
from tests.helpers.pyagent_server import add_token
from tests.helpers.services import require_binary

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "deploy/systemd/README.md")
COPIED = ("examples", "policies", "deploy", "schemas", "Makefile", "versions.mk", "pyproject.toml")
LINKED = (".venv", ".tools")
SKIPPED = [  # the blocks that do not run, and why (a reason's first words): as few as possible
    ("README.md", "installs from the package index"),
    ("README.md", "needs an OCI registry"),
    ("deploy/systemd/README.md", "installs system-wide and starts systemd units"),  # the agent
    ("deploy/systemd/README.md", "installs system-wide and starts systemd units"),  # its OPA
]


PORTS = (8181, 8182, 8282, 8300, 8301, 8302, 8443)  # the README's servers listen on these, as written


def require_free_ports() -> None:
    """A server left over on a README port would answer in place of the one the README starts."""
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} on 127.0.0.1 is in use: the README's servers need it")


def workspace(root: Path) -> Path:
    """A directory that looks like a checkout after ``make venv opa`` (see the module's docstring)."""
    installed = REPO / ".venv" / ".installed"
    if not installed.exists() or installed.stat().st_mtime < (REPO / "pyproject.toml").stat().st_mtime:
        # its make would reinstall the linked venv from this copy, which has no pyagent/: a broken venv
        pytest.fail("pyproject.toml is newer than the venv: run make venv first")
    work = root / "checkout"
    work.mkdir()
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, work / name)  # keeps mtimes: make sees the venv up to date
    for name in LINKED:
        (work / name).symlink_to(REPO / name)
    return work


def clean_env(work: Path, extra_path: list[Path]) -> dict[str, str]:
    """The environment of a new terminal: no pyagent or opa on PATH, no PYAGENT_* settings."""
    path = [
        entry for entry in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if entry and not any((Path(entry) / tool).exists() for tool in ("pyagent", "opa"))
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYAGENT_")}
    env["PATH"] = os.pathsep.join([*path, *(str(p) for p in extra_path)])
    env["PYAGENT_STATE_DIR"] = str(work / "state")
    return env


@contextlib.contextmanager
def run_document(
    doc: str, work: Path, env: dict[str, str], provided: dict[str, str], log: Path
) -> Iterator[None]:
    """Run ``doc``'s blocks in ``work``; the servers they started run until the ``with`` ends."""
    text = script(read_blocks(REPO / doc, doc), provided)
    with log.open("wb") as out:
        shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-c", text], cwd=work, env=env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        rc = shell.wait(timeout=150)
        shown = log.read_text(errors="replace")
        assert rc == 0 and shown.endswith("### all blocks ran\n"), f"{doc} (exit {rc}):\n" + "\n".join(
            shown.splitlines()[-60:]
        )
        yield
    finally:
        stop_group(shell.pid)


def stop_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        time.sleep(0.5)
        os.killpg(pid, signal.SIGKILL)


def test_every_shell_block_runs_or_says_why_not() -> None:
    blocks = [block for doc in DOCUMENTS for block in read_blocks(REPO / doc, doc)]
    shell = [block for block in blocks if block.language in {"sh", "bash", "console"}]
    skipped = [(block.doc, block.argument.split(" (")[0]) for block in shell if block.mark == "skip"]
    assert skipped == SKIPPED
    assert [(b.doc, b.lines[:1]) for b in shell if b.mark != "skip" and not b.runs] == []  # the rest run
    assert len(shell) - len(skipped) >= 12
    listening = {
        int(port)
        for block in shell
        if block.runs
        for port in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", "\n".join(block.lines))
    }
    assert listening - {5432} == set(PORTS)  # checked free before the README runs (5432: the test's own PG)
    assert not [block.where for block in blocks if block.language in {"", "text"} and block.mark]


def test_readme_runs_as_written(postgres: RunningPostgres, tmp_path: Path) -> None:
    nginx = require_binary("nginx")
    require_free_ports()
    work = workspace(tmp_path)
    db = postgres.create_database("readme")
    env = clean_env(work, [nginx.parent])
    with run_document("README.md", work, env, {"PYAGENT_SERVER_DB": db}, tmp_path / "log"):
        token = add_token(db, "readme-reader", "reader")
        seen = []
        for _ in range(4):  # the scale-out block: both replicas answer through nginx, from one store
            request = urllib.request.Request(
                "http://127.0.0.1:8300/api/v1/devices/nobody", headers={"Authorization": f"Bearer {token}"}
            )
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(request, timeout=5)
            seen.append(answer.value.code)
        assert seen == [404, 404, 404, 404]
    made = sorted(  # a folder as "name/", so that git matches it as one
        path.name + "/" * path.is_dir()
        for path in work.iterdir()
        if path.name not in {*COPIED, *LINKED, "state"}
    )
    assert {
        "report.json",
        "private.pem",
        "public.pem",
        "reader.token",
        "tokens/",
        "ca.pem",
        "reports/",
    } <= set(made)
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *made], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert sorted(ignored.stdout.split()) == made, "the README makes files git would not ignore"


def test_a_block_is_split_into_commands_with_their_exit_codes() -> None:
    block = Block(
        "doc.md", 10, "sh",
        (
            "# a comment",
            "pyagent check report.json   # exit 1: non-compliant",
            "pyagent fleet a.jsonl \\",
            "    --at 2023-03-16T09:30:00Z",
            "cat > f.yaml <<'EOF'",
            "ban: capcut  # exit 3 is not a comment here",
            "EOF",
            "opa run --server &",
        ),
    )  # fmt: skip
    assert [(c.line, c.expect) for c in block.commands()] == [(12, 1), (13, 0), (15, 0), (18, 0)]
    heredoc = "cat > f.yaml <<'EOF'\nban: capcut  # exit 3 is not a comment here\nEOF"
    assert block.commands()[2].text == heredoc


def test_a_skip_without_a_reason_and_an_unknown_mark_are_refused(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("text\n<!-- readme-test: skip -->\n```sh\ntrue\n```\n", encoding="utf-8")
    with pytest.raises(BlockError, match=r"^doc.md:2: readme-test skip needs a reason$"):
        read_blocks(doc, "doc.md")
    doc.write_text("<!-- readme-test: maybe later -->\n```sh\ntrue\n```\n", encoding="utf-8")
    with pytest.raises(BlockError, match=r"^doc.md:1: unknown readme-test mark 'maybe'$"):
        read_blocks(doc, "doc.md")


def test_a_wrong_exit_code_stops_the_script_and_names_the_line(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("```sh\ntrue\nfalse   # exit 1\ntrue   # exit 1: it is not\necho never\n```\n", "utf-8")
    done = subprocess.run(
        ["bash", "-c", script(read_blocks(doc, "doc.md"), {})], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (97, "")
    assert done.stderr == "\n### doc.md:1\nreadme-test: doc.md:4: exit 0, expected 1\n"
