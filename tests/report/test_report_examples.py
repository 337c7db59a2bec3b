"""Every example JSON document in the repository is valid against its schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyagent.report import DecisionValidator, ReportValidator, load_report, parse_report

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(ROOT.glob("examples/**/*.json"))

EXPECTED_REPORTS = [
    "eu-commission-personal-enrolled-tiktok.json",
    "eu-commission-corporate-clean.json",
    "eu-council-personal-outlook-tiktok.json",
    "eeas-personal-teams-douyin.json",
    "eu-parliament-corporate-tiktok.json",
    "us-federal-corporate-windows-tiktok.json",
    "us-federal-personal-tiktok.json",
    "india-personal-lite.json",
]


def _looks_like_report(document: Any) -> bool:
    return isinstance(document, dict) and "schema_version" in document and "device" in document


def _looks_like_decision(document: Any) -> bool:
    return isinstance(document, dict) and "decision_id" in document and "allow" in document


def test_the_named_examples_exist() -> None:
    present = {path.name for path in (ROOT / "examples" / "reports").glob("*.json")}
    assert set(EXPECTED_REPORTS) <= present


def test_contract_example_is_verbatim(contract_report: dict[str, Any]) -> None:
    assert load_report(ROOT / "examples/reports" / EXPECTED_REPORTS[0]) == contract_report


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_example_is_valid(
    path: Path, report_schema: ReportValidator, decision_schema: DecisionValidator
) -> None:
    # Strict parsing (UTF-8, no duplicate keys) for every example; schema check for reports and decisions.
    document = parse_report(path.read_bytes(), str(path), validate=False)
    if "reports" in path.parts or _looks_like_report(document):
        assert report_schema.validate(document).issues == []
    elif "decisions" in path.parts or _looks_like_decision(document):
        assert decision_schema.validate(document).issues == []
