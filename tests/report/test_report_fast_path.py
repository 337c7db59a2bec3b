"""The fast path (jsonschema-rs) against the reference (jsonschema) on the cases where two JSON Schema
implementations tend to differ: format, ECMA-262 ``$``, NUL, integers written as floats, huge numbers, deep
nesting, lone surrogates, values jsonschema-rs cannot read. Also: how the fast path is built and imported."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest

from pyagent.errors import InvalidInputError
from pyagent.report import (
    DecisionValidator,
    ReportValidator,
    SchemaFileError,
    SchemaValidator,
    decision_validator,
    report_validator,
)
from pyagent.report.load import ReportInvalidError, parse_report

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _holds_nul(doc: Any) -> bool:
    """Whether a string or key anywhere in ``doc`` contains U+0000 or another control character (what
    the loader's ``nul_free`` rules out; iterative: documents nest deeply)."""
    todo = [doc]
    while todo:
        node = todo.pop()
        if isinstance(node, str):
            if any(c < " " or c == "\x7f" for c in node):
                return True
        elif isinstance(node, dict):
            todo.extend(node.keys())
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return False


def verdicts(validator: SchemaValidator, doc: Any) -> bool:
    """Every way to ask gives the same answer as the reference; returns it."""
    reference = validator.reference_issues(doc)
    result = validator.validate(doc)
    assert validator.is_valid(doc) is result.valid is (not reference)
    if not _holds_nul(doc):  # what the loader's nul_free promises: the same verdict
        assert (
            validator.is_valid(doc, nul_free=True)
            is validator.validate(doc, nul_free=True).valid
            is result.valid
        )
    assert result.issues == reference
    return result.valid


def rust(validator: SchemaValidator, doc: Any) -> bool:
    """jsonschema-rs's own verdict (raises ValueError when it cannot read ``doc``)."""
    return bool(validator._fast.is_valid(doc))


def deep(levels: int) -> Any:
    node: Any = []
    for _ in range(levels):
        node = [node]
    return node


def test_the_fast_path_is_jsonschema_rs(
    report_schema: ReportValidator, decision_schema: DecisionValidator
) -> None:
    assert isinstance(report_schema._fast, jsonschema_rs.Validator)
    assert isinstance(decision_schema._fast, jsonschema_rs.Validator)
    assert (
        report_validator() is report_schema and decision_validator() is decision_schema
    )  # built once per process


def test_jsonschema_rs_is_imported_only_to_build_a_validator() -> None:
    code = (
        "import sys, pyagent.cli, pyagent.report\n"
        "assert 'jsonschema_rs' not in sys.modules\n"
        "from pyagent.report import report_validator\n"
        "report_validator()\n"
        "assert 'jsonschema_rs' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("date-time", "not a date"),
        ("date-time", "2023-03-16T23:59:60Z"),
        ("date", "2023-02-30"),
        ("email", "nobody"),
        ("uri", "::"),
        ("ipv4", "999.1.1.1"),
        ("uuid", "x"),
        ("regex", "(unclosed"),
        ("no-such-format", "x"),
    ],
)
def test_format_is_an_annotation_on_both_sides(fmt: str, value: str) -> None:
    validator = SchemaValidator({"$schema": DRAFT, "type": "string", "format": fmt})
    assert verdicts(validator, value)
    assert rust(validator, value)


@pytest.mark.parametrize(
    ("pattern", "value", "valid"),
    [
        ("^a$", "a", True),
        ("^a$", "a\n", False),
        ("^a$", "a\r\n", False),
        ("^a$", "\na", False),
        ("a$", "ba", True),
        ("a", "xax\n", True),  # unanchored: a search, not a full match
        ("^a\\$$", "a$", True),
        ("^a\\$$", "a", False),
        ("^[^\\u0000]+$", "x", True),
        ("^[^\\u0000]+$", "x\x00", False),
        ("^[^\\u0000]+$", "", False),
        ("^[0-9]$", "\u0661", False),  # Arabic-Indic digit one
        ("^.$", "\U0001f600", True),  # one code point, two UTF-16 units
    ],
)
def test_patterns_follow_ecma_262_on_both_sides(pattern: str, value: str, valid: bool) -> None:
    validator = SchemaValidator({"$schema": DRAFT, "type": "string", "pattern": pattern})
    assert verdicts(validator, value) is valid
    assert rust(validator, value) is valid


Edit = Callable[[dict[str, Any]], None]


def _put(*path: str | int, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return edit


# (case id, edit of the contract report, valid)
REPORT_CASES: list[tuple[str, Edit, bool]] = [
    ("timestamp with trailing newline", _put("collected_at", value="2023-03-16T09:30:00Z\n"), False),
    ("timestamp with trailing CR", _put("collected_at", value="2023-03-16T09:30:00Z\r"), False),
    ("timestamp with leading newline", _put("collected_at", value="\n2023-03-16T09:30:00Z"), False),
    ("timestamp, leap second", _put("collected_at", value="2023-03-16T23:59:60Z"), False),
    ("timestamp, -00:00", _put("collected_at", value="2023-03-16T09:30:00-00:00"), True),
    ("NUL in id", _put("apps", 0, "id", value="a\x00"), False),
    ("NUL alone in name", _put("apps", 0, "name", value="\x00"), False),
    ("NUL in extra value", _put("extra", value={"a": "\x00"}), True),
    ("NUL in extra key", _put("extra", value={"\x00": 1}), True),
    ("schema_version 1.0", _put("schema_version", value=1.0), True),
    ("schema_version 1.5", _put("schema_version", value=1.5), False),
    ("schema_version 1 + 2**-52", _put("schema_version", value=1.0000000000000002), False),
    ("schema_version True", _put("schema_version", value=True), False),
    ("schema_version 2**64 + 1", _put("schema_version", value=2**64 + 1), False),
    ("schema_version 10**400", _put("schema_version", value=10**400), False),
    ("user 0.0", _put("apps", 0, "user", value=0.0), True),
    ("user -0.0", _put("apps", 0, "user", value=-0.0), True),
    ("user 2147483647.0", _put("apps", 0, "user", value=2147483647.0), True),
    ("user 2147483648.0", _put("apps", 0, "user", value=2147483648.0), False),
    ("user 5e-324", _put("apps", 0, "user", value=5e-324), False),
    ("user 1e308", _put("apps", 0, "user", value=1e308), False),
    ("user -(2**700)", _put("apps", 0, "user", value=-(2**700)), False),
    ("user False", _put("apps", 0, "user", value=False), False),
    ("huge numbers in extra", _put("extra", value={"a": 2**700, "b": -(10**400), "c": 1e308}), True),
    ("512 astral code points", _put("apps", 0, "id", value="\U0001f600" * 512), True),
    ("513 astral code points", _put("apps", 0, "id", value="\U0001f600" * 513), False),
    ("deep nesting in extra", _put("extra", value={"a": deep(100_000)}), True),
    ("deep nesting as an unknown field", _put("zz", value=deep(100_000)), False),
    ("deep nesting as an app", _put("apps", 0, value=deep(100_000)), False),
    ("deep nesting as apps", _put("apps", value=deep(100_000)), False),
    # lone surrogates: jsonschema-rs declines where it reads the string, the reference decides
    ("lone surrogate in id", _put("apps", 0, "id", value="com.\ud800"), True),
    ("lone surrogate in 513-char id", _put("apps", 0, "id", value="\udfff" * 513), False),
    ("lone surrogate as timestamp", _put("collected_at", value="\ud800"), False),
    ("lone surrogate as platform", _put("device", "platform", value="\udc00"), False),
    ("lone surrogate as extra key", _put("extra", value={"\ud800": 1}), True),
    ("long surrogate extra key", _put("extra", value={"\ud800" * 257: 1}), False),
    ("lone surrogate in extra value", _put("extra", value={"a": ["\ud800"]}), True),
    ("lone surrogate as unknown field", _put("\udc00", value=1), False),
    ("surrogate pair as two characters", _put("apps", 0, "name", value="\ud83d\ude00"), True),
    # not JSON, but not readable by jsonschema-rs either: the reference decides
    ("integer key in extra", _put("extra", value={1: 1}), True),
    ("bytes as id", _put("apps", 0, "id", value=b"x"), False),
    ("str subclass as id", _put("apps", 0, "id", value=type("S", (str,), {})("x")), True),
]


@pytest.mark.parametrize(("edit", "valid"), [pytest.param(e, v, id=i) for i, e, v in REPORT_CASES])
def test_report_edge_cases(
    report_schema: ReportValidator, contract_report: dict[str, Any], edit: Edit, valid: bool
) -> None:
    edit(contract_report)
    assert verdicts(report_schema, contract_report) is valid


@pytest.mark.parametrize(
    ("edit", "valid"),
    [
        (_put("evaluated_at", value="2023-03-16T09:31:02Z\n"), False),
        (_put("violations", 0, "rule", value="a/b\n"), True),  # [^/] takes the newline: valid on both
        (_put("violations", 0, "rule", value="a/b/c"), False),
        (_put("violations", 0, "remediation", value="\x00"), True),
        (_put("organization", value=None), True),
        (_put("organization", value=""), False),
        (_put("allow", value=True), False),  # if violations then allow is false
        (_put("violations", value=[]), True),
        (_put("violations", 0, "app_id", value="\ud800"), True),
        (_put("engine", value="\ud800"), False),
    ],
)
def test_decision_edge_cases(
    decision_schema: DecisionValidator, contract_decision: dict[str, Any], edit: Edit, valid: bool
) -> None:
    doc = copy.deepcopy(contract_decision)
    edit(doc)
    assert verdicts(decision_schema, doc) is valid


def test_unreadable_documents_are_decided_by_the_reference(
    report_schema: ReportValidator, contract_report: Any
) -> None:
    contract_report["apps"][0]["id"] = "com.\ud800"
    with pytest.raises(UnicodeEncodeError, match=r"surrogates not allowed$"):
        rust(report_schema, contract_report)
    assert report_schema.is_valid(contract_report) and report_schema.validate(contract_report).valid
    contract_report["colour"] = "\ud800"
    [issue] = report_schema.validate(contract_report).issues
    assert issue.path == "$.colour" and "unknown field" in issue.message


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": 12}, "anyOf"),
        ({"$ref": "https://example.com/other.json"}, "Retrieval is disabled"),
        ({"$ref": "#/$defs/nothing"}, "does not exist"),
        ({"pattern": "(?=a)"}, "regex"),  # look-around: not in Rust's regex crate
        ({"pattern": "(a"}, "regex"),
    ],
)
def test_schemas_jsonschema_rs_cannot_compile_are_reported(schema: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SchemaFileError, match="cannot compile schema") as caught:
        SchemaValidator({"$schema": DRAFT, "$id": "https://pyagent.dev/schemas/t.json", **schema})
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 3


def test_the_deepest_report_the_loader_parses_gets_an_issue_not_a_crash(contract_report: Any) -> None:
    """The reference path puts repr() of a failing value in its messages; at the deepest nesting that
    json.loads accepts, that repr() used to overflow the stack (an internal error in ``pyagent check``)."""
    for depth in range(1000, 800, -1):
        contract_report["apps"] = "X"
        text = json.dumps(contract_report).replace('"X"', "[" * depth + "]" * depth)
        try:
            parse_report(text.encode(), "deep.json")
        except ReportInvalidError as err:
            assert [str(issue) for issue in err.issues] == ["$.apps[0]: expected an object, got an array"]
            return
        except InvalidInputError as err:
            assert "nested too deeply" in str(err)
    pytest.fail("no depth parsed")
