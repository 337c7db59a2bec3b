"""``--format json``: the decision itself, contract key order, indent 2, trailing newline, ASCII only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyagent.outputs.base import OutputError
from pyagent.outputs.json_format import CONTRACT_ORDER, JsonFormat

Decision = dict[str, Any]

FIXTURES = [
    "compliant",
    "non_compliant",
    "with_warnings",
    "with_exemption",
    "display_name_evidence",
    "with_errors",
]


@pytest.mark.parametrize("name", FIXTURES)
def test_round_trip(name: str, request: pytest.FixtureRequest) -> None:
    decision: Decision = request.getfixturevalue(name)
    text = JsonFormat().render(decision, source="report.json")
    assert text.endswith("}\n")
    assert json.loads(text) == decision
    assert list(json.loads(text)) == list(CONTRACT_ORDER)
    assert text.startswith('{\n  "device_id": ')


def test_non_compliant_entry_kept_whole(non_compliant: Decision) -> None:
    parsed = json.loads(JsonFormat().render(non_compliant, source="-"))
    assert parsed["allow"] is False
    assert parsed["violations"] == non_compliant["violations"]
    assert parsed["violations"][0]["expired_exemptions"] == ["EX-2022-009"]


def test_warning_reasons_and_exemption_kept(with_warnings: Decision, with_exemption: Decision) -> None:
    warnings = json.loads(JsonFormat().render(with_warnings, source="-"))["warnings"]
    assert [w["reason"] for w in warnings] == ["not_yet_effective", "enforcement_warn", "enforcement_dryrun"]
    assert warnings[2]["app_name"] is None
    assert warnings[2]["effective_from"] is None
    exempted = json.loads(JsonFormat().render(with_exemption, source="-"))["exempted"]
    assert exempted[0]["exemption"]["id"] == "EX-2023-001"


def test_display_name_evidence_kept(display_name_evidence: Decision) -> None:
    parsed = json.loads(JsonFormat().render(display_name_evidence, source="-"))
    assert parsed["violations"][0]["evidence"] == "display_name"


def test_contract_order_then_extra_keys(compliant: Decision) -> None:
    shuffled = {"extra": 1, **dict(reversed(list(compliant.items())))}
    parsed = json.loads(JsonFormat().render(shuffled, source="-"))
    assert list(parsed) == [*CONTRACT_ORDER, "extra"]


def test_ascii_only_and_no_raw_control_characters(crafted_name: Decision) -> None:
    text = JsonFormat().render(crafted_name, source="-")
    assert text.isascii()
    assert "\x1b" not in text
    assert "\r" not in text
    assert json.loads(text)["violations"][0]["app_name"] == "TikTok\x1b[2J\rCOMPLIANT\u202e"


def test_not_json_serialisable_is_an_output_error(compliant: Decision) -> None:
    compliant["extra"] = float("nan")
    with pytest.raises(OutputError, match="cannot be written as JSON") as info:
        JsonFormat().render(compliant, source="-")
    assert info.value.exit_code == 3
