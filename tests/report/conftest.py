"""Shared fixtures for the report schema, validator and loader tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from pyagent.report import DecisionValidator, ReportValidator, decision_validator, report_validator

# CONTRACT.md section 1, verbatim.
CONTRACT_REPORT: dict[str, Any] = {
    "schema_version": 1,
    "collected_at": "2023-03-16T09:30:00Z",
    "device": {
        "id": "fr-brussels-0042",
        "platform": "android",
        "os_version": "14",
        "ownership": "personal",
        "organization": "eu-commission",
        "mdm": {"enrolled": True, "provider": "intune"},
        "work_profile": False,
    },
    "apps": [
        {"id": "com.zhiliaoapp.musically", "name": "TikTok", "version": "28.1.3", "source": "android-pm"}
    ],
    "collector": {"name": "android-pm", "version": "0.1.0"},
}

# CONTRACT.md section 2, verbatim.
CONTRACT_DECISION: dict[str, Any] = {
    "device_id": "fr-brussels-0042",
    "organization": "eu-commission",
    "allow": False,
    "violations": [
        {
            "rule": "eu-commission/tiktok",
            "ban": "tiktok",
            "app_id": "com.zhiliaoapp.musically",
            "message": "…",
            "remediation": "…",
            "effective_from": "2023-03-15T00:00:00Z",
            "scope": "personal-enrolled",
        }
    ],
    "warnings": [],
    "exempted": [],
    "evaluated_at": "2023-03-16T09:31:02Z",
    "policy_revision": "…",
    "engine": "embedded",
    "decision_id": "…",
}


@pytest.fixture
def contract_report() -> dict[str, Any]:
    return copy.deepcopy(CONTRACT_REPORT)


@pytest.fixture
def contract_decision() -> dict[str, Any]:
    return copy.deepcopy(CONTRACT_DECISION)


@pytest.fixture
def make_report() -> Callable[..., dict[str, Any]]:
    """A valid report with ``apps`` apps (ids ``com.example.app<N>``)."""

    def make(apps: int = 0) -> dict[str, Any]:
        report = copy.deepcopy(CONTRACT_REPORT)
        report["apps"] = [
            {"id": f"com.example.app{i}", "name": f"Example {i}", "version": "1.0", "source": "android-pm"}
            for i in range(apps)
        ]
        return report

    return make


@pytest.fixture(scope="session")
def report_schema() -> ReportValidator:
    return report_validator()


@pytest.fixture(scope="session")
def decision_schema() -> DecisionValidator:
    return decision_validator()
