"""`pyagent impact` on devices neither version can decide, and on warnings whose terms alone change
(impact audit): an error reworded by the candidate is no change, and a rule that will only warn is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.fleet.runs import EXAMPLES, REPO, run

BASELINE = str(REPO / "policies")
BEFORE_THE_BAN = "2023-03-01T00:00:00Z"  # the Commission's TikTok ban is in force from 15 March 2023
#: The end of the comment above the Commission's TikTok rule's date (the shipped data's own words).
COMMISSION_RULE = "restrictions take effect on 15 March 2023.\n      "
KNOWN = "eeas, eu-commission, eu-council, eu-parliament, india, us-federal"


def impact(candidate: Path, inventory: Path, *more: str) -> tuple[int, list[str], dict[str, Any]]:
    """The exit code and text lines of one run, and the JSON document of another."""
    args = ["impact", "--baseline", BASELINE, "--candidate", str(candidate), str(inventory), "--jobs", "1"]
    text = run([*args, *more])
    as_json = run([*args, *more, "--format", "json"])
    assert as_json.exit_code == text.exit_code, as_json.stderr
    return text.exit_code, text.stderr.splitlines(), json.loads(as_json.stdout)


def candidate_policy(tmp_path: Path, edit: tuple[str, str]) -> Path:
    """A copy of the shipped policies with one text replaced in the organisations' data."""
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", candidate)
    organizations = candidate / "data" / "pyagent" / "organizations" / "data.yaml"
    text = organizations.read_text(encoding="utf-8")
    assert text.count(edit[0]) == 1
    organizations.write_text(text.replace(*edit), encoding="utf-8")
    return candidate


def inventory_of(tmp_path: Path, example: str, organization: str | None = None) -> Path:
    report = json.loads((EXAMPLES / example).read_text())
    if organization is not None:
        report["device"]["organization"] = organization
    inventory = tmp_path / "devices.jsonl"
    inventory.write_text(json.dumps(report) + "\n")
    return inventory


def test_an_organisation_unknown_to_both_is_not_compared_though_its_message_changes(tmp_path: Path) -> None:
    """The candidate adds an organisation: the unknown one's message lists the known ones, so it
    differs; it was counted as a changed decision (no decision was made under either)."""
    candidate = candidate_policy(
        tmp_path, ("\nindia:\n", "\nbharat:\n  title: Bharat\n  rules: {}\nindia:\n")
    )
    inventory = inventory_of(tmp_path, "eu-commission-corporate-clean.json", organization="acme")
    code, lines, document = impact(candidate, inventory, "--at", BEFORE_THE_BAN)
    after = f'unknown organisation "acme"; known: bharat, {KNOWN}'
    assert (code, lines) == (
        1,
        [
            "1 device: 0 decisions change, 0 flip to deny, 0 flip to allow, 0 with only warnings changed, "
            "1 invalid (not compared)",
            f"  {inventory}:1: invalid: {after}",
        ],
    )
    assert document["summary"]["changed"] == 0 and document["changes"] == []
    assert document["not_compared"] == [
        {
            "device_id": "be-brussels-berl-0117",
            "organization": "acme",
            "source": f"{inventory}:1",
            "status": "invalid",
            "errors": [{"code": "unknown_organization", "message": after, "organization": "acme"}],
            "baseline_errors": [
                {"code": "unknown_organization", "message": f'unknown organisation "acme"; known: {KNOWN}',
                 "organization": "acme"}
            ],
        }
    ]  # fmt: skip


def test_a_device_the_candidate_cannot_decide_for_another_reason_shows_both(tmp_path: Path) -> None:
    """Unknown to the baseline, and the candidate's Rego aborts on it: not compared, the candidate's
    status counted, and the baseline's error of another kind named beside it."""
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", candidate)
    (candidate / "rego" / "pyagent" / "decision" / "conflict.rego").write_text(
        "package pyagent.decision\n\nallow := true\n"
    )
    decision = candidate / "rego" / "pyagent" / "decision" / "decision.rego"
    # (the rule that says no device with errors is allowed: the one that conflicts for this device)
    line = decision.read_text().splitlines().index("allow := false if count(errors) > 0") + 1
    inventory = inventory_of(tmp_path, "eu-commission-corporate-clean.json", organization="acme")
    code, lines, document = impact(candidate, inventory, "--at", BEFORE_THE_BAN)
    aborted = f"policy aborted: {decision}:{line}:1: var assignment conflict"
    assert (code, lines) == (
        3,
        [
            "1 device: 0 decisions change, 0 flip to deny, 0 flip to allow, 0 with only warnings changed, "
            "0 invalid, 1 undecided (not compared)",
            f'  {inventory}:1: undecided: {aborted}; baseline: unknown organisation "acme"; known: {KNOWN}',
        ],
    )
    [entry] = document["not_compared"]
    assert (entry["status"], entry["errors"], [e["code"] for e in entry["baseline_errors"]]) == (
        "undecided",
        [{"code": "no_decision", "message": aborted}],
        ["unknown_organization"],
    )


def test_a_rule_not_in_force_yet_that_will_only_warn_is_a_warning_change(tmp_path: Path) -> None:
    """Before 15 March the Commission's TikTok rule is a warning under both versions; the candidate
    makes it warn instead of deny once in force. Only the warning's enforcement differs: it was not
    seen at all (exit 0, "0 with only warnings changed")."""
    candidate = candidate_policy(
        tmp_path, (f'{COMMISSION_RULE}effective_from: "2023-03-15T00:00:00Z"\n      enforcement: deny\n',
                   f'{COMMISSION_RULE}effective_from: "2023-03-15T00:00:00Z"\n      enforcement: warn\n')
    )  # fmt: skip
    inventory = inventory_of(tmp_path, "eu-commission-personal-enrolled-tiktok.json")
    code, lines, document = impact(candidate, inventory, "--at", BEFORE_THE_BAN)
    assert (code, lines) == (
        0,
        [
            "1 device: 0 decisions change, 0 flip to deny, 0 flip to allow, 1 with only warnings changed, "
            "0 invalid",
            "  fr-brussels-0042 (eu-commission): warnings only; warnings ~eu-commission/tiktok "
            "com.zhiliaoapp.musically (enforcement deny -> warn)",
        ],
    )
    assert document["warning_changes"] == [
        {
            "device_id": "fr-brussels-0042",
            "organization": "eu-commission",
            "source": f"{inventory}:1",
            "warnings_added": [],
            "warnings_removed": [],
            "warnings_changed": [
                {"rule": "eu-commission/tiktok", "app_id": "com.zhiliaoapp.musically",
                 "changed": {"enforcement": ["deny", "warn"]}}
            ],
        }
    ]  # fmt: skip


def test_a_warning_whose_date_changes_says_from_what_to_what(tmp_path: Path) -> None:
    """The Commission's rule moved to 1 April: before either date the device's warning is the same
    rule and app, so it was counted with nothing listed."""
    candidate = candidate_policy(
        tmp_path, (f'{COMMISSION_RULE}effective_from: "2023-03-15T00:00:00Z"\n',
                   f'{COMMISSION_RULE}effective_from: "2023-04-01T00:00:00Z"\n')
    )  # fmt: skip
    inventory = inventory_of(tmp_path, "eu-commission-personal-enrolled-tiktok.json")
    code, lines, document = impact(candidate, inventory, "--at", BEFORE_THE_BAN)
    assert (code, lines[1:]) == (
        0,
        [
            "  fr-brussels-0042 (eu-commission): warnings only; warnings ~eu-commission/tiktok "
            "com.zhiliaoapp.musically (effective_from 2023-03-15T00:00:00Z -> 2023-04-01T00:00:00Z)",
        ],
    )
    [entry] = document["warning_changes"]
    assert entry["warnings_changed"][0]["changed"] == {
        "effective_from": ["2023-03-15T00:00:00Z", "2023-04-01T00:00:00Z"]
    }
