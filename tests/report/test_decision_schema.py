"""The decision schema (CONTRACT section 2)."""

from __future__ import annotations

from typing import Any

import pytest

from pyagent.report import DecisionValidator


def _entry(**extra: Any) -> dict[str, Any]:
    return {
        "rule": "eeas/tiktok-work-apps",
        "ban": "tiktok",
        "app_id": "com.ss.iphone.ugc.Aweme",
        "app_name": "Douyin",
        "message": "Douyin is banned on personal devices with work apps",
        "remediation": "Uninstall Douyin or remove the work apps",
        "effective_from": "2023-03-15T00:00:00Z",
        "scope": "personal-with-work-apps",
        "enforcement": "deny",
        "evidence": "id",
        **extra,
    }


def test_contract_example_is_valid(
    decision_schema: DecisionValidator, contract_decision: dict[str, Any]
) -> None:
    assert decision_schema.validate(contract_decision).issues == []


def test_full_decision_is_valid(
    decision_schema: DecisionValidator, contract_decision: dict[str, Any]
) -> None:
    contract_decision.update(
        organization=None,
        violations=[_entry()],
        warnings=[_entry(reason="not_yet_effective"), _entry(enforcement="warn", reason="enforcement_warn")],
        exempted=[
            _entry(
                exemption={
                    "id": "EX-2023-001",
                    "reason": "official communications account",
                    "until": "2023-06-30T00:00:00Z",
                    "approved_by": "DIGIT.S",
                }
            )
        ],
        errors=[
            {"code": "unknown_organization", "message": "no such organisation: eu-comission", "path": "$"}
        ],
        engine="opa",
        future_field={"added": "later"},  # forward compatible
    )
    assert decision_schema.validate(contract_decision).issues == []


def test_a_rule_in_force_without_a_date_has_effective_from_null(
    decision_schema: DecisionValidator, contract_decision: dict[str, Any]
) -> None:
    """A rule without ``effective_from`` (CONTRACT section 5 leaves it optional) is in force."""
    contract_decision.update(violations=[_entry(effective_from=None)])
    assert decision_schema.validate(contract_decision).issues == []
    contract_decision.update(violations=[_entry(effective_from="2023-03-15")])
    assert [issue.path for issue in decision_schema.validate(contract_decision).issues] == [
        "$.violations[0].effective_from"
    ]


def test_warnings_never_block(decision_schema: DecisionValidator, contract_decision: dict[str, Any]) -> None:
    contract_decision.update(allow=True, violations=[], warnings=[_entry(reason="enforcement_dryrun")])
    assert decision_schema.is_valid(contract_decision)


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        ({"allow": True}, "$.allow", "expected false, got true"),  # a violation always denies
        ({"engine": "wasm"}, "$.engine", '"opa", "embedded"'),
        ({"organization": 7}, "$.organization", "a non-empty string or null"),
        ({"evaluated_at": "yesterday"}, "$.evaluated_at", "RFC 3339"),
        ({"warnings": [_entry()]}, "$.warnings[0].reason", "required field is missing"),
        ({"warnings": [_entry(reason="later")]}, "$.warnings[0].reason", '"not_yet_effective"'),
        ({"exempted": [_entry()]}, "$.exempted[0].exemption", "required field is missing"),
        (
            {"exempted": [_entry(exemption={"id": "EX-1", "reason": "r"})]},
            "$.exempted[0].exemption.until",
            "required field is missing; expected an RFC 3339 date-time such as 2023-03-16T09:30:00Z",
        ),
        ({"violations": [_entry(rule="tiktok")]}, "$.violations[0].rule", "matching"),
        ({"violations": [_entry(scope="everyone")]}, "$.violations[0].scope", '"all"'),
        ({"violations": [_entry(enforcement="block")]}, "$.violations[0].enforcement", '"dryrun"'),
        ({"violations": [_entry(evidence="name")]}, "$.violations[0].evidence", '"display_name"'),
        ({"errors": [{"code": "x"}]}, "$.errors[0].message", "required field is missing"),
    ],
)
def test_invalid_decisions(
    decision_schema: DecisionValidator,
    contract_decision: dict[str, Any],
    change: dict[str, Any],
    path: str,
    fragment: str,
) -> None:
    contract_decision.update(change)
    result = decision_schema.validate(contract_decision)
    assert not decision_schema.is_valid(contract_decision) and not result.valid
    assert [issue.path for issue in result.issues] == [path]
    assert fragment in result.issues[0].message


@pytest.mark.parametrize(
    "field",
    [
        "device_id",
        "organization",
        "allow",
        "violations",
        "warnings",
        "exempted",
        "evaluated_at",
        "policy_revision",
        "engine",
        "decision_id",
    ],
)
def test_contract_fields_are_required(
    decision_schema: DecisionValidator, contract_decision: dict[str, Any], field: str
) -> None:
    del contract_decision[field]
    assert [issue.path for issue in decision_schema.validate(contract_decision).issues] == [f"$.{field}"]
