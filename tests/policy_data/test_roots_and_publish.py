"""The one-root habit (`opa run -s policies`) reported as such; the schema's enums are the policy's;
the server's publish refuses a bundle whose data has a mistake."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pyagent.policy import datacheck
from pyagent.report.schemas import load_schema
from tests.policy_data.conftest import KNOWN_ORGS, REPO, run

REPORT = REPO / "examples" / "reports" / "india-personal-lite.json"
HINT = (
    "load the policy as two roots, its rego/ and data/ folders: `opa run -s policies/rego policies/data`, "
    "`opa test policies/rego policies/data`"
)


def opa_eval(opa_bin: str, query: str, *args: str) -> object:
    done = subprocess.run(
        [opa_bin, "eval", "--format", "json", *args, query], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)["result"][0]["expressions"][0]["value"]


def test_one_root_decision_is_one_misconfigured_error(opa_bin: str, tmp_path: Path) -> None:
    """`opa run -s policies` loads the data at data.data.pyagent: every device, clean ones too, was an
    "unknown organisation"; now the decision names the layout and how to fix it."""
    payload = {"at": "2023-03-16T09:30:00Z", "report": json.loads(REPORT.read_text())}
    (tmp_path / "input.json").write_text(json.dumps(payload))
    decision = opa_eval(
        opa_bin, "data.pyagent.decision", "-d", str(REPO / "policies"), "-i", str(tmp_path / "input.json")
    )
    assert isinstance(decision, dict)
    assert decision["allow"] is False
    assert decision["errors"] == [
        {
            "code": "misconfigured_data_root",
            "message": "policy data found at data.data.pyagent, not data.pyagent "
            f"(the policy folder was loaded as one root): {HINT}",
        }
    ]


def test_one_root_opa_test_fails_with_the_hint(opa_bin: str) -> None:
    done = subprocess.run([opa_bin, "test", str(REPO / "policies")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "test_policy_data_is_at_data_pyagent_not_data_data_pyagent: FAIL" in done.stdout
    assert f"\n  {HINT}\n" in done.stdout


def test_pyagent_reads_a_policy_root_as_its_two_roots_and_flags_data_under_data(tmp_path: Path) -> None:
    assert run(["policy", "lint", str(REPO / "policies")]).stderr == "lint: clean\n"
    data_only = tmp_path / "policy"
    (data_only / "data" / "pyagent").mkdir(parents=True)
    (data_only / "data" / "pyagent" / "data.yaml").write_text('revision: "r"\n')
    assert datacheck.problems_in_dirs([str(data_only)]) == [
        f"{data_only / 'data' / 'pyagent' / 'data.yaml'}:1: data.data.pyagent: policy data found at "
        "data.data.pyagent, not data.pyagent: the folder holding data/ was loaded as one root; load its "
        "rego/ and data/ folders as two roots (e.g. `opa test policies/rego policies/data`)"
    ]


def test_the_schema_enums_are_the_ones_the_policy_reads(opa_bin: str) -> None:
    rule = load_schema(datacheck.SCHEMA)["$defs"]["rule"]["properties"]
    dirs = ["-d", str(REPO / "policies" / "rego")]
    assert sorted(rule["scopes"]["items"]["enum"]) == opa_eval(
        opa_bin, "sort(data.pyagent.lib.scopes.known)", *dirs
    )
    assert sorted(rule["enforcement"]["enum"]) == opa_eval(
        opa_bin, "sort(data.pyagent.lib.breaches.enforcements)", *dirs
    )


def test_publish_refuses_a_bundle_whose_data_has_a_mistake(
    opa_bin: str, policy_copy: Path, tmp_path: Path
) -> None:
    """A bundle built around pyagent's checks (plain `opa build`) is still refused by the server."""
    orgs = policy_copy / "data" / "pyagent" / "organizations" / "data.yaml"
    orgs.write_text(orgs.read_text().replace("inherits: [eu-commission]", "inherits: [no-such-org]"))
    bundle = tmp_path / "bundle.tar.gz"
    rego, data = policy_copy / "rego", policy_copy / "data"
    subprocess.run(
        [
            opa_bin,
            "build",
            "-t",
            "rego",
            "--ignore",
            "*_test.rego",
            "--revision",
            "r1",
            "-o",
            str(bundle),
            str(rego),
            str(data),
        ],
        check=True,
        capture_output=True,
    )
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    result = run(["server", "publish", "--name", "pyagent", "--state-dir", str(state), str(bundle)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {bundle}:data.json:1: data.pyagent.organizations.eeas.inherits[0]: "
        f"inherits unknown organisation 'no-such-org'; known: {KNOWN_ORGS}\n",
    )


def test_an_opa_server_loaded_as_one_root_gives_no_decision(opa_bin: str, tmp_path: Path) -> None:
    """The layout is the server's, not the user's input: exit 3 (no decision could be had), not 2
    naming the report, and the message says how the OPA must be loaded."""
    from tests.helpers.opa_server import run_opa_server

    with run_opa_server(opa_bin, tmp_path, paths=[REPO / "policies"]) as server:
        done = run(["check", str(REPORT), "--engine", "opa", "--opa-url", server.url, "--opa-retries", "0"])
    assert (done.exit_code, done.stdout) == (3, "")
    assert done.stderr == (
        "pyagent: error: the OPA server's policy is loaded wrongly: policy data found at data.data.pyagent, "
        f"not data.pyagent (the policy folder was loaded as one root): {HINT}\n"
    )


def test_an_opa_server_without_the_policy_data_gives_no_decision(opa_bin: str, tmp_path: Path) -> None:
    """`opa run -s policies/rego`: every device was of an unknown organisation "known: " (none), exit 2
    blaming the report; it is the server's problem: exit 3, saying how to load the policy."""
    from tests.helpers.opa_server import run_opa_server

    with run_opa_server(opa_bin, tmp_path, paths=[REPO / "policies" / "rego"]) as server:
        done = run(["check", str(REPORT), "--engine", "opa", "--opa-url", server.url, "--opa-retries", "0"])
    assert (done.exit_code, done.stdout) == (3, "")
    assert done.stderr == (
        "pyagent: error: the OPA server's policy is loaded wrongly: no policy data at data.pyagent (only the "
        f"Rego was loaded): {HINT}\n"
    )


@pytest.mark.parametrize("loaded", [["policies"], ["policies/rego"]], ids=["one-root", "rego-only"])
def test_fleet_against_an_opa_loaded_wrongly_decides_nothing_and_exits_3(
    opa_bin: str, tmp_path: Path, loaded: list[str]
) -> None:
    """No report is invalid: each is undecided, with the server's reason, and the run exits 3."""
    from tests.helpers.opa_server import run_opa_server

    examples = REPO / "examples" / "reports"
    with run_opa_server(opa_bin, tmp_path, paths=[REPO / path for path in loaded]) as server:
        done = run(["fleet", str(examples), "--engine", "opa", "--opa-url", server.url, "--format", "json"])
    assert done.exit_code == 3, done.stderr
    document = json.loads(done.stdout)
    count = len(list(examples.glob("*.json")))
    summary = document["summary"]
    assert (summary["devices"], summary["undecided"], summary["invalid"]) == (count, count, 0)
    reasons = {error["message"] for device in document["devices"] for error in device["errors"]}
    assert len(reasons) == 1 and next(iter(reasons)).startswith("the OPA server's policy is loaded wrongly: ")
