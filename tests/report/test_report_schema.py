"""The device report schema: meta-validation, hand-written edge cases, and the messages users see."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from jsonschema import Draft202012Validator

from pyagent.report import (
    DECISION_SCHEMA,
    REPORT_SCHEMA,
    ReportValidator,
    SchemaFileError,
    SchemaIssue,
    find_schema,
    load_schema,
    max_report_bytes,
)
from pyagent.report.issues import MAX_MESSAGE_CHARS
from pyagent.report.load import control_free
from pyagent.report.schemas import schema_dirs
from pyagent.report.validate import MAX_LISTED_ITEMS

Mutation = Callable[[dict[str, Any]], object]


@pytest.mark.parametrize("name", [REPORT_SCHEMA, DECISION_SCHEMA])
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://pyagent.dev/schemas/{name}"
    assert find_schema(name).parent.name == "schemas"


def test_document_size_bound_is_recorded_in_the_schema() -> None:
    schema = load_schema(REPORT_SCHEMA)
    assert schema["x-max-document-bytes"] == max_report_bytes() == 128 * 1024 * 1024
    assert "128 MiB" in schema["description"]


def test_contract_example_is_valid(report_schema: ReportValidator, contract_report: dict[str, Any]) -> None:
    assert report_schema.validate(contract_report).valid


def _set(path: str, value: object) -> Mutation:
    """A mutation setting ``a.b.0.c`` to ``value`` (creating the last key)."""

    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = doc
        for step in parents:
            node = node[step]
        node[last] = copy.deepcopy(value)

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = doc
        for step in parents:
            node = node[step]
        del node[last]

    return mutate


def _rename(path: str, new: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for step in parents:
            node = node[step]
        node[new] = node.pop(last)

    return mutate


def _apps(count: int, id_length: int = 0) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        doc["apps"] = [{"id": f"com.example.{i}.".ljust(id_length, "x")} for i in range(count)]

    return mutate


# (case id, mutation, expected issues as (path, fragment of message)); no issues means valid.
CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("contract example", lambda d: None, []),
    ("empty apps", _set("apps", []), []),
    ("no organization (given with --org)", _delete("device.organization"), []),
    (
        "minimal device",
        _set(
            "device", {"id": "d", "platform": "linux", "ownership": "corporate", "mdm": {"enrolled": False}}
        ),
        [],
    ),
    ("no collector", _delete("collector"), []),
    ("collector without version", _delete("collector.version"), []),
    ("collector without name", _delete("collector.name"), []),  # CONTRACT section 1: optional
    (
        "all app fields",
        _set(
            "apps.0",
            {
                "id": "a",
                "name": "A",
                "version": "1",
                "source": "s",
                "evidence": "display_name",
                "installer": "com.android.vending",
                "user": 10,
                "path": "/data/app/base.apk",
                "extra": {"k": [1, {"x": None}]},
            },
        ),
        [],
    ),
    ("extras everywhere", lambda d: (d.update(extra={"a": 1}), d["device"].update(extra={})), []),
    ("512-char id", _set("apps.0.id", "x" * 512), []),
    ("1024-char name", _set("apps.0.name", "n" * 1024), []),
    ("4096-char path", _set("apps.0.path", "/" * 4096), []),
    ("256 extra fields", _set("extra", {f"k{i}": i for i in range(256)}), []),
    ("user 2^31-1", _set("apps.0.user", 2**31 - 1), []),
    ("schema_version 1.0 is the integer 1", _set("schema_version", 1.0), []),
    ("non-ASCII name", _set("apps.0.name", "抖音"), []),
    ("newline inside a name", _set("apps.0.name", "Tik\nTok"), []),
    ("fraction and offset", _set("collected_at", "2023-03-16T09:30:00.123+01:00"), []),
    ("negative zero offset", _set("collected_at", "2023-03-16T09:30:00-00:00"), []),
    ("leap day", _set("collected_at", "2024-02-29T23:59:59Z"), []),
    ("leap day 2000", _set("collected_at", "2000-02-29T00:00:00Z"), []),
    # --- invalid
    ("unknown top-level field", _set("colour", "blue"), [("$.colour", "unknown field")]),
    ("unknown device field", _set("device.serial", "X1"), [("$.device.serial", "unknown field")]),
    (
        "typo ownershp",
        _rename("device.ownership", "ownershp"),
        [
            ("$.device.ownership", "required field is missing"),
            ("$.device.ownershp", 'did you mean "ownership"'),
        ],
    ),
    ("unknown mdm field", _set("device.mdm.vendor", "x"), [("$.device.mdm.vendor", "unknown field")]),
    ("unknown app field", _set("apps.0.package", "x"), [("$.apps[0].package", "unknown field")]),
    ("unknown collector field", _set("collector.host", "x"), [("$.collector.host", "unknown field")]),
    (
        "wrong ownership",
        _set("device.ownership", "company"),
        [("$.device.ownership", 'expected one of "corporate", "personal", got "company"')],
    ),
    ("wrong platform", _set("device.platform", "symbian"), [("$.device.platform", '"android", "ios"')]),
    ("wrong evidence", _set("apps.0.evidence", "name"), [("$.apps[0].evidence", '"id", "display_name"')]),
    (
        "NUL in app id",
        _set("apps.0.id", "com.zhiliaoapp\x00.musically"),
        [("$.apps[0].id", "must not contain a NUL character")],
    ),
    ("NUL in device id", _set("device.id", "\x00"), [("$.device.id", "NUL")]),
    ("NUL in path", _set("apps.0.path", "/a\x00"), [("$.apps[0].path", "NUL")]),
    (
        "513-char id",
        _set("apps.0.id", "x" * 513),
        [("$.apps[0].id", "too long: 513 characters, at most 512")],
    ),
    (
        "513-char organization",
        _set("device.organization", "o" * 513),
        [("$.device.organization", "at most 512")],
    ),
    ("1025-char version", _set("apps.0.version", "1" * 1025), [("$.apps[0].version", "at most 1024")]),
    ("4097-char path", _set("apps.0.path", "/" * 4097), [("$.apps[0].path", "at most 4096")]),
    ("empty id", _set("apps.0.id", ""), [("$.apps[0].id", "got an empty string")]),
    ("empty name", _set("apps.0.name", ""), [("$.apps[0].name", "at least 1 character")]),
    ("missing app id", _delete("apps.0.id"), [("$.apps[0].id", "required field is missing")]),
    (
        "missing mdm.enrolled",
        _delete("device.mdm.enrolled"),
        [("$.device.mdm.enrolled", "required field is missing; expected true or false")],
    ),
    (
        "missing mdm",
        _delete("device.mdm"),
        [("$.device.mdm", "required field is missing; expected an object")],
    ),
    ("missing device", _delete("device"), [("$.device", "required field is missing")]),
    ("missing apps", _delete("apps"), [("$.apps", "required field is missing; expected an array")]),
    ("missing schema_version", _delete("schema_version"), [("$.schema_version", "expected 1")]),
    ("missing collected_at", _delete("collected_at"), [("$.collected_at", "RFC 3339")]),
    (
        "enrolled as string",
        _set("device.mdm.enrolled", "yes"),
        [("$.device.mdm.enrolled", 'expected true or false, got "yes"')],
    ),
    ("work_profile as 0", _set("device.work_profile", 0), [("$.device.work_profile", "got 0")]),
    ("schema_version 2", _set("schema_version", 2), [("$.schema_version", "expected 1, got 2")]),
    ("schema_version true", _set("schema_version", True), [("$.schema_version", "got true")]),
    ("schema_version string", _set("schema_version", "1"), [("$.schema_version", 'got "1"')]),
    ("date only", _set("collected_at", "2023-03-16"), [("$.collected_at", "RFC 3339")]),
    ("no time zone", _set("collected_at", "2023-03-16T09:30:00"), [("$.collected_at", "RFC 3339")]),
    ("space separator", _set("collected_at", "2023-03-16 09:30:00Z"), [("$.collected_at", "RFC 3339")]),
    ("lower-case t", _set("collected_at", "2023-03-16t09:30:00Z"), [("$.collected_at", "upper-case")]),
    ("30 February", _set("collected_at", "2023-02-30T09:30:00Z"), [("$.collected_at", "calendar date")]),
    ("29 February 2023", _set("collected_at", "2023-02-29T09:30:00Z"), [("$.collected_at", "RFC 3339")]),
    ("29 February 1900", _set("collected_at", "1900-02-29T09:30:00Z"), [("$.collected_at", "RFC 3339")]),
    ("hour 24", _set("collected_at", "2023-03-16T24:00:00Z"), [("$.collected_at", "RFC 3339")]),
    ("leap second", _set("collected_at", "2023-03-16T23:59:60Z"), [("$.collected_at", "RFC 3339")]),
    ("trailing newline", _set("collected_at", "2023-03-16T09:30:00Z\n"), [("$.collected_at", "\\n")]),
    (
        "full-width digits",
        _set("collected_at", "\uff12\uff10\uff12\uff13-03-16T09:30:00Z"),
        [("$.collected_at", "RFC 3339")],
    ),
    ("year 0000", _set("collected_at", "0000-03-16T09:30:00Z"), [("$.collected_at", "RFC 3339")]),
    (
        "ten fraction digits",
        _set("collected_at", "2023-03-16T09:30:00.0123456789Z"),
        [
            (
                "$.collected_at",
                "expected an RFC 3339 date-time such as 2023-03-16T09:30:00Z (upper-case T and Z, a real "
                'calendar date), got "2023-03-16T09:30:00.0123456789Z"',
            )
        ],
    ),
    ("timestamp as number", _set("collected_at", 1678959000), [("$.collected_at", "got 1678959000")]),
    ("user -1", _set("apps.0.user", -1), [("$.apps[0].user", "expected an integer >= 0, got -1")]),
    ("user 2^31", _set("apps.0.user", 2**31), [("$.apps[0].user", "<= 2147483647")]),
    ("user 1.5", _set("apps.0.user", 1.5), [("$.apps[0].user", "expected an integer, got 1.5")]),
    ("user true", _set("apps.0.user", True), [("$.apps[0].user", "got true")]),
    (
        "257 extra fields",
        _set("extra", {f"k{i}": i for i in range(257)}),
        [("$.extra", "too many fields: 257")],
    ),
    ("long extra key", _set("device.extra", {"k" * 257: 1}), [("$.device.extra", "field name")]),
    (
        "extra not an object",
        _set("apps.0.extra", [1]),
        [("$.apps[0].extra", "expected an object, got an array")],
    ),
    ("apps not an array", _set("apps", {}), [("$.apps", "expected an array, got an object")]),
    ("app not an object", _set("apps.0", "com.zhiliaoapp.musically"), [("$.apps[0]", "expected an object")]),
    ("organization null", _set("device.organization", None), [("$.device.organization", "got null")]),
    (
        "several errors",
        lambda d: (_set("apps.0.id", "")(d), _set("device.platform", "x")(d), _set("zz", 1)(d)),
        [
            ("$.apps[0].id", "expected a string of at least 1 character, got an empty string"),
            ("$.device.platform", 'expected one of "android", "ios", "windows", "macos", "linux", got "x"'),
            (
                "$.zz",
                "unknown field; allowed fields: apps, collected_at, collector, device, extra, "
                'schema_version; put free-form data under "extra"',
            ),
        ],
    ),
]


@pytest.mark.parametrize(("mutation", "expected"), [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_hand_written_cases(
    report_schema: ReportValidator,
    contract_report: dict[str, Any],
    mutation: Mutation,
    expected: list[tuple[str, str]],
) -> None:
    mutation(contract_report)
    result = report_schema.validate(contract_report)
    reference = report_schema.reference_issues(contract_report)
    # The fast and the reference validators agree, with and without the NUL shortcut when it applies.
    assert report_schema.is_valid(contract_report) is (not reference) is result.valid is (not expected)
    if control_free(json.dumps(contract_report)):
        assert report_schema.is_valid(contract_report, nul_free=True) is result.valid
    assert result.issues == reference
    assert [issue.path for issue in result.issues] == [path for path, _ in expected]
    for issue, (_, fragment) in zip(result.issues, expected, strict=True):
        assert fragment and fragment in issue.message, issue  # (a whole message where it is given)


def test_issues_are_one_printable_bounded_line(
    report_schema: ReportValidator, contract_report: dict[str, Any]
) -> None:
    contract_report["apps"][0]["id"] = "\x00\x1b[2J\u202e" + "x" * 10_000
    contract_report["extra"] = {"\n" * 300: 1}
    contract_report["\x1b]0;evil\x07" + "k" * 500] = 1
    issues = report_schema.reference_issues(contract_report)
    for issue in issues:
        text = str(issue)
        assert len(issue.message) <= MAX_MESSAGE_CHARS
        assert len(issue.path) <= 100
        assert not re.search(r"[\x00-\x1f\x7f\u202e]", text), text
    evil, nul, too_long, extra = issues  # control characters sort before letters
    assert evil.path.startswith('$["\\u001b]0;evil\\u0007kkk') and evil.path.endswith('..."]')
    assert nul.path == too_long.path == "$.apps[0].id"
    assert '"\\u0000\\u001b[2J\\u202e' in nul.message
    assert "10006 characters" in too_long.message
    assert extra.path == "$.extra" and "field name" in extra.message
    assert report_schema.validate(contract_report).issues == [
        too_long,
        extra,
    ]  # size issues: the refusal, on their own


def test_issues_are_sorted_by_path_with_numeric_indexes(
    report_schema: ReportValidator, make_report: Any
) -> None:
    report = make_report(12)
    for index in (11, 2, 10):
        report["apps"][index]["id"] = ""
    paths = [issue.path for issue in report_schema.validate(report).issues]
    assert paths == ["$.apps[2].id", "$.apps[10].id", "$.apps[11].id"]


def test_every_error_is_collected_up_to_the_listing_cap(
    report_schema: ReportValidator, make_report: Any
) -> None:
    report = make_report(MAX_LISTED_ITEMS)
    for app in report["apps"]:
        app["bogus"] = True
    issues = report_schema.validate(report).issues
    assert len(issues) == MAX_LISTED_ITEMS
    assert issues[-1] == SchemaIssue(f"$.apps[{MAX_LISTED_ITEMS - 1}].bogus", issues[-1].message)
    assert str(issues[0]).startswith("$.apps[0].bogus: unknown field; allowed fields: evidence, extra, id")


def test_items_with_problems_past_the_cap_are_counted_not_listed(
    report_schema: ReportValidator, make_report: Any
) -> None:
    report = make_report(1000)
    for index, app in enumerate(report["apps"]):
        if index % 2:
            app["bogus"] = True  # 500 bad apps, every other one
    issues = report_schema.validate(report).issues
    assert [i.path for i in issues[:2]] == ["$.apps[1].bogus", "$.apps[3].bogus"]
    assert issues[MAX_LISTED_ITEMS - 1].path == f"$.apps[{2 * MAX_LISTED_ITEMS - 1}].bogus"
    assert issues[MAX_LISTED_ITEMS:] == [
        SchemaIssue("$.apps", "and 400 more items with problems, not listed (the first 100 are)", omitted=400)
    ]


def test_fifty_thousand_apps_with_512_char_ids_are_valid(
    report_schema: ReportValidator, make_report: Any
) -> None:
    report = make_report()
    _apps(50_000, 512)(report)
    assert len(report["apps"][49_999]["id"]) == 512
    assert report_schema.is_valid(report)
    assert report_schema.is_valid(report, nul_free=True)
    assert report_schema.reference_issues(report) == []


def test_app_count_is_bounded(report_schema: ReportValidator, make_report: Any) -> None:
    report = make_report()
    report["apps"] = [{"id": "a"}] * 100_000
    assert report_schema.is_valid(report)
    report["apps"].append({"id": "a"})
    assert not report_schema.is_valid(report)
    result = report_schema.validate(report)  # the reference validator agrees (and is slow: one pass only)
    assert result.issues == [SchemaIssue("$.apps", "too many items: 100001, at most 100000 allowed")]


def test_a_disagreement_never_turns_into_valid(monkeypatch: pytest.MonkeyPatch, contract_report: Any) -> None:
    """Should the fast validator reject what the reference one accepts, the document stays invalid, with the
    fast validator's first finding as the issue."""
    validator = ReportValidator()
    stricter = copy.deepcopy(validator.schema)
    stricter["$defs"]["app"]["properties"]["id"]["maxLength"] = 3
    monkeypatch.setattr(validator, "_fast_all", jsonschema_rs.Draft202012Validator(stricter))
    assert validator.reference_issues(contract_report) == []
    result = validator.validate(contract_report)
    assert not result.valid and not validator.is_valid(contract_report)
    [issue] = result.issues
    assert issue.path == "$.apps[0].id" and "longer than 3 characters" in issue.message, issue


def test_schema_files_are_found_and_copied(tmp_path: Path) -> None:
    first = load_schema(REPORT_SCHEMA)
    first["properties"].clear()  # callers may modify their copy ...
    assert load_schema(REPORT_SCHEMA)["properties"]  # ... without affecting anyone else
    assert schema_dirs()[0] == Path(__file__).resolve().parents[2] / "schemas"
    with pytest.raises(SchemaFileError, match=r"schema nothing\.json not found") as caught:
        find_schema("nothing.json", [tmp_path])
    assert caught.value.exit_code == 3
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SchemaFileError, match="cannot load schema"):
        load_schema("broken.json", [tmp_path])


def test_printable_escapes_exactly_what_str_isprintable_refuses_among_its_characters() -> None:
    """printable() skips its pattern for a text that str.isprintable() accepts: every character the
    pattern escapes must be refused by isprintable(), or a text could come out unescaped."""
    from pyagent.report import issues

    escaped = [chr(c) for c in range(0xE000) if issues._unprintable().fullmatch(chr(c))]
    assert len(escaped) == 0x20 + 0x21 + 2 + 5 + 4 + 0x800
    assert [c for c in escaped if c.isprintable()] == []
    assert issues.printable("report.json") == "report.json"
    assert issues.printable("a\u202eb\x00") == "a\\u202eb\\u0000"
