"""Bad input is exit 2 with one line naming what and where, before anything is decided (issue 16):
a named bundle that is not there, an organisation the policy does not define, lower-case RFC 3339."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers.cli import invoke as run

REPO = Path(__file__).resolve().parents[2]
CLEAN_REPORT = REPO / "examples" / "reports" / "eu-commission-corporate-clean.json"
AT = "2023-03-16T09:30:00Z"
KNOWN_ORGS = "eeas, eu-commission, eu-council, eu-parliament, india, us-federal"


def no_bundle_line(named: str, path: Path) -> str:
    return f"pyagent: error: {named} {path}: no such file (the compiled policy bundle to decide with)\n"


@pytest.fixture
def absent_bundle(tmp_path: Path) -> Path:
    return tmp_path / "never-built" / "bundle.tar.gz"


@pytest.fixture
def one_device_inventory(tmp_path: Path) -> Path:
    """A JSONL inventory of the clean corporate device of eu-commission."""
    path = tmp_path / "one-device.jsonl"
    path.write_text(json.dumps(json.loads(CLEAN_REPORT.read_text())) + "\n")
    return path


def test_check_with_a_named_bundle_that_is_not_there_exits_2(absent_bundle: Path) -> None:
    result = run(
        ["check", str(CLEAN_REPORT), "--at", AT, "--engine", "embedded", "--bundle", str(absent_bundle)]
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == no_bundle_line("--bundle", absent_bundle)


def test_check_with_pyagent_bundle_naming_no_file_exits_2_naming_the_variable(absent_bundle: Path) -> None:
    result = run(["check", str(CLEAN_REPORT), "--at", AT], env={"PYAGENT_BUNDLE": str(absent_bundle)})
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == no_bundle_line("PYAGENT_BUNDLE", absent_bundle)


def test_a_missing_bundle_is_not_an_error_when_an_opa_server_decides(absent_bundle: Path) -> None:
    # Nothing listens on port 9 of loopback: the engine asked is the OPA server, never the bundle.
    args = [
        "--engine",
        "opa",
        "--opa-url",
        "http://127.0.0.1:9",
        "--opa-retries",
        "0",
        "--bundle",
        str(absent_bundle),
    ]
    result = run(["check", str(CLEAN_REPORT), "--at", AT, *args])
    assert result.exit_code == 3
    assert "no such file" not in result.stderr


def test_fleet_with_a_named_bundle_that_is_not_there_exits_2(absent_bundle: Path) -> None:
    result = run(["fleet", str(CLEAN_REPORT), "--at", AT, "--bundle", str(absent_bundle)])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == no_bundle_line("--bundle", absent_bundle)


def test_fleet_with_an_unknown_org_exits_2_before_deciding_any_device(engine_args: list[str]) -> None:
    result = run(
        ["fleet", str(CLEAN_REPORT), "--org", "eu-comission", "--at", AT, "--format", "json", *engine_args]
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f'pyagent: error: --org: unknown organisation "eu-comission"; known: {KNOWN_ORGS}; '
        "give one of the organisations the policy data defines\n"
    )


def test_fleet_with_a_known_org_decides_as_that_org(policy_bundle: Path, one_device_inventory: Path) -> None:
    result = run(["fleet", str(one_device_inventory), "--org", "eu-council", "--at", AT, "--format", "json"])
    assert result.exit_code == 0
    devices = json.loads(result.stdout)["devices"]
    assert [(d["organization"], d["allow"]) for d in devices] == [("eu-council", True)]


@pytest.mark.parametrize(
    ("at", "read"),
    [
        ("2023-03-16t09:30:00z", "2023-03-16T09:30:00Z"),
        ("2023-03-16T09:30:00z", "2023-03-16T09:30:00Z"),
        ("2023-03-16t09:30:00+01:00", "2023-03-16T09:30:00+01:00"),
        ("2023-03-16T09:30:00.1234567891234Z", "2023-03-16T09:30:00.123456789Z"),
    ],
)
@pytest.mark.parametrize("command", ["check", "fleet"])
def test_what_rfc_3339_allows_and_opa_refuses_is_decided_as_opa_reads_it(
    policy_bundle: Path, command: str, at: str, read: str
) -> None:
    # RFC 3339 allows a lower-case "t" and "z" and any number of fraction digits; the pinned OPA's
    # time.parse_rfc3339_ns (Go's time.RFC3339) does not, and the policy reads the instant with it:
    # the same instant is sent as OPA reads it (they were refused, exit 2, though the contract says
    # RFC 3339).
    result = run([command, str(CLEAN_REPORT), "--at", at, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["evaluated_at"] == read


def test_a_collected_at_in_lower_case_is_written_as_opa_reads_it(tmp_path: Path) -> None:
    """The report's schema (and an OPA asked directly) takes upper case only: `collect` writes that."""
    capture = tmp_path / "pm.txt"
    capture.write_text("package:com.zhiliaoapp.musically\n")
    facts = ["--device-id", "p1", "--ownership", "corporate", "--mdm-enrolled", "--org", "eu-commission"]
    result = run(["collect", "--source", "android-pm", "--from", str(capture), *facts,
                  "--collected-at", "2023-03-16t09:30:00.0000000001z"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["collected_at"] == "2023-03-16T09:30:00.000000000Z"


def test_the_pinned_opa_refuses_lower_case_t_and_z(opa_bin: str) -> None:
    import subprocess

    def parsed(value: str) -> str:
        query = f'time.parse_rfc3339_ns("{value}")'
        done = subprocess.run(
            [opa_bin, "eval", "--strict-builtin-errors", "--format", "raw", query],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return done.stdout.strip() or done.stderr.splitlines()[0]

    assert parsed("2023-03-15T00:00:00Z") == "1678838400000000000"
    assert parsed("2023-03-15t00:00:00z") == "1 error occurred: " + (
        'time.parse_rfc3339_ns("2023-03-15t00:00:00z"): eval_builtin_error: time.parse_rfc3339_ns: parsing '
        'time "2023-03-15t00:00:00z" as "2006-01-02T15:04:05Z07:00": cannot parse "t00:00:00z" as "T"'
    )


@pytest.fixture
def india_renamed_bharat(tmp_path: Path) -> Path:
    """A candidate policy where the organisation india is called bharat."""
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", candidate)
    orgs = candidate / "data" / "pyagent" / "organizations" / "data.yaml"
    orgs.write_text(orgs.read_text().replace("\nindia:\n", "\nbharat:\n"))
    return candidate


def test_impact_with_an_org_neither_policy_defines_exits_2(
    india_renamed_bharat: Path, one_device_inventory: Path
) -> None:
    args = ["--baseline", str(REPO / "policies"), "--candidate", str(india_renamed_bharat)]
    result = run(["impact", *args, str(one_device_inventory), "--org", "nosuch", "--at", AT])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f'pyagent: error: --org: unknown organisation "nosuch"; known: {KNOWN_ORGS}; '
        "give one of the organisations the policy data defines\n"
    )


def test_impact_with_an_org_only_the_candidate_defines_compares(
    india_renamed_bharat: Path, one_device_inventory: Path
) -> None:
    args = ["--baseline", str(REPO / "policies"), "--candidate", str(india_renamed_bharat)]
    result = run(["impact", *args, str(one_device_inventory), "--org", "bharat", "--at", AT])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "1 device: 1 decision changes, 0 flip to deny, 1 flip to allow, 1 only the candidate decides, "
        "0 with only warnings changed, 0 invalid"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["check", "--format", "xml", "r.json"], "Invalid value for '--format': 'xml' is not one of 'text', "
         "'json', 'junit', 'sarif', 'github', 'table'. (see pyagent check --help)"),
        (["check", "--bogus"], "No such option '--bogus'. Did you mean '--org'? (see pyagent check --help)"),
        (["check", "--org", ""], "Invalid value for '--org': must not be empty (see pyagent check --help)"),
        (["chek"], "No such command 'chek'. Did you mean 'check'? (see pyagent --help)"),
        (["--bogus"], "No such option '--bogus'. Did you mean '--verbose'? (see pyagent --help)"),
        (["server", "token", "add", "ci", "--role", "god"], "Invalid value for '--role': 'god' is not one of "
         "'agent', 'reader', 'admin'. (see pyagent server token add --help)"),
    ],
)  # fmt: skip
def test_a_usage_error_is_one_line_naming_the_option_and_where_to_read_more(
    args: list[str], line: str
) -> None:
    """Click's own usage error is four lines (usage, a hint, a blank, the error); pyagent's errors are one."""
    result = run(args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"pyagent: error: {line}\n")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["check", str(CLEAN_REPORT), "--engine", "opa", "--opa-url", "http://[::1"],
         "--opa-url: 'http://[::1' is not a URL (Invalid IPv6 URL)"),
        (["check", str(CLEAN_REPORT), "--engine", "opa", "--opa-url", "http://127.0.0.1:0"],
         "--opa-url: 'http://127.0.0.1:0' has an invalid port"),
        (["check", str(CLEAN_REPORT), "--engine", "opa", "--opa-url", "https://127.0.0.1:9", "--opa-ca",
          str(CLEAN_REPORT)],
         f"--opa-ca {CLEAN_REPORT}: no PEM CA certificate in it (NO_CERTIFICATE_OR_CRL_FOUND)"),
        (["server", "token", "list", "--db", "postgresql://u:pw@db:abc/fleet"],
         "--db <unparsable URL>: not a database URL (its host or port does not parse); expected "
         "postgresql://HOST[:PORT]/DATABASE or sqlite:///FILE"),
        (["server", "token", "list", "--db", "postgresql://u:pw@[::1/fleet"],
         "--db <unparsable URL>: not a database URL (its host or port does not parse); expected "
         "postgresql://HOST[:PORT]/DATABASE or sqlite:///FILE"),
        (["server", "token", "list", "--db", "postgresql://u:pw@db:99999/fleet"],
         "--db postgresql://***@db:99999/fleet: port 99999 is not between 1 and 65535"),
        (["server", "migrate", "--db", ""],
         "--db: empty; give postgresql://… or sqlite:///FILE, or leave it out for server.db in the "
         "state dir"),
        (["server", "token", "list", "--db", "sqlite://relative.db"],
         "--db sqlite://relative.db: a SQLite database is sqlite:///relative/file.db or "
         "sqlite:////absolute/file.db (or just the file's path)"),
    ],
    ids=["open-ipv6", "port-0", "ca-not-pem", "db-port", "db-open-ipv6", "db-port-range", "db-empty",
         "sqlite-two-slashes"],
)  # fmt: skip
def test_a_malformed_address_or_file_is_a_usage_error_not_an_internal_one(args: list[str], line: str) -> None:
    """Each was "internal error: ValueError/SSLError/ArgumentError ..." with exit 3."""
    result = run(args)
    assert (result.exit_code, result.stderr) == (2, f"pyagent: error: {line}\n")


def test_the_server_guards_its_state_directory_and_database_as_the_agent_does(tmp_path: Path) -> None:
    """It holds every device's inventory: created 0700/0600; a world-writable directory or a planted
    link in place of the database is refused, not written through."""
    fresh = tmp_path / "fresh"
    assert run(["server", "token", "list", "--state-dir", str(fresh)]).exit_code == 0
    assert (fresh.stat().st_mode & 0o777, (fresh / "server.db").stat().st_mode & 0o777) == (0o700, 0o600)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    refused = run(["server", "token", "list", "--state-dir", str(shared)])
    assert (refused.exit_code, refused.stderr) == (
        2, f"pyagent: error: {shared}: the state directory is writable by group or others (mode 0777); "
        f"chmod go-w {shared}\n",
    )  # fmt: skip
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)
    (planted / "server.db").symlink_to(tmp_path / "elsewhere.db")
    linked = run(["server", "token", "list", "--state-dir", str(planted)])
    assert (linked.exit_code, linked.stderr) == (
        2,
        f"pyagent: error: {planted / 'server.db'}: the server database is a symbolic link; "
        "give the real file\n",
    )
    assert not (tmp_path / "elsewhere.db").exists()


@pytest.mark.parametrize("args", [[], ["policy"], ["server"]], ids=["pyagent", "policy", "server"])
def test_a_group_run_without_arguments_shows_its_help(args: list[str]) -> None:
    """Click raises the help as a usage error: it is shown as help, not squeezed into one error line."""
    result = run(args)
    assert result.exit_code == 2 and result.stderr.startswith(
        f"Usage: {' '.join(['pyagent', *args])} [OPTIONS]"
    )
    assert "pyagent: error" not in result.stderr


OPA_ONLY = "is for an OPA server (--engine opa); the embedded engine decides"
NEEDS_KEY = "needs --verification-key (the key that verifies the bundle)"


@pytest.mark.parametrize("command", ["check", "fleet"])
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--engine", "embedded", "--opa-url", "http://127.0.0.1:9"], f"--opa-url {OPA_ONLY}"),
        (["--opa-token", "abc"], f"--opa-token {OPA_ONLY}"),
        (["--opa-ca", str(CLEAN_REPORT)], f"--opa-ca {OPA_ONLY}"),
        (["--fallback-embedded"], f"--fallback-embedded {OPA_ONLY}"),
        (["--verification-alg", "RS256"], f"--verification-alg {NEEDS_KEY}"),
        (["--verification-key-id", "kid1"], f"--verification-key-id {NEEDS_KEY}"),
        (["--bundle-scope", "s1"], f"--bundle-scope {NEEDS_KEY}"),
        (["--bundle-fallback"], f"--bundle-fallback {NEEDS_KEY}"),
    ],
)
def test_a_flag_this_run_would_not_use_is_a_usage_error(command: str, flags: list[str], message: str) -> None:
    """Each was dropped unsaid (exit 0): a token or a CA given for an OPA that no one asks."""
    result = run([command, str(CLEAN_REPORT), "--at", AT, "--format", "json", *flags])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"pyagent: error: {message}\n")


def test_the_same_settings_from_the_environment_are_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set for every run of a shell, they may be meant for other runs."""
    monkeypatch.setenv("PYAGENT_OPA_TOKEN", "abc")
    monkeypatch.setenv("PYAGENT_OPA_URL", "http://127.0.0.1:9")
    result = run(["check", str(CLEAN_REPORT), "--at", AT, "--engine", "embedded"])
    assert result.exit_code == 0, result.stderr
    off = ["--no-fallback-embedded", "--no-bundle-fallback"]  # a feature turned off: nothing dropped
    result = run(["check", str(CLEAN_REPORT), "--at", AT, "--engine", "embedded", *off])
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("flag", ["--opa-url", "--opa-token", "--opa-ca"])
def test_an_empty_opa_flag_is_refused_not_dropped(flag: str) -> None:
    """``--opa-url ""`` decided with the embedded engine, exit 0: an empty environment variable is
    unset (as click reads the environment), an empty flag is a mistake."""
    result = run(["check", str(CLEAN_REPORT), "--at", AT, flag, ""])
    assert (result.exit_code, result.stdout) == (2, "")
    assert (
        result.stderr
        == f"pyagent: error: Invalid value for '{flag}': must not be empty (see pyagent check --help)\n"
    )
