"""The report's bound on JSON values (the schema's ``x-max-document-values``): counted exactly, enforced
before parsing, and refused as invalid input (exit 2), never as an engine that ran out of memory (a
120 MB report of empty objects took 7 GB and ended in exit 3, "opa_malloc: failed")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyagent.errors import InvalidInputError
from pyagent.report.bounds import report_document_values
from pyagent.report.load import json_value_count, parse_report
from pyagent.report.schemas import REPORT_SCHEMA, load_schema
from tests.helpers.cli import invoke

#: The contract's report (section 1): the document, 2 top-level scalars, the device (5 scalars, mdm and its
#: 2, work_profile), the apps array with one app of 4 fields, and the collector with 2.
CONTRACT_REPORT_VALUES = 22


def _values(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_values(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_values(v) for v in value)
    return 1


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        "[]",
        "0",
        '"a"',
        "[[[]]]",
        '{"a": [], "b": {}, "c": [ ], "d": { \n }}',
        '[1, 2.5e3, true, false, null, [3, {}], {"x": "a,b[{}]"}]',
        '{"escaped": "quote \\" then , [ { and a backslash \\\\", "next": ["]", "}", "[]", "{}"]}',
        '{"unicode": "caf\\u00e9, \\ud83d\\ude00", "é,[": ["日本,{"]}',
    ],
)
def test_values_are_counted_exactly(text: str) -> None:
    assert json_value_count(text) == _values(json.loads(text))


def test_a_report_is_counted_as_written_compact_or_indented(contract_report: dict[str, Any]) -> None:
    assert _values(contract_report) == CONTRACT_REPORT_VALUES
    for indent in (None, 2, "\t"):
        assert json_value_count(json.dumps(contract_report, indent=indent)) == CONTRACT_REPORT_VALUES


def test_the_bound_is_the_schemas() -> None:
    assert report_document_values() == load_schema(REPORT_SCHEMA)["x-max-document-values"] == 2_000_000


def _report_of(report: dict[str, Any], values: int) -> bytes:
    """``report`` with free-form data under ``extra`` to make ``values`` values in all."""
    zeros = values - _values(report) - 2  # the extra object and its array are values too
    document = {**report, "extra": {"samples": [0] * zeros}}
    text = json.dumps(document, separators=(",", ":"))
    assert json_value_count(text) == values
    return text.encode()


def test_a_report_at_the_bound_is_read(contract_report: dict[str, Any]) -> None:
    bound = report_document_values()
    document = parse_report(_report_of(contract_report, bound), "at-bound.json")
    assert len(document["extra"]["samples"]) == bound - CONTRACT_REPORT_VALUES - 2


def test_a_report_over_the_bound_is_refused_before_parsing(contract_report: dict[str, Any]) -> None:
    bound = report_document_values()
    with pytest.raises(InvalidInputError) as refused:
        parse_report(_report_of(contract_report, bound + 1), "over.json", validate=False)
    assert str(refused.value) == (
        "over.json: report holds 2,000,001 JSON values; at most 2,000,000 (the report schema's "
        "x-max-document-values)"
    )


def test_check_refuses_a_report_of_many_small_values_as_invalid_input(
    tmp_path: Path, contract_report: dict[str, Any]
) -> None:
    """Three bytes a value: 3,000,000 empty objects are 9 MB, far under the byte bound."""
    text = json.dumps(contract_report)[:-1] + ',"extra":{"x":[' + "{}," * 2_999_999 + "{}]}}"
    report = tmp_path / "many.json"
    report.write_text(text)
    result = invoke(["check", str(report), "--at", "2023-03-16T09:30:00Z", "--engine", "embedded"])
    assert (result.exit_code, result.output) == (
        2,
        f"pyagent: error: {report}: report holds 3,000,024 JSON values; at most 2,000,000 (the report "
        "schema's x-max-document-values)\n",
    )


def test_a_string_left_open_is_counted_in_one_scan() -> None:
    """Each later quote began a new scan to the end of the text: 54 s for 2 MB of escaped quotes after
    an open string, hours at the byte bound. The open string runs to the end: one value."""
    text = "[" + "," * 2_000_001 + '"' + '\\"' * 1_000_000
    assert json_value_count(text) == 2_000_003
    with pytest.raises(InvalidInputError) as refused:
        parse_report(text.encode(), "open.json")
    assert str(refused.value) == (
        "open.json: report holds 2,000,003 JSON values; at most 2,000,000 (the report schema's "
        "x-max-document-values)"
    )
