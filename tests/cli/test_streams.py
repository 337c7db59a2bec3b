"""The streams around a command: a closed standard input, a standard error that cannot be written,
a reader that goes away. Each keeps the exit code of what happened and never is an internal error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import EXAMPLES

CLOSED = "- (<stdin>): standard input is closed; pipe the input in, or name a file"


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("check", f"pyagent: error: {CLOSED}\n"),
        ("fleet", f"pyagent: error: {CLOSED}\n"),
        ("validate", f"{CLOSED}\npyagent: 1 of 1 reports invalid\n"),  # (validate names each input)
    ],
)
def test_a_closed_standard_input_is_a_one_line_error(command: str, said: str, policy_bundle: Path) -> None:
    """``pyagent check - <&-``: Python has no sys.stdin then (it was an internal error, exit 3)."""
    done = subprocess.run(
        ["bash", "-c", f'"$0" -m pyagent {command} - <&-', sys.executable],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (2, "", said)


@pytest.mark.parametrize(
    ("shell", "code"),
    [
        ('"$0" -m pyagent check /nonexistent/report.json 2>/dev/full', 2),  # stderr full: still exit 2
        ('"$0" -m pyagent check /nonexistent/report.json 2>&-', 2),  # stderr closed
        ('"$0" -m pyagent check - --engine opa --opa-url http://127.0.0.1:9 < "$1" 2>/dev/full', 3),
    ],
)
def test_an_error_keeps_its_exit_code_when_stderr_cannot_be_written(shell: str, code: int) -> None:
    """The message could not be said; the exit code still says what happened (it had been 1:
    non-compliant, for a refusal or for no decision)."""
    report = str(EXAMPLES / "eu-commission-corporate-clean.json")
    done = subprocess.run(
        ["bash", "-c", shell, sys.executable, report], capture_output=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (code, b"")


def test_a_reader_that_goes_away_is_no_internal_error() -> None:
    """``pyagent fleet generate ... | head -c 100``: a broken pipe is said in one line, exit 2 as a closed
    standard output (it was 3, "no decision", after the decisions were made)."""
    done = subprocess.run(
        ["bash", "-c", '"$0" -m pyagent fleet generate --devices 2000 --seed 7 | head -c 100 > /dev/null; '
         'exit "${PIPESTATUS[0]}"', sys.executable],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    said = "pyagent: error: output closed by its reader (broken pipe)\n"
    assert (done.returncode, done.stderr) == (2, said)


@pytest.mark.parametrize(
    "arguments",
    [
        'check "$1"',  # compliant: it was exit 3, an internal error (isatty on no stderr)
        'check "$2"',  # non-compliant
        'fleet "$1" "$2"',  # the text report dropped unsaid: exit 1
        'impact --baseline "$3" --candidate "$3" "$1"',  # the text report dropped unsaid: exit 0
    ],
)
def test_a_text_report_to_a_closed_stderr_is_a_closed_output(arguments: str, policy_bundle: Path) -> None:
    """Text goes to standard error: closed (``2>&-``), it is the closed-output error (exit 2), as a
    closed standard output is for JSON, never a decision's exit code for a report no one got."""
    clean = str(EXAMPLES / "eu-commission-corporate-clean.json")
    banned = str(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json")
    policies = str(EXAMPLES.parents[1] / "policies")
    done = subprocess.run(
        ["bash", "-c", f'"$0" -m pyagent {arguments} --at 2023-03-16T09:30:00Z 2>&-', sys.executable,
         clean, banned, policies],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, b"")
