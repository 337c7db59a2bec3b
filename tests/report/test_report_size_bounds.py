"""Issue 16, item 5: the schema's size bounds, read from the schema, are checked before the deep validation.

The pre-check's issues are the reference validator's own (same paths, same messages); when there are any,
they are the refusal and the reference validator does not run. Otherwise the reference validator runs on
the document narrowed to the items where the fast validator sees errors, and finds the same issues."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pyagent.report import ReportValidator, SchemaIssue
from pyagent.report.bounds import SchemaBounds, report_bounds, widen
from pyagent.report.load import max_report_bytes
from pyagent.report.schemas import REPORT_SCHEMA, load_schema


def _oversized(report: dict[str, Any]) -> dict[str, Any]:
    """Every kind of size bound of the report schema broken once, and nothing else."""
    report = copy.deepcopy(report)
    report["device"]["id"] = "d" * 513
    report["device"]["extra"] = {"k" * 257: 1, "fine": "x" * 10_000}
    report["collector"]["version"] = "1" * 1025
    report["apps"][0]["path"] = "/" * 4097
    report["apps"].append({"id": "a", "extra": {f"k{i}": i for i in range(257)}})
    report["extra"] = {"nested": {"values": ["v" * 5000] * 3}}  # free-form: no bound applies inside
    return report


def test_size_issues_are_the_reference_validators_own(
    report_schema: ReportValidator, contract_report: Any
) -> None:
    report = _oversized(contract_report)
    assert [str(issue) for issue in report_schema.size_issues(report)] == [
        "$.apps[0].path: too long: 4097 characters, at most 4096 allowed (value starts "
        '"////////////////////////////////////////////////////////////...")',
        "$.apps[1].extra: too many fields: 257, at most 256 allowed",
        "$.collector.version: too long: 1025 characters, at most 1024 allowed (value starts "
        '"111111111111111111111111111111111111111111111111111111111111...")',
        '$.device.extra: field name "' + "k" * 60 + '..." is too long: 257 characters, at most 256',
        '$.device.id: too long: 513 characters, at most 512 allowed (value starts "' + "d" * 60 + '...")',
    ]
    assert report_schema.size_issues(report) == report_schema.reference_issues(report)
    assert report_schema.validate(report).issues == report_schema.reference_issues(report)


def test_size_issues_alone_refuse_without_the_deep_validation(
    report_schema: ReportValidator, contract_report: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = copy.deepcopy(contract_report)
    report["apps"] = [{"id": "a", "bogus": True}] * 100_001

    def deep(document: object) -> list[SchemaIssue]:
        raise AssertionError("the reference validator ran")

    monkeypatch.setattr(report_schema, "reference_issues", deep)
    result = report_schema.validate(report)
    assert not result.valid
    assert result.issues == [SchemaIssue("$.apps", "too many items: 100001, at most 100000 allowed")]


def test_other_issues_still_get_the_deep_validation(
    report_schema: ReportValidator, contract_report: Any
) -> None:
    report = copy.deepcopy(contract_report)
    report["apps"][0]["bogus"] = True
    assert report_schema.size_issues(report) == []
    [issue] = report_schema.validate(report).issues
    assert issue.path == "$.apps[0].bogus" and issue.message.startswith("unknown field"), issue


def test_bounds_follow_the_schema_where_they_surely_apply() -> None:
    """$ref (also recursive), allOf, items, properties, additionalProperties and propertyNames are followed;
    anyOf, prefixItems and additionalProperties beside patternProperties are not (they may not apply)."""
    schema = {
        "$id": "test",
        "x-max-document-bytes": 1000,
        "type": "object",
        "properties": {
            "tree": {"$ref": "#/$defs/tree"},
            "both": {"allOf": [{"maxLength": 5}, {"maxLength": 3}]},
            "either": {"anyOf": [{"maxLength": 1}, {"type": "integer"}]},
            "pairs": {"prefixItems": [{"maxLength": 1}], "items": {"maxLength": 1}},
            "patterned": {"patternProperties": {"^a": {}}, "additionalProperties": {"maxLength": 1}},
        },
        "additionalProperties": {"maxItems": 1},
        "$defs": {
            "tree": {
                "type": "object",
                "maxProperties": 2,
                "propertyNames": {"$ref": "#/$defs/short"},
                "properties": {"leaf": {"maxLength": 2}, "kids": {"items": {"$ref": "#/$defs/tree"}}},
            },
            "short": {"maxLength": 4},
        },
    }
    bounds = SchemaBounds(schema)
    assert bounds.document_bytes == 1000
    document = {
        "tree": {"kids": [{"leaf": "ok"}, {"kids": [{"leaf": "long", "names": 1}]}]},
        "both": "four",
        "either": "long",
        "pairs": ["long", "long"],
        "patterned": {"b": "long"},
        "other": [1, 2],
    }
    assert [str(issue) for issue in bounds.check(document)] == [
        '$.both: too long: 4 characters, at most 3 allowed (value starts "four")',
        "$.other: too many items: 2, at most 1 allowed",
        '$.tree.kids[1].kids[0]: field name "names" is too long: 5 characters, at most 4',
        '$.tree.kids[1].kids[0].leaf: too long: 4 characters, at most 2 allowed (value starts "long")',
    ]


def test_a_container_over_its_bound_is_not_entered() -> None:
    bounds = SchemaBounds({"type": "array", "maxItems": 2, "items": {"maxLength": 1}})
    assert [str(issue) for issue in bounds.check(["xx", "yy", "zz"])] == [
        "$: too many items: 3, at most 2 allowed"
    ]
    assert [str(issue) for issue in bounds.check(["x", "yy"])] == [
        '$[1]: too long: 2 characters, at most 1 allowed (value starts "yy")'
    ]


def test_the_document_bound_is_the_schemas() -> None:
    assert (
        max_report_bytes()
        == report_bounds().document_bytes
        == load_schema(REPORT_SCHEMA)["x-max-document-bytes"]
    )


def test_narrowed_issues_are_the_reference_issues(
    report_schema: ReportValidator, make_report: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = make_report(3000)
    report["apps"][7]["bogus"] = True
    report["apps"][7]["user"] = -1
    report["apps"][1500]["id"] = ""
    report["apps"][2999]["extra"] = []
    report["device"]["platform"] = "symbian"
    expected = report_schema.reference_issues(report)
    assert [issue.path for issue in expected] == [
        "$.apps[7].bogus", "$.apps[7].user", "$.apps[1500].id", "$.apps[2999].extra", "$.device.platform"
    ]  # fmt: skip
    assert report_schema.narrowed_issues(report) == expected

    def whole(document: object) -> list[SchemaIssue]:
        raise AssertionError("the reference validator ran on the whole document")

    monkeypatch.setattr(report_schema, "reference_issues", whole)
    assert report_schema.validate(report).issues == expected


@pytest.mark.parametrize(
    "keyword", [{"minItems": 1}, {"uniqueItems": True}, {"contains": {"const": "b"}}, {"const": ["a", "b"]}]
)
def test_an_array_judged_as_a_whole_is_not_narrowed(keyword: dict[str, Any]) -> None:
    bounds = SchemaBounds({"type": "array", "items": {"type": "string", "maxLength": 1}, **keyword})
    assert bounds.narrow(["a", 1, "b"], [(1,)]) == (["a", 1, "b"], {})


def test_nothing_is_narrowed_under_an_applicator_that_may_not_apply() -> None:
    bounds = SchemaBounds({"properties": {"a": {"items": {"maxLength": 1}}}, "anyOf": [{"required": ["a"]}]})
    assert bounds.narrow({"a": ["x", 1]}, [("a", 1)]) == ({"a": ["x", 1]}, {})


def test_narrowed_locations_are_widened_back() -> None:
    bounds = SchemaBounds({"properties": {"a": {"items": {"items": {"maxLength": 1}}}}})
    document = {"a": [["x"], ["y", "z", 5], ["w"], [6]], "b": 1}
    narrowed, renumbering = bounds.narrow(document, [("a", 1, 2), ("a", 3, 0)])
    assert narrowed == {"a": [[5], [6]], "b": 1}
    assert renumbering == {("a",): [1, 3], ("a", 0): [2], ("a", 1): [0]}
    assert widen(("a", 0, 0), renumbering) == ("a", 1, 2)
    assert widen(("a", 1, 0, "k"), renumbering) == ("a", 3, 0, "k")
    assert widen(("b",), renumbering) == ("b",)
