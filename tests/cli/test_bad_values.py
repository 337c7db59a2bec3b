"""Bad values that a fuzzing audit found reaching an internal error (exit 3), turning a guard off, or
deciding "allow": each is now a one-line usage error (exit 2) naming the option, file or field."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyagent.collectors.base import CollectorInputError, check_text
from tests.cli.conftest import run

REPO = Path(__file__).resolve().parents[2]
CLEAN = str(REPO / "examples" / "reports" / "eu-commission-corporate-clean.json")
AT = "2023-03-16T09:30:00Z"
HELP = "(see pyagent check --help)"


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    return tmp_path / "policies"


def usage_error(args: list[str]) -> str:
    result = run(args)
    assert (result.exit_code, result.stdout) == (2, ""), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return str(result.stderr)


@pytest.mark.parametrize(
    ("args", "told"),
    [
        (["--engine", "opa", "--opa-url", "http://127.0.0.1:1", "--opa-timeout", "inf"],
         f"Invalid value for '--opa-timeout': inf is not in the range 0.01<=x<=31536000.0. {HELP}"),
        (["--engine", "opa", "--opa-url", "http://127.0.0.1:1", "--opa-deadline", "nan"],
         f"Invalid value for '--opa-deadline': 'nan' is not a finite number. {HELP}"),
        (["--fallback-embedded", "--max-policy-age", "nan"],  # it turned the stale-bundle guard off
         f"Invalid value for '--max-policy-age': 'nan' is not a finite number. {HELP}"),
        (["--expect-revision", ""], f"Invalid value for '--expect-revision': must not be empty {HELP}"),
        (["--engine", "opa", "--opa-url", "http://a b"],
         "--opa-url: 'http://a b' holds a space or a control character"),
        (["--engine", "opa", "--opa-url", "http://127.0.0.1:1", "--opa-token", "tok\r\nX-Evil: 1"],
         "--opa-token: a bearer token is printable characters, no space"),
    ],
)  # fmt: skip
def test_decision_options(args: list[str], told: str) -> None:
    assert usage_error(["check", CLEAN, "--at", AT, *args]) == f"pyagent: error: {told}\n"


@pytest.mark.parametrize(
    ("args", "told"),
    [
        (["--interval", "nan"], "Invalid value for '--interval': 'nan' is not a finite number."),
        (["--interval", "1e20"],
         "Invalid value for '--interval': 1e+20 is not in the range 0<=x<=31536000.0."),
        (["--jitter", "nan"], "Invalid value for '--jitter': 'nan' is not a finite number."),
    ],
)  # fmt: skip
def test_agent_intervals(args: list[str], told: str) -> None:
    """``nan`` ran the agent back to back (3,068 runs a minute), 1e20 overflowed its clock."""
    assert usage_error(["agent", "run", "--once", *args]) == (
        f"pyagent: error: {told} (see pyagent agent run --help)\n"
    )


def test_other_command_options() -> None:
    assert usage_error(["collect", "--source", "android-pm", "--user", "2147483648"]) == (
        "pyagent: error: Invalid value for '--user': 2147483648 is not in the range 0<=x<=2147483647. "
        "(see pyagent collect --help)\n"
    )
    assert usage_error(["server", "run", "--forwarded-allow-ips", "10.0.0.0/8,,garbage"]) == (
        "pyagent: error: Invalid value for '--forwarded-allow-ips': '' is not an address or network "
        "(or give '*') (see pyagent server run --help)\n"
    )


@pytest.mark.parametrize(
    ("content", "told"),
    [
        ('{"pyagent": {"exemptions": {"EX-1": {"device_id": ' + "1" * 5001 + "}}}}",
         "data file has a number with too many digits (over 4,300)"),
        ('{"pyagent": {"exemptions": {"EX-1": {"device_id": Infinity}}}}',
         "data file is not valid JSON: Infinity is not a JSON number"),
    ],
)  # fmt: skip
def test_data_numbers_json_has_not(tmp_path: Path, content: str, told: str) -> None:
    data = tmp_path / "data.json"
    data.write_text(content)
    assert (
        usage_error(["check", CLEAN, "--at", AT, "--data", str(data)]) == f"pyagent: error: {data}: {told}\n"
    )


@pytest.mark.parametrize(
    ("tail", "told"),
    [
        ("\x00", ":{line}: not valid YAML: character U+0000 is not allowed"),
        ("extra: " + "1" * 5001 + "\n",
         ":{line}: data.pyagent.bans.extra: a number with too many digits (over 4,300)"),
        ("extra: .inf\n", ":{line}: data.pyagent.bans.extra: .inf is not a number JSON (and OPA) can hold"),
    ],
)  # fmt: skip
def test_policy_data_yaml_that_is_not_json(policy_copy: Path, tail: str, told: str) -> None:
    bans = policy_copy / "data" / "pyagent" / "bans" / "data.yaml"
    text = bans.read_text()
    bans.write_text(text + tail)
    line = text.count("\n") + 1
    result = run(["policy", "docs", str(policy_copy)])
    assert (result.exit_code, result.stderr) == (2, f"pyagent: error: {bans}{told.format(line=line)}\n")


@pytest.mark.parametrize(
    ("name", "content", "told"),
    [
        ("deep.toml", "x = " + "[" * 100_000 + "]" * 100_000 + "\n", "{path}: config is nested too deeply"),
        ("twice.yaml", "device:\n  id: p1\n  id: p2\n",  # p1 was dropped, as if never written
         "{path}:3: config is not valid YAML: key 'id' given twice (first at line 2)"),
    ],
)  # fmt: skip
def test_configs(tmp_path: Path, name: str, content: str, told: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert (
        usage_error(["agent", "status", "--config", str(path)])
        == f"pyagent: error: {told.format(path=path)}\n"
    )


def _closed_stdout(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyagent", *args], stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        preexec_fn=lambda: os.close(1),
    )  # fmt: skip


@pytest.mark.parametrize("command", ["check", "fleet"])
def test_a_closed_standard_output_is_an_error_not_a_lost_result(command: str) -> None:
    """``check >&-`` exited 0 with the decision lost; ``fleet >&-`` was an internal error."""
    done = _closed_stdout([command, CLEAN, "--at", AT, "--format", "json"])
    assert (done.returncode, done.stderr) == (
        2,
        "pyagent: error: standard output: cannot write: it is closed\n",
    )


def test_policy_docs_to_a_full_disk_is_exit_2() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "pyagent", "policy", "docs", str(REPO / "policies")], stdout=full,
            stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        2, "pyagent: error: standard output: cannot write: No space left on device\n"
    )  # fmt: skip


def test_a_fleet_that_fails_leaves_no_output_file_of_its_own(tmp_path: Path) -> None:
    """``-o`` is written whole once every result is in: a failed run made an empty new file (and
    emptied an earlier run's, which it still does: its results would read as this run's)."""
    not_a_bundle = tmp_path / "bundle.tar.gz"
    not_a_bundle.write_bytes(b"not a bundle")
    output, earlier = tmp_path / "new.html", tmp_path / "earlier.json"
    earlier.write_text('{"summary": {}}')
    for target in (output, earlier):
        result = run(
            ["fleet", CLEAN, "--at", AT, "--format", "json", "-o", str(target), "--bundle", str(not_a_bundle)]
        )
        assert result.exit_code == 3, result.stderr
    assert not output.exists() and earlier.read_text() == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "bundle.tar.gz",
        "earlier.json",
    ]  # no temporary


def test_app_ids_that_no_ban_can_match_are_refused(tmp_path: Path) -> None:
    """An id with a space at an end, or an invisible character inside, passed the schema and matched no
    ban: the TikTok phone was compliant."""
    report = json.loads(Path(CLEAN).read_text())
    report["apps"] = [{"id": " com.zhiliaoapp.musically"}, {"id": "com.zhiliaoapp\u200b.musically"}]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report, indent=2))
    result = run(["check", str(path), "--at", AT])
    assert (result.exit_code, result.stdout) == (2, "")
    white_space = (
        "$.apps[0].id: must not begin or end with white space (no ban would match it): "
        " com.zhiliaoapp.musically"
    )
    assert result.stderr.splitlines() == [
        f"pyagent: error: {path}: report does not match the schema (2 errors); first: {white_space}",
        f"  {path}: {white_space}",
        f"  {path}: $.apps[1].id: must not contain the invisible character U+200B (no ban would match it): "
        "com.zhiliaoapp\\u200b.musically",
    ]


@pytest.mark.parametrize(
    "hidden",
    ["\u034f", "\u115f", "\u1160", "\u17b4", "\u3164", "\ufe00", "\ufe0f", "\uffa0", "\U000e0100"],
)
def test_app_ids_with_a_default_ignorable_character_are_refused(tmp_path: Path, hidden: str) -> None:
    """Characters shown as nothing that Python still calls printable (a combining grapheme joiner, a
    Hangul filler, a variation selector): TikTok's id with one appended was compliant, exit 0."""
    report = json.loads(Path(CLEAN).read_text())
    report["apps"] = [{"id": f"com.zhiliaoapp.musically{hidden}"}]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    result = run(["check", str(path), "--at", AT])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"pyagent: error: {path}: $.apps[0].id: must not contain the invisible character "
        f"U+{ord(hidden):04X} (no ban would match it): com.zhiliaoapp.musically{hidden}"
    ]
    with pytest.raises(CollectorInputError, match=f"contains the invisible character U\\+{ord(hidden):04X}"):
        check_text(f"com.zhiliaoapp.musically{hidden}", what="id", where="x:1", identifier=True)


@pytest.mark.parametrize("name", ["Weather \u2600\ufe0f", "Keycap 1\ufe0f\u20e3", "\u845b\U000e0100 Maps"])
def test_a_variation_selector_that_selects_a_glyph_is_kept(tmp_path: Path, name: str) -> None:
    """An emoji's U+FE0F in an app's name, from which collectors make a ``name:`` id: refused, one such
    program stopped the whole device from being collected or decided."""
    assert check_text(f"name:{name}", what="name-derived id", where="x:1", identifier=True) == f"name:{name}"
    report = json.loads(Path(CLEAN).read_text())
    report["apps"].append({"id": f"name:{name}", "name": name})
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    result = run(["check", str(path), "--at", AT])
    assert (result.exit_code, result.stderr.splitlines()[:2]) == (
        0,
        [
            "COMPLIANT: device be-brussels-berl-0117, organisation eu-commission, "
            "evaluated 2023-03-16T09:30:00Z",
            "no ban applies to this device's apps",
        ],
    ), result.stderr


def test_lint_with_an_opa_that_fails_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYAGENT_OPA", "/bin/false")
    result = run(["policy", "lint", str(REPO / "policies" / "rego"), str(REPO / "policies" / "data")])
    assert (result.exit_code, result.stderr) == (2, "opa exited with status 1\nlint: problems found\n")


def test_collectors_take_the_spaces_a_tool_left_off_an_id_and_refuse_an_invisible_character() -> None:
    assert check_text(" com.zhiliaoapp.musically  ", what="id", where="x:1", identifier=True) == (
        "com.zhiliaoapp.musically"
    )
    with pytest.raises(CollectorInputError) as refused:
        check_text("com.zhiliaoapp\u200b.musically", what="id", where="x:1", identifier=True)
    assert str(refused.value) == (
        "x:1: id contains the invisible character U+200B, which no ban would match: "
        "'com.zhiliaoapp\\u200b.musically'"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["check", CLEAN, "--at", AT],
        ["collect", "--source", "android-pm"],
        ["policy", "docs"],
        ["policy", "bundle"],
    ],
)
def test_an_empty_output_path_is_refused(args: list[str]) -> None:
    """``-o ""`` wrote to standard output, as if no -o were given."""
    command = " ".join(args[:2]) if args[0] == "policy" else args[0]
    assert usage_error([*args, "-o", ""]) == (
        "pyagent: error: Invalid value for '-o' / '--output': must not be empty "
        f"(see pyagent {command} --help)\n"
    )


def test_a_bundle_path_under_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "bundle.tar.gz"
    assert usage_error(["policy", "bundle", str(REPO / "policies"), "-o", str(out)]) == (
        f"pyagent: error: -o {out}: cannot make its directory {tmp_path / 'file'}: File exists\n"
    )


def test_a_token_name_too_long_is_not_said_whole(tmp_path: Path) -> None:
    told = usage_error(
        ["server", "token", "add", "a" * 100_000, "--role", "reader", "--db", f"sqlite:///{tmp_path}/s.db"]
    )
    assert told == (
        f"pyagent: error: token name '{'a' * 78}…: use 1-200 letters, digits, '.', '_', '@' or '-', starting "
        "with a letter or digit\n"
    )


def test_a_max_policy_age_without_the_fallback_it_bounds_is_refused() -> None:
    """It was ignored: a user who meant to bound the fallback's policy age had no fallback at all."""
    assert usage_error(["check", CLEAN, "--at", AT, "--max-policy-age", "5"]) == (
        "pyagent: error: --max-policy-age bounds the bundle --fallback-embedded decides with: give both, "
        "or neither\n"
    )


def test_a_leap_second_is_told_as_one() -> None:
    """RFC 3339 allows :60; it was called "not an RFC 3339 timestamp"."""
    assert usage_error(["check", CLEAN, "--at", "2016-12-31T23:59:60Z"]) == (
        "pyagent: error: --at: '2016-12-31T23:59:60Z': a leap second; RFC 3339 allows it, but OPA's "
        "time.parse_rfc3339_ns refuses it (write :59)\n"
    )


@pytest.mark.parametrize(
    ("args", "parameter", "command"),
    [
        (["check", ""], "'[REPORT]'", "check"),
        (["validate", CLEAN, ""], "'REPORT...'", "validate"),
        (["fleet", CLEAN, ""], "'INVENTORY...'", "fleet run"),
        (["impact", "--baseline", "", "--candidate", "policies", CLEAN], "'--baseline'", "impact"),
        (["check", CLEAN, "--at", AT, "--data", ""], "'--data'", "check"),
        (["check", CLEAN, "--at", AT, "--policy", ""], "'--policy'", "check"),
        (["collect", "--source", "android-pm", "--from", ""], "'--from'", "collect"),
        (["policy", "docs", ""], "'[DIR]...'", "policy docs"),
        (["policy", "lint", "policies", ""], "'[DIR]...'", "policy lint"),
        (["agent", "status", "--spool", ""], "'--spool'", "agent status"),
    ],
)
def test_an_empty_path_is_refused_naming_it(args: list[str], parameter: str, command: str) -> None:
    """ "" is the working directory to the file system: ``check ""`` said ": report is a directory",
    ``collect --from ""`` read nothing and asked for device facts, and ``policy docs ""`` read every
    folder under the working directory, a virtual environment's included."""
    assert usage_error(args) == (
        f"pyagent: error: Invalid value for {parameter}: must not be empty (see pyagent {command} --help)\n"
    )
