"""`pyagent fleet`, `fleet generate` and `impact` through the real CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.fleet.runs import AT, EXAMPLES, REPO, planted_candidate, run
from tests.helpers.opa_server import free_port


@pytest.fixture
def examples_jsonl(tmp_path: Path) -> Path:
    lines = [json.dumps(json.loads(p.read_text())) for p in sorted(EXAMPLES.glob("*.json"))]
    path = tmp_path / "fleet.jsonl"
    path.write_text(
        "\n".join([*lines, '{"schema_version": 1, "device": {"id": "broken"}}', "not json"]) + "\n"
    )
    return path


def test_fleet_json_summary_and_devices(policy_bundle: Path, examples_jsonl: Path) -> None:
    result = run(["fleet", str(examples_jsonl), "--at", AT, "--format", "json", "--jobs", "1"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)

    def counts(devices: int, compliant: int, non_compliant: int, invalid: int = 0) -> dict[str, int]:
        return {"devices": devices, "compliant": compliant, "non_compliant": non_compliant,
                "invalid": invalid, "undecided": 0}  # fmt: skip

    # the eight examples by domain.md's scopes (eu-parliament: no ban; us-federal: government-owned
    # devices only), and two that are no reports
    assert document["summary"] == {
        **counts(10, 3, 5, 2),
        "by_organization": {
            "(none)": counts(2, 0, 0, 2), "eeas": counts(1, 0, 1), "eu-commission": counts(2, 1, 1),
            "eu-council": counts(1, 0, 1), "eu-parliament": counts(1, 1, 0), "india": counts(1, 0, 1),
            "us-federal": counts(2, 1, 1),
        },
        "by_ban": {"tiktok": {"devices": 5, "violations": 5, "warnings": 0, "exempted": 0, "apps": {
            "BytedancePte.Ltd.TikTok_6yccndn6064se": 1, "com.ss.iphone.ugc.Aweme": 1,
            "com.zhiliaoapp.musically": 2, "com.zhiliaoapp.musically.go": 1,
        }}},
        "by_platform": {
            "(none)": counts(2, 0, 0, 2), "android": counts(5, 2, 3), "ios": counts(2, 1, 1),
            "windows": counts(1, 0, 1),
        },
    }  # fmt: skip
    devices = document["devices"]
    assert len(devices) == 10
    for device in devices:
        assert {"device_id", "organization", "allow", "violations", "warnings", "exempted", "errors"} <= set(
            device
        )
    broken = devices[8]
    assert (broken["device_id"], broken["allow"], broken["source"]) == (
        "broken",
        False,
        f"{examples_jsonl}:9",
    )
    assert {e["code"] for e in broken["errors"]} == {"invalid_report"}
    assert [e["path"] for e in broken["errors"]] == [
        "$.apps",
        "$.collected_at",
        "$.device.mdm",
        "$.device.ownership",
        "$.device.platform",
    ]
    garbage = devices[9]
    assert garbage["device_id"] is None
    assert garbage["errors"] == [
        {
            "code": "invalid_report",
            "message": f"{examples_jsonl}:10: invalid JSON at line 1, column 1: Expecting value",
        }
    ]


def test_fleet_same_answer_with_two_workers(policy_bundle: Path, examples_jsonl: Path) -> None:
    one = json.loads(
        run(["fleet", str(examples_jsonl), "--at", AT, "--format", "json", "--jobs", "1"]).stdout
    )
    two = json.loads(
        run(["fleet", str(examples_jsonl), "--at", AT, "--format", "json", "--jobs", "2"]).stdout
    )
    assert one == two


def test_fleet_all_compliant_exits_0(policy_bundle: Path, tmp_path: Path) -> None:
    directory = tmp_path / "reports"
    directory.mkdir()
    for name in ("eu-commission-corporate-clean.json", "us-federal-personal-tiktok.json"):
        shutil.copy(EXAMPLES / name, directory / name)
    result = run(["fleet", str(directory), "--at", AT, "--jobs", "1"])
    assert result.exit_code == 0
    assert result.stderr == (
        "2 devices: 2 compliant, 0 non-compliant, 0 invalid\n"
        "  eu-commission: 0 of 1 non-compliant\n  us-federal: 0 of 1 non-compliant\n"
    )


def test_fleet_from_stdin_with_default_org(policy_bundle: Path) -> None:
    report = json.loads((EXAMPLES / "india-personal-lite.json").read_text())
    del report["device"]["organization"]
    result = run(
        ["fleet", "-", "--org", "india", "--at", AT, "--format", "json", "--jobs", "1"],
        stdin=json.dumps(report) + "\n",
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["devices"][0]["organization"] == "india"


def test_fleet_empty_inventory_is_a_usage_error(policy_bundle: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = run(["fleet", str(empty), "--at", AT, "--jobs", "1"])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: no reports found in the inventories given ({empty})\n",
    )


def test_fleet_missing_inventory_is_a_usage_error(tmp_path: Path) -> None:
    result = run(["fleet", str(tmp_path / "nope.jsonl"), "--at", AT])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {tmp_path / 'nope.jsonl'}: no such inventory "
        "(a JSONL file, a directory, a named pipe or -)\n",
    )


@pytest.mark.parametrize("with_invalid", [False, True])
def test_fleet_without_any_decision_exits_3(examples_jsonl: Path, with_invalid: bool) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    clean = examples_jsonl.parent / "clean.jsonl"
    lines = examples_jsonl.read_text().splitlines()
    clean.write_text("\n".join(lines if with_invalid else lines[:8]) + "\n")
    result = run(
        [
            "fleet",
            str(clean),
            "--at",
            AT,
            "--engine",
            "opa",
            "--opa-url",
            url,
            "--format",
            "json",
            "--jobs",
            "1",
        ]
    )
    assert result.exit_code == 3
    summary = json.loads(result.stdout)["summary"]
    invalid = 2 if with_invalid else 0
    assert (summary["devices"], summary["undecided"], summary["invalid"], summary["compliant"]) == (
        8 + invalid,
        8,
        invalid,
        0,
    )
    by_org = summary["by_organization"]
    assert sum(counts["undecided"] for counts in by_org.values()) == 8
    assert sum(counts["invalid"] for counts in by_org.values()) == invalid


def test_generate_is_reproducible(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    for path, seed in ((a, "7"), (b, "7"), (c, "8")):
        assert run(["fleet", "generate", "--devices", "300", "--seed", seed, "-o", str(path)]).exit_code == 0
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]
    reports = [json.loads(line) for line in a.read_text().splitlines()]
    assert len(reports) == 300
    orgs = {r["device"]["organization"] for r in reports}
    assert orgs == {"eu-commission", "eu-council", "eeas", "eu-parliament", "us-federal", "india"}
    assert {r["device"]["platform"] for r in reports} == {"android", "ios", "windows", "macos"}
    assert any(a["id"] == "com.zhiliaoapp.musically" for r in reports for a in r["apps"])


def test_impact_finds_exactly_the_planted_flips(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.jsonl"
    assert run(["fleet", "generate", "--devices", "1500", "--seed", "11", "-o", str(fleet)]).exit_code == 0
    candidate = planted_candidate(tmp_path)
    capcut = {"com.lemon.lvoverseas", "ByteDance.CapCut"}
    organization_of = {
        r["device"]["id"]: r["device"]["organization"]
        for r in map(json.loads, fleet.read_text().splitlines())
        if r["device"]["organization"] in ("eu-commission", "eeas")
        and r["device"]["ownership"] == "corporate"
        and capcut & {a["id"] for a in r["apps"]}
    }
    expected = set(organization_of)
    assert expected
    per_org = Counter(organization_of.values())
    summary = {"devices": 1500, "flipped_to_allow": 0, "invalid": 0, "undecided": 0,
               "candidate_errors": 0, "baseline_errors": 0, "exemptions_changed": 0}  # fmt: skip
    before = run(
        [
            "impact",
            "--baseline",
            str(REPO / "policies"),
            "--candidate",
            str(candidate),
            str(fleet),
            "--at",
            "2023-03-19T23:59:59Z",
            "--format",
            "json",
            "--jobs",
            "1",
        ]
    )
    assert before.exit_code == 0  # not in force yet: only warnings change
    assert json.loads(before.stdout)["summary"] == {
        **summary, "flipped_to_deny": 0, "changed": 0, "warnings_changed": len(expected),
        "by_organization": {}, "by_ban": {},
    }  # fmt: skip
    after = run(
        [
            "impact",
            "--baseline",
            str(REPO / "policies"),
            "--candidate",
            str(candidate),
            str(fleet),
            "--at",
            "2023-03-20T00:00:00Z",
            "--format",
            "json",
            "--jobs",
            "2",
        ]
    )
    assert after.exit_code == 1
    document = json.loads(after.stdout)
    assert {c["device_id"] for c in document["changes"]} == expected
    for change in document["changes"]:
        assert [v["rule"] for v in change["violations_added"]] == ["eu-commission/capcut"]
        assert change["violations_removed"] == []
        assert change["after"]["allow"] is False
    clean = {"allow": True, "violations": [], "warnings": [], "errors": []}
    assert [c["before"] for c in document["changes"]] == [clean] * len(expected)  # each flips
    assert document["summary"] == {
        **summary, "flipped_to_deny": len(expected), "changed": len(expected), "warnings_changed": 0,
        "by_organization": {o: {"changed": n, "flipped_to_deny": n} for o, n in sorted(per_org.items())},
        "by_ban": {"capcut": {"violations_added": len(expected)}},
    }  # fmt: skip


def test_impact_with_a_policy_that_does_not_compile_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(REPO / "policies", broken)
    (broken / "rego" / "pyagent" / "decision" / "decision.rego").write_text(
        "package pyagent.decision\nallow :=\n"
    )
    fleet = tmp_path / "f.jsonl"
    fleet.write_text((EXAMPLES / "india-personal-lite.json").read_text().replace("\n", "") + "\n")
    result = run(["impact", "--baseline", str(REPO / "policies"), "--candidate", str(broken), str(fleet)])
    assert (result.exit_code, result.stdout) == (2, "")
    decision = broken / "rego" / "pyagent" / "decision" / "decision.rego"
    assert result.stderr.startswith(f"pyagent: error: --candidate: {broken}: the policy does not compile: ")
    assert f"{decision}:3: rego_parse_error: unexpected eof token" in result.stderr  # opa's own words
    assert len(result.stderr.splitlines()) == 1


def test_impact_refuses_a_candidate_whose_data_policy_bundle_would_refuse(tmp_path: Path) -> None:
    """A second `tiktok:` in the bans: opa's YAML reading keeps the last (no apps), so the preview
    showed flips to allow for a policy that can never be built or published."""
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", candidate)
    bans = candidate / "data" / "pyagent" / "bans" / "data.yaml"
    lines = bans.read_text().count("\n")
    bans.write_text(bans.read_text() + "tiktok:\n  title: TikTok\n  reason: none\n  apps: {}\n")
    fleet = tmp_path / "f.jsonl"
    fleet.write_text((EXAMPLES / "india-personal-lite.json").read_text().replace("\n", "") + "\n")
    result = run(["impact", "--baseline", str(REPO / "policies"), "--candidate", str(candidate), str(fleet)])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"pyagent: error: --candidate: {bans}:{lines + 1}: data.pyagent.bans.tiktok: duplicate key (first at "
        "line 3); the second would replace the first\n"
    )
