"""What the console entry point does for a cold start: one-shot commands run without the cycle
collector and freeze what is left when they end; every other command gets the collector back."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyagent.cli import main
from tests.helpers.opa_server import POLICY_DIRS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "reports"
AT = "2023-03-16T09:30:00Z"


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """The test may leave the collector off and objects frozen: both undone afterwards."""
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int | str | None:
    monkeypatch.setattr(sys, "argv", ["pyagent", *args])
    with pytest.raises(SystemExit) as done:
        main()
    return done.value.code


@pytest.mark.usefixtures("collector_restored", "policy_bundle")
def test_check_runs_without_the_collector_and_freezes_what_is_left(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gc.unfreeze()
    report = EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"
    code = run_main(monkeypatch, "check", str(report), "--at", AT, "--engine", "embedded")
    assert code == 1
    assert capsys.readouterr().err.startswith("NON-COMPLIANT: device ")
    assert not gc.isenabled()
    assert gc.get_freeze_count() > 0


@pytest.mark.parametrize("command", ["fleet", "validate", "agent"])
@pytest.mark.usefixtures("collector_restored")
def test_any_other_command_gets_the_collector_back(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    gc.disable()
    assert run_main(monkeypatch, command, "--help") == 0
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_restored")
def test_an_error_still_freezes_and_keeps_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gc.unfreeze()
    missing = EXAMPLES / "no-such-report.json"
    assert run_main(monkeypatch, "check", str(missing), "--at", AT) == 2
    assert capsys.readouterr().err == f"pyagent: error: {missing}: report not found\n"
    assert gc.get_freeze_count() > 0


_IMPORTS_AT_EXIT = """
import atexit, sys
watched = {"_hashlib", "gzip", "hashlib", "logging", "tarfile"}
atexit.register(lambda: print(sorted(watched & set(sys.modules))))
from pyagent.cli import main
sys.argv = ["pyagent", *sys.argv[1:]]
main()
"""


@pytest.fixture(scope="module")
def indexed_bundle(opa_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policy with its ban index, as `make policy` and `pyagent policy bundle` build it."""
    from pyagent.policy import index

    work = tmp_path_factory.mktemp("indexed")
    index.write_root_for_dirs(list(POLICY_DIRS), work / "idx")
    out = work / "bundle.tar.gz"
    subprocess.run(
        [
            *(opa_bin, "build", "-t", "wasm", "-e", "pyagent/decision", "--ignore", "*_test.rego"),
            *("-o", str(out), *map(str, POLICY_DIRS), str(work / "idx")),
        ],
        check=True,
        capture_output=True,
    )
    return out


def test_a_cached_check_reads_no_archive_and_loads_no_openssl(indexed_bundle: Path, tmp_path: Path) -> None:
    """The first check fills the caches (reading the archive with tarfile, checking the ban index with
    hashlib); the next one needs neither (hashlib's OpenSSL alone costs a cold check 2.5-3 ms). Neither
    loads logging: nothing logs."""
    report = EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"
    arguments = ["check", str(report), "--at", AT, "--engine", "embedded"]
    command = [sys.executable, "-c", _IMPORTS_AT_EXIT, *arguments]
    env = {**os.environ, "PYAGENT_CACHE_DIR": str(tmp_path / "cache"), "PYAGENT_BUNDLE": str(indexed_bundle)}
    runs = [subprocess.run(command, env=env, capture_output=True, text=True, check=False) for _ in range(2)]
    first = "['_hashlib', 'gzip', 'hashlib', 'tarfile']\n"
    assert [(run.returncode, run.stdout) for run in runs] == [(1, first), (1, "[]\n")]


def test_importing_the_command_line_runs_no_collection_and_leaves_the_collector_on() -> None:
    """No collection once the module runs (from its first import, click, on); before, loading its
    code may trigger one, as any allocation may."""
    script = (
        "import gc, sys; passes = []\n"
        "running = lambda: 'pyagent.cli' in sys.modules and 'click' in sys.modules\n"
        "gc.callbacks.append(lambda phase, info: passes.append(running()))\n"
        "import pyagent.cli\n"
        "print(passes.count(True), gc.isenabled())"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "0 True\n", "")


@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["quiet", "verbose"])
@pytest.mark.usefixtures("policy_bundle")
def test_a_check_that_falls_back_warns_only_when_asked(verbose: list[str]) -> None:
    """The fallback's warning is logged after the command line has set up logging (or not): it reaches
    stderr with -v only, never through Python's last-resort handler."""
    report = EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"
    opa = ["--engine", "opa", "--opa-url", "http://127.0.0.1:9", "--opa-retries", "0", "--opa-deadline", "1"]
    fallback = ["--fallback-embedded", "--max-policy-age", "3600"]
    command = [sys.executable, "-m", "pyagent", *verbose, "check", str(report), "--at", AT, *opa, *fallback]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    warning = (
        "pyagent: WARNING: OPA gave no decision (OPA at http://127.0.0.1:9: cannot connect (connection "
        "refused) (gave up after 1 attempt, deadline 1 s)); deciding with the embedded engine\n"
    )
    expected = (warning if verbose else "") + "NON-COMPLIANT: device "
    assert (done.returncode, done.stderr[: len(expected)]) == (1, expected)
