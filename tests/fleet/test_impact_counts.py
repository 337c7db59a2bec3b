"""`pyagent impact` counts what it could not compare, as `fleet` does, and shows changed warnings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import Result

from pyagent.errors import InvalidInputError, and_more
from pyagent.report.load import ReportInvalidError, parse_report
from tests.fleet.runs import EXAMPLES, REPO, planted_candidate, run

BASELINE = str(REPO / "policies")
BEFORE_CAPCUT = "2023-03-19T23:59:59Z"
CAPCUT_IN_FORCE = "2023-03-20T00:00:00Z"


def impact(candidate: str, inventory: Path, at: str, *more: str) -> Result:
    args = ["--baseline", BASELINE, "--candidate", candidate, str(inventory), "--at", at, "--jobs", "1"]
    result: Result = run(["impact", *args, *more])
    return result


def first_problem(line: bytes, source: str) -> str:
    """What the report checker says first about ``line``, as impact quotes it (its wording is not ours)."""
    try:
        parse_report(line, source)
    except ReportInvalidError as err:
        return f"{err.issues[0].message} (at {err.issues[0].path}){and_more(len(err.issues) - 1, 'error')}"
    except InvalidInputError as err:
        return str(err)
    raise AssertionError(f"{line!r} is a valid report")


def test_two_invalid_reports_are_counted_not_called_unchanged(tmp_path: Path) -> None:
    inventory = tmp_path / "devices.jsonl"
    broken, not_json = b'{"schema_version": 1, "device": {"id": "broken"}}', b"not json"
    inventory.write_bytes(broken + b"\n" + not_json + b"\n")
    result = impact(BASELINE, inventory, CAPCUT_IN_FORCE)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "2 devices: 0 decisions change, 0 flip to deny, 0 flip to allow, 0 with only warnings changed, "
        "2 invalid (not compared)",
        f"  {inventory}:1: invalid: {first_problem(broken, f'{inventory}:1')}",
        f"  {inventory}:2: invalid: {first_problem(not_json, f'{inventory}:2')}",
    ]
    as_json = impact(BASELINE, inventory, CAPCUT_IN_FORCE, "--format", "json")
    document = json.loads(as_json.stdout)
    assert as_json.exit_code == 1
    summary = document["summary"]
    assert (summary["devices"], summary["changed"], summary["invalid"], summary["undecided"]) == (2, 0, 2, 0)
    assert [(d["source"], d["device_id"], d["status"]) for d in document["not_compared"]] == [
        (f"{inventory}:1", "broken", "invalid"),
        (f"{inventory}:2", None, "invalid"),
    ]


def capcut_device(tmp_path: Path) -> Path:
    """A corporate eu-commission phone with CapCut: the planted rule's only target."""
    report = json.loads((EXAMPLES / "eu-commission-corporate-clean.json").read_text())
    report["apps"].append({"id": "com.lemon.lvoverseas", "name": "CapCut"})
    inventory = tmp_path / "capcut.jsonl"
    inventory.write_text(json.dumps(report) + "\n")
    return inventory


def test_text_shows_changed_warnings_before_and_after_the_date(tmp_path: Path) -> None:
    inventory, candidate = capcut_device(tmp_path), str(planted_candidate(tmp_path))
    head = "1 device: {}, {} flip to deny, 0 flip to allow, {} with only warnings changed, 0 invalid"
    device = "  be-brussels-berl-0117 (eu-commission)"
    expected = {
        BEFORE_CAPCUT: (0, [head.format("0 decisions change", 0, 1),
                            f"{device}: warnings only; warnings +eu-commission/capcut com.lemon.lvoverseas"]),
        CAPCUT_IN_FORCE: (1, [head.format("1 decision changes", 1, 0),
                              f"{device}: allow->deny; +eu-commission/capcut com.lemon.lvoverseas"]),
    }  # fmt: skip
    for at, (code, lines) in expected.items():
        result = impact(candidate, inventory, at)
        assert (result.exit_code, result.stderr.splitlines()) == (code, lines)


def test_the_text_report_goes_to_the_output_file_with_its_summary_on_stderr(tmp_path: Path) -> None:
    """``-o FILE`` in text: the report written there, as ``check -o`` and ``fleet -o`` write theirs
    (it was dropped, and the file never made)."""
    inventory, candidate, written = (
        capcut_device(tmp_path),
        str(planted_candidate(tmp_path)),
        tmp_path / "impact.txt",
    )
    result = impact(candidate, inventory, CAPCUT_IN_FORCE, "-o", str(written))
    head = (
        "1 device: 1 decision changes, 1 flip to deny, 0 flip to allow, 0 with only warnings changed, "
        "0 invalid"
    )
    assert (result.exit_code, result.stdout, result.stderr.splitlines()) == (1, "", [head])
    assert written.read_text(encoding="utf-8").splitlines() == [
        head,
        "  be-brussels-berl-0117 (eu-commission): allow->deny; +eu-commission/capcut com.lemon.lvoverseas",
    ]


def test_a_dropped_organisation_is_a_change_with_its_reason(tmp_path: Path) -> None:
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", candidate)
    orgs = candidate / "data" / "pyagent" / "organizations" / "data.yaml"
    orgs.write_text(orgs.read_text().replace("\nindia:\n", "\nbharat:\n"))
    inventory = tmp_path / "india.jsonl"
    inventory.write_text(json.dumps(json.loads((EXAMPLES / "india-personal-lite.json").read_text())) + "\n")
    result = impact(str(candidate), inventory, CAPCUT_IN_FORCE)
    assert (result.exit_code, result.stderr.splitlines()) == (
        1,
        [
            "1 device: 1 decision changes, 0 flip to deny, 0 flip to allow, 1 the candidate cannot decide, "
            "0 with only warnings changed, 0 invalid",
            "  in-bengaluru-personal-2210 (india): changed; "
            'error: unknown organisation "india"; known: bharat, eeas, eu-commission, eu-council, '
            "eu-parliament, us-federal",
        ],
    )


def test_a_candidate_that_cannot_decide_is_told_apart_from_removed_violations(tmp_path: Path) -> None:
    """A rule that conflicts with ``allow`` for every device in breach: those devices have no
    candidate decision, which is counted as such, never as violations the candidate removed. The
    same files compiled from another directory first do not lend it their paths."""
    candidate, elsewhere = tmp_path / "candidate", tmp_path / "elsewhere"
    shutil.copytree(REPO / "policies", candidate)
    conflict = candidate / "rego" / "pyagent" / "decision" / "conflict.rego"
    conflict.write_text("package pyagent.decision\n\nallow := true\n")
    shutil.copytree(candidate, elsewhere)
    inventory = tmp_path / "devices.jsonl"
    reports = ("eu-commission-corporate-clean.json", "eu-commission-personal-enrolled-tiktok.json")
    inventory.write_text("".join(json.dumps(json.loads((EXAMPLES / r).read_text())) + "\n" for r in reports))
    assert f"{elsewhere}/rego" in impact(str(elsewhere), inventory, CAPCUT_IN_FORCE).stderr
    decision = candidate / "rego" / "pyagent" / "decision" / "decision.rego"
    line = next(
        n for n, text in enumerate(decision.read_text().splitlines(), 1) if text.startswith("allow := ")
    )
    error = f"policy aborted: {decision}:{line}:1: var assignment conflict"
    result = impact(str(candidate), inventory, CAPCUT_IN_FORCE)
    assert (result.exit_code, result.stderr.splitlines()) == (
        1,
        [
            "2 devices: 1 decision changes, 0 flip to deny, 0 flip to allow, 1 the candidate cannot decide, "
            "0 with only warnings changed, 0 invalid",
            f"  fr-brussels-0042 (eu-commission): changed; error: {error}",
        ],
    )
    document = json.loads(impact(str(candidate), inventory, CAPCUT_IN_FORCE, "--format", "json").stdout)
    summary = document["summary"]
    counted = ("devices", "changed", "candidate_errors", "baseline_errors", "by_ban")
    assert {k: summary[k] for k in counted} == {
        "devices": 2, "changed": 1, "candidate_errors": 1, "baseline_errors": 0, "by_ban": {},
    }  # fmt: skip
    [change] = document["changes"]
    assert (change["violations_removed"], change["before"]["allow"], change["after"]["errors"]) == (
        [],
        False,
        [{"code": "no_decision", "message": error}],
    )
    assert [v["rule"] for v in change["before"]["violations"]] == ["eu-commission/tiktok"]


def impact_twice(candidate: Path, inventory: Path) -> tuple[Result, dict[str, Any]]:
    """``impact`` of ``candidate`` when CapCut's rule is in force: the text run, and the JSON document."""
    as_json = impact(str(candidate), inventory, CAPCUT_IN_FORCE, "--format", "json")
    return impact(str(candidate), inventory, CAPCUT_IN_FORCE), json.loads(as_json.stdout)


def commission_device(tmp_path: Path) -> Path:
    """The Commission's enrolled personal phone with TikTok (the contract's example), as an inventory."""
    inventory = tmp_path / "commission.jsonl"
    report = json.loads((EXAMPLES / "eu-commission-personal-enrolled-tiktok.json").read_text())
    inventory.write_text(json.dumps(report) + "\n")
    return inventory


def test_a_violation_waived_by_a_new_exemption_names_the_exemption(tmp_path: Path) -> None:
    """The audit's case: deny->allow listed only "-eu-commission/tiktok", not that EX-2023-001 waives it."""
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", candidate)
    (candidate / "data" / "pyagent" / "exemptions" / "data.yaml").write_text(
        "EX-2023-001:\n  device_id: fr-brussels-0042\n  organization: eu-commission\n  ban: tiktok\n"
        '  until: "2023-06-30T00:00:00Z"\n  reason: official communications account\n  approved_by: DIGIT.S\n'
    )
    result, document = impact_twice(candidate, commission_device(tmp_path))
    assert (result.exit_code, result.stderr.splitlines()) == (
        1,
        [
            "1 device: 1 decision changes, 0 flip to deny, 1 flip to allow, 0 with only warnings changed, "
            "0 invalid",
            "  fr-brussels-0042 (eu-commission): deny->allow; -eu-commission/tiktok com.zhiliaoapp.musically;"
            " exempted +eu-commission/tiktok com.zhiliaoapp.musically (EX-2023-001)",
        ],
    )
    [change] = document["changes"]
    assert (change["exempted_added"], change["exempted_removed"]) == (
        [{"rule": "eu-commission/tiktok", "app_id": "com.zhiliaoapp.musically", "exemption": "EX-2023-001"}],
        [],
    )


def test_a_violation_whose_date_or_remediation_changes_is_a_change_without_a_flip(tmp_path: Path) -> None:
    """The Commission's ban moved five days earlier and its remediation reworded: the device stays
    denied, but what it is told changed (it was "0 decisions change")."""
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", candidate)
    organizations = candidate / "data" / "pyagent" / "organizations" / "data.yaml"
    text = organizations.read_text(encoding="utf-8")
    head = text.index("eu-commission:\n")
    moved = text.index('effective_from: "2023-03-15T00:00:00Z"', head)
    text = text[:moved] + 'effective_from: "2023-03-10T00:00:00Z"' + text[moved + 38 :]
    said = text.index("remediation: ", head)
    text = text[:said] + 'remediation: "Remove TikTok now."' + text[text.index("\neu-council:", said) :]
    organizations.write_text(text, encoding="utf-8")
    result, document = impact_twice(candidate, commission_device(tmp_path))
    assert result.exit_code == 1  # a change, though no flip
    assert result.stderr == (
        "1 device: 1 decision changes, 0 flip to deny, 0 flip to allow, 0 with only warnings changed, "
        "0 invalid\n"
        "  fr-brussels-0042 (eu-commission): changed; ~eu-commission/tiktok com.zhiliaoapp.musically "
        "(effective_from 2023-03-15T00:00:00Z -> 2023-03-10T00:00:00Z, remediation changed)\n"
    )
    [change] = document["changes"]
    assert (document["summary"]["changed"], change["violations_added"], change["violations_removed"]) == (
        1,
        [],
        [],
    )
    assert change["violations_changed"] == [
        {
            "rule": "eu-commission/tiktok",
            "app_id": "com.zhiliaoapp.musically",
            "changed": {
                "effective_from": ["2023-03-15T00:00:00Z", "2023-03-10T00:00:00Z"],
                "remediation": [change["before"]["violations"][0]["remediation"], "Remove TikTok now."],
            },
        }
    ]
    assert change["before"]["violations"][0]["remediation"].startswith("Uninstall the app from this device.")


def test_what_the_candidate_finds_where_the_baseline_could_not_decide_is_listed(tmp_path: Path) -> None:
    """A device of an organisation only the candidate defines: its line said only why the baseline
    could not decide, and what the candidate finds was in the JSON alone (author audit)."""
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", candidate)
    orgs = candidate / "data" / "pyagent" / "organizations" / "data.yaml"
    orgs.write_text(orgs.read_text().replace("\nindia:\n", "\nbharat:\n"))
    report = json.loads((EXAMPLES / "india-personal-lite.json").read_text())
    report["device"]["organization"] = "bharat"
    inventory = tmp_path / "bharat.jsonl"
    inventory.write_text(json.dumps(report) + "\n")
    result = impact(str(candidate), inventory, CAPCUT_IN_FORCE)
    assert result.stderr.splitlines()[1] == (
        '  in-bengaluru-personal-2210 (bharat): changed; no longer: unknown organisation "bharat"; known: '
        "eeas, eu-commission, eu-council, eu-parliament, india, us-federal; now: bharat/tiktok "
        "com.zhiliaoapp.musically.go"
    )
