"""`pyagent check --data`: policy data overlays (exemptions, conflicts, bad files), through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers.cli import invoke as run
from tests.helpers.domain import CONTRACT_EXEMPTION
from tests.helpers.opa_server import RunningOpa, run_opa_server
from tests.helpers.policy_data import shipped_revision

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "reports"
AT = "2023-03-16T09:30:00Z"


def test_exemption_overlay_waives_the_violation(policy_bundle: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "exemptions.json"
    overlay.write_text(json.dumps({"pyagent": {"exemptions": {"EX-2023-001": CONTRACT_EXEMPTION}}}))
    result = run(
        [
            "check",
            str(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"),
            "--at",
            AT,
            "--data",
            str(overlay),
            "--format",
            "json",
        ]
    )
    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["violations"] == []
    assert [e["exemption"]["id"] for e in decision["exempted"]] == ["EX-2023-001"]
    assert decision["policy_revision"].startswith(shipped_revision() + "+data.")
    expired = run(
        [
            "check",
            str(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"),
            "--at",
            "2023-06-30T00:00:00Z",
            "--data",
            str(overlay),
            "--format",
            "json",
        ]
    )
    assert expired.exit_code == 1
    assert json.loads(expired.stdout)["violations"][0]["expired_exemptions"] == ["EX-2023-001"]


def test_an_exemption_without_an_approver_gives_a_decision_of_the_decision_schema(
    policy_bundle: Path, tmp_path: Path
) -> None:
    from jsonschema import Draft202012Validator

    exemption = {"device_id": "fr-brussels-0042", "organization": "eu-commission", "ban": "tiktok",
                 "until": "2023-06-30T00:00:00Z", "reason": "official communications account"}  # fmt: skip
    overlay = tmp_path / "exemptions.json"
    overlay.write_text(json.dumps({"pyagent": {"exemptions": {"EX-7": exemption}}}))
    report = str(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json")
    result = run(["check", report, "--at", AT, "--data", str(overlay), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)
    assert [e["exemption"] for e in decision["exempted"]] == [
        {"id": "EX-7", "reason": "official communications account", "until": "2023-06-30T00:00:00Z",
         "approved_by": None}
    ]  # fmt: skip
    schema = json.loads((REPO / "schemas" / "decision.schema.json").read_text())
    assert [e.message for e in Draft202012Validator(schema).iter_errors(decision)] == []


def test_data_overlay_conflict_exits_2_naming_the_path(policy_bundle: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "conflict.json"
    overlay.write_text(
        json.dumps(
            {"pyagent": {"organizations": {"eu-commission": {"rules": {"tiktok": {"enforcement": "warn"}}}}}}
        )
    )
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--data", str(overlay)])
    assert result.exit_code == 2
    tail = "an overlay adds to the data, it does not change it (edit the data, or build a bundle from it)"
    assert result.stderr == (
        f"pyagent: error: {overlay}:1: merge conflict at data.pyagent.organizations.eu-commission.rules"
        f".tiktok.enforcement: already set to another value by the policy data; {tail}\n"
    )
    capcut = {"ban": "capcut", "scopes": ["corporate"], "effective_from": "2023-04-01T00:00:00Z"}
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(
        json.dumps({"pyagent": {"organizations": {"eu-council": {"rules": {"capcut": capcut}}}}})
    )
    later = {**capcut, "effective_from": "2023-05-01T00:00:00Z"}
    second.write_text(
        json.dumps({"pyagent": {"organizations": {"eu-council": {"rules": {"capcut": later}}}}}, indent=2)
    )
    both = ["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--data", str(first)]
    result = run([*both, "--data", str(second)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"pyagent: error: {second}:11: merge conflict at data.pyagent.organizations.eu-council.rules.capcut"
        f".effective_from: already set to another value by {first}; {tail}\n"
    )


def test_exemptions_listed_rather_than_keyed_by_id_are_told_as_such(
    policy_bundle: Path, tmp_path: Path
) -> None:
    overlay = tmp_path / "listed.json"
    exemption = {"device_id": "x", "organization": "eu-commission", "ban": "tiktok", "reason": "r",
                 "until": "2023-06-30T00:00:00Z"}  # fmt: skip
    overlay.write_text(json.dumps({"pyagent": {"exemptions": [exemption]}}))
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--data", str(overlay)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {overlay}:1: merge conflict at data.pyagent.exemptions: the policy data has an "
        "object there and this overlay a list; an overlay adds to an object with an object (bans, "
        "organisations, rules and exemptions are keyed by their ids)\n",
    )


def test_data_overlay_outside_pyagent_is_refused(policy_bundle: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "flat.json"
    overlay.write_text(json.dumps({"exemptions": {}}))
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--data", str(overlay)])
    assert result.exit_code == 2
    assert "top-level key 'exemptions' is not policy data" in result.stderr


def test_an_opa_server_whose_data_is_in_error_decides_nothing_and_blames_no_report(
    opa_bin: str, tmp_path: Path
) -> None:
    """Its policy reports the mistake (a malformed exemption: never a waiver) and the device is not to
    blame: exit 3 naming the server's data, for check, and every device undecided, for fleet."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    bad = {"EX-1": {"device_id": "d", "organization": "eu-commission", "ban": "tiktok", "reason": "r",
                    "until": "2023-13-01T00:00:00Z"}}  # fmt: skip
    (policies / "data" / "pyagent" / "exemptions" / "data.yaml").write_text(json.dumps(bad))
    report = str(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json")
    problem = "exemption EX-1 needs `until` as an RFC 3339 timestamp"
    india = str(EXAMPLES / "india-personal-lite.json")
    with run_opa_server(opa_bin, tmp_path, paths=[policies / "rego", policies / "data"]) as server:
        engine = ["--engine", "opa", "--opa-url", server.url, "--at", AT, "--format", "json"]
        checked = run(["check", report, *engine])
        fleet = run(["fleet", report, india, *engine])
    assert (checked.exit_code, checked.stdout) == (3, "")
    assert checked.stderr == f"pyagent: error: the OPA server's policy has data in error: {problem}\n"
    summary = json.loads(fleet.stdout)["summary"]
    assert (fleet.exit_code, summary["devices"], summary["undecided"], summary["invalid"]) == (3, 2, 2, 0)


def test_an_opa_server_whose_organisations_inherit_wrongly_decides_nothing_and_blames_no_report(
    opa_bin: str, tmp_path: Path
) -> None:
    """An inheritance cycle (the Commission made to adopt the EEAS's rules, which adopt the
    Commission's) and an unknown parent: the server's data, not the device's report (they were exit 2,
    the report named as at fault, and counted invalid by fleet)."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    organizations = policies / "data" / "pyagent" / "organizations" / "data.yaml"
    text = organizations.read_text(encoding="utf-8")
    for org, parent in (("eu-commission", "eeas"), ("india", "ghost")):
        head = f"{org}:\n  title: "
        start = text.index(head)
        at = text.index("  inherits: []\n", start)
        text = text[:at] + f"  inherits: [{parent}]\n" + text[at + len("  inherits: []\n") :]
    organizations.write_text(text, encoding="utf-8")
    commission = str(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json")
    india = str(EXAMPLES / "india-personal-lite.json")
    with run_opa_server(opa_bin, tmp_path, paths=[policies / "rego", policies / "data"]) as server:
        engine = ["--engine", "opa", "--opa-url", server.url, "--at", AT, "--format", "json"]
        cycle, orphan = run(["check", commission, *engine]), run(["check", india, *engine])
        fleet = run(["fleet", commission, india, *engine])
    assert (cycle.exit_code, cycle.stdout, cycle.stderr) == (
        3,
        "",
        "pyagent: error: the OPA server's policy has data in error: organisations inherit from each "
        "other in a cycle: eeas, eu-commission\n",
    )
    assert (orphan.exit_code, orphan.stdout, orphan.stderr) == (
        3,
        "",
        'pyagent: error: the OPA server\'s policy has data in error: organisation "ghost" is inherited '
        "but not defined\n",
    )
    summary = json.loads(fleet.stdout)["summary"]
    assert (fleet.exit_code, summary["devices"], summary["undecided"], summary["invalid"]) == (3, 2, 2, 0)


def test_data_overlay_with_opa_engine_is_refused(opa_server: RunningOpa, tmp_path: Path) -> None:
    overlay = tmp_path / "x.json"
    overlay.write_text(json.dumps({"pyagent": {"exemptions": {}}}))
    result = run(
        [
            "check",
            str(EXAMPLES / "india-personal-lite.json"),
            "--at",
            AT,
            "--data",
            str(overlay),
            "--engine",
            "opa",
            "--opa-url",
            opa_server.url,
        ]
    )
    assert result.exit_code == 2
    assert "--data works with the embedded engine only" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"pyagent": {"exemptions": {}, "exemptions": {}}}',
            "overlay.json:1: data.pyagent.exemptions: duplicate key",
        ),
        ('{"pyagent": ', ":1:13: data file is not valid JSON"),
        ("", "data file is empty"),
        ('["pyagent"]', "data file must be a JSON object"),
        (
            '{"pyagent": {"ban_keys": {}}}',
            "overlay.json:1: data.pyagent.ban_keys: unknown field; allowed fields: ",
        ),
    ],
    ids=["duplicate-key", "truncated", "empty", "array", "ban-keys"],
)
def test_bad_data_overlay_exits_2(policy_bundle: Path, tmp_path: Path, content: str, message: str) -> None:
    overlay = tmp_path / "overlay.json"
    overlay.write_text(content)
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--data", str(overlay)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_data_overlay_exits_2(policy_bundle: Path, tmp_path: Path) -> None:
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--data", str(tmp_path / "nope.json")])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {tmp_path / 'nope.json'}: data file not found\n",
    )


def test_a_lone_surrogate_in_an_overlay_value_is_named_by_its_line_and_path(
    policy_bundle: Path, tmp_path: Path
) -> None:
    """It failed when the merged data was encoded: "policy data is not JSON: 'utf-8' codec can't encode
    character '\\ud800' in position 883", naming neither the file nor the place."""
    exemption = {**CONTRACT_EXEMPTION, "reason": "official account \ud800"}
    overlay = tmp_path / "overlay.json"
    overlay.write_text(json.dumps({"pyagent": {"exemptions": {"EX-2023-001": exemption}}}, indent=2))
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--data", str(overlay)])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"pyagent: error: {overlay}:9: data.pyagent.exemptions.EX-2023-001.reason: contains an unpaired "
        "UTF-16 surrogate escape (\\ud800-\\udfff), which is not Unicode text\n",
    )


@pytest.mark.parametrize(("content", "kind"), [("null", "null"), ("[1]", "a list"), ('"x"', "a string")])
def test_an_overlay_that_is_no_object_says_what_it_is_in_json_words(
    policy_bundle: Path, tmp_path: Path, content: str, kind: str
) -> None:
    """It said Python's names: "got NoneType", "got list"."""
    overlay = tmp_path / "overlay.json"
    overlay.write_text(content)
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--data", str(overlay)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {overlay}: data file must be a JSON object, got {kind}\n",
    )
