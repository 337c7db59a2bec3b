"""Decisions shared by the output-format tests (CONTRACT section 2 plus the policy's extra fields)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

Decision = dict[str, Any]

TIKTOK_MESSAGE = (
    "TikTok (com.zhiliaoapp.musically) is banned on personal-enrolled devices of European Commission "
    "from 2023-03-15T00:00:00Z: cybersecurity"
)
TIKTOK_REMEDIATION = "Uninstall TikTok (com.zhiliaoapp.musically) from this device."

_BASE: Decision = {
    "device_id": "fr-brussels-0042",
    "organization": "eu-commission",
    "allow": True,
    "violations": [],
    "warnings": [],
    "exempted": [],
    "errors": [],
    "evaluated_at": "2023-03-16T09:31:02Z",
    "policy_revision": "2023.03.15-1",
    "engine": "embedded",
    "decision_id": "5f0c2a9e-1111-4222-8333-444455556666",
}


def entry(**fields: Any) -> dict[str, Any]:
    """A TikTok entry of eu-commission, with ``fields`` overriding or added."""
    base: dict[str, Any] = {
        "rule": "eu-commission/tiktok",
        "ban": "tiktok",
        "app_id": "com.zhiliaoapp.musically",
        "app_name": "TikTok",
        "message": TIKTOK_MESSAGE,
        "remediation": TIKTOK_REMEDIATION,
        "effective_from": "2023-03-15T00:00:00Z",
        "scope": "personal-enrolled",
        "enforcement": "deny",
    }
    base.update(fields)
    return base


def decision(**fields: Any) -> Decision:
    out = copy.deepcopy(_BASE)
    out.update(fields)
    return out


@pytest.fixture
def compliant() -> Decision:
    return decision()


@pytest.fixture
def non_compliant() -> Decision:
    return decision(allow=False, violations=[entry(expired_exemptions=["EX-2022-009"])])


@pytest.fixture
def with_warnings() -> Decision:
    return decision(
        warnings=[
            entry(
                rule="eu-council/tiktok",
                effective_from="2023-04-01T00:00:00Z",
                scope="corporate",
                message="TikTok (com.zhiliaoapp.musically) is banned on corporate devices of "
                "Council of the EU from 2023-04-01T00:00:00Z: cybersecurity",
                reason="not_yet_effective",
            ),
            entry(
                rule="eu-commission/tiktok-lite",
                app_id="com.zhiliaoapp.musically.go",
                app_name="TikTok Lite",
                message="TikTok Lite (com.zhiliaoapp.musically.go) is banned: cybersecurity",
                remediation="Uninstall TikTok Lite.",
                enforcement="warn",
                reason="enforcement_warn",
            ),
            entry(
                rule="eu-commission/tiktok-dryrun",
                app_id="com.ss.android.ugc.trill",
                app_name=None,
                effective_from=None,
                message="tiktok (com.ss.android.ugc.trill) is banned: cybersecurity",
                remediation="Uninstall tiktok (com.ss.android.ugc.trill) from this device.",
                enforcement="dryrun",
                reason="enforcement_dryrun",
            ),
        ]
    )


@pytest.fixture
def with_exemption() -> Decision:
    return decision(
        exempted=[
            entry(
                exemption={
                    "id": "EX-2023-001",
                    "reason": "official communications account",
                    "until": "2023-06-30T00:00:00Z",
                    "approved_by": "DIGIT.S",
                }
            )
        ]
    )


@pytest.fixture
def display_name_evidence() -> Decision:
    return decision(
        device_id="be-intune-0007",
        allow=False,
        violations=[entry(app_id="com.zhiliaoapp.musically", evidence="display_name")],
    )


@pytest.fixture
def with_errors() -> Decision:
    return decision(
        organization=None,
        allow=False,
        errors=[{"code": "unknown_organization", "message": "organisation 'nope' is not known"}],
    )


@pytest.fixture
def crafted_name() -> Decision:
    """An app name and id with terminal escapes, a carriage return and a bidi override."""
    return decision(
        allow=False,
        violations=[
            entry(
                app_id="com.evil\x1b]0;pwned\x07",
                app_name="TikTok\x1b[2J\rCOMPLIANT\u202e",
                message="TikTok\x1b[2J\rCOMPLIANT\u202e (com.evil) is banned\n: cybersecurity",
            )
        ],
    )
