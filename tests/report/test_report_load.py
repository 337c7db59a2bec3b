"""Loading reports: every bad input is a one-line InvalidInputError naming the file, never a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyagent.errors import InvalidInputError
from pyagent.report import (
    ReportInvalidError,
    load_report,
    max_report_bytes,
    parse_report,
    read_report_bytes,
    source_name,
)

CONTRACT_TEXT = (
    Path(__file__).resolve().parents[2] / "examples/reports/eu-commission-personal-enrolled-tiktok.json"
)


def _write(tmp_path: Path, content: bytes | str, name: str = "report.json") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _error(source: str | Path, stdin: Any = None) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        load_report(source, stdin)
    err = caught.value
    assert err.exit_code == 2
    assert "\n" not in str(err) and "Traceback" not in str(err)
    return err


def test_loads_a_valid_report(contract_report: dict[str, Any]) -> None:
    assert load_report(CONTRACT_TEXT) == contract_report
    assert load_report(str(CONTRACT_TEXT)) == contract_report


def test_reads_stdin(contract_report: dict[str, Any]) -> None:
    assert load_report("-", io.BytesIO(json.dumps(contract_report).encode())) == contract_report
    assert str(_error("-", io.BytesIO(b""))) == "<stdin>: report is empty"
    assert source_name("-") == "<stdin>"


DUPLICATE = "; a key may appear only once in an object"
SURROGATE = " escape (\\ud800-\\udfff), which is not Unicode text"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "report.json: report is empty"),
        (b" \n\t\r\n", "report.json: report is empty"),
        (
            b'{"schema_version": 1, "device": {"id": "x"',
            "report.json: invalid JSON at line 1, column 43: "
            "Expecting ',' delimiter (the document ends too early: truncated?)",
        ),
        (
            b'{"schema_version": 1, "device": {"id": "fr-brussels-00',
            "report.json: invalid JSON at line 1, column 40: "
            "Unterminated string starting here (the document ends too early: truncated?)",
        ),
        (
            b'{"a": 1,\n  "b": 2\n  "c": 3}',
            "report.json: invalid JSON at line 3, column 3: Expecting ',' delimiter",
        ),
        (
            b"{'schema_version': 1}",
            "report.json: invalid JSON at line 1, column 2: "
            "Expecting property name enclosed in double quotes",
        ),
        (b'{"a": 1} trailing', "report.json: invalid JSON at line 1, column 10: Extra data"),
        (
            b'{"a": "tab\there"}',
            "report.json: invalid JSON at line 1, column 11: Invalid control character here",
        ),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "report.json: report is binary, not JSON text (NUL byte at offset 8)",
        ),
        (b'{"name": "caf\xe9"}', "report.json: report is not UTF-8 text (byte 0xe9 at offset 13)"),
        ('{"a": 1}'.encode("utf-16"), "report.json: report is UTF-16 or UTF-32 encoded; save it as UTF-8"),
        (b'{"a": NaN}', "report.json: invalid JSON: NaN is not valid JSON"),
        (b'{"a": -Infinity}', "report.json: invalid JSON: -Infinity is not valid JSON"),
        (b'{"a": 1e999}', "report.json: invalid JSON: number 1e999 is out of range"),
        (b'{"a": ' + b"9" * 5000 + b"}", "report.json: invalid JSON: a number has too many digits"),
        (b"[" * 100_000 + b"]" * 100_000, "report.json: invalid JSON: nested too deeply"),
        (b"[]", "report.json: a report must be a JSON object, got an array"),
        (b'"report"', "report.json: a report must be a JSON object, got a string"),
        (
            b'{"device": {"ownership": "corporate", "ownership": "personal"}}',
            "report.json: $.device.ownership: duplicate key; a key may appear only once in an object",
        ),
        (
            b'{"apps": [{"id": "a"}, {"id": "b", "id": "b"}]}',
            "report.json: $.apps[1].id: duplicate key" + DUPLICATE,
        ),
        (b'{"a": 1, "a": 1}', "report.json: $.a: duplicate key" + DUPLICATE),
        (b'{"extra": {"x y": {"k": 1, "k": 2}}}', 'report.json: $.extra["x y"].k: duplicate key' + DUPLICATE),
        (
            b'{"apps": [{"id": "\\ud800"}]}',
            "report.json: $.apps[0].id: contains an unpaired UTF-16 surrogate" + SURROGATE,
        ),
        (
            b'{"extra": {"\\udfff": 1}}',
            "report.json: $.extra: contains an unpaired UTF-16 surrogate" + SURROGATE,
        ),
    ],
)
def test_rejects_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, content)
    err = _error("report.json")
    assert str(err) == message
    assert not isinstance(err, ReportInvalidError)


def test_accepts_utf8_bom_and_surrogate_pairs(tmp_path: Path, contract_report: dict[str, Any]) -> None:
    contract_report["apps"][0]["name"] = "TikTok \U0001f3b5"
    text = json.dumps(contract_report)  # ensure_ascii: the emoji becomes the pair \ud83c\udfb5
    assert "\\ud83c\\udfb5" in text
    assert load_report(_write(tmp_path, b"\xef\xbb\xbf" + text.encode())) == contract_report


def test_schema_errors_carry_every_issue(tmp_path: Path, contract_report: dict[str, Any]) -> None:
    contract_report["device"]["ownershp"] = contract_report["device"].pop("ownership")
    contract_report["apps"][0]["id"] = "com.zhiliaoapp\u0000.musically"
    path = _write(tmp_path, json.dumps(contract_report))
    err = _error(path)
    assert isinstance(err, ReportInvalidError)
    assert err.source == str(path)
    assert [issue.path for issue in err.issues] == ["$.apps[0].id", "$.device.ownership", "$.device.ownershp"]
    assert str(err) == (
        f"{path}: report does not match the schema (3 errors); first: $.apps[0].id: must not "
        'contain a NUL character (\\u0000), found at position 14: "com.zhiliaoapp\\u0000.musically"'
    )
    assert (
        err.lines()[1] == f"{path}: $.device.ownership: required field is missing; expected one of "
        '"corporate", "personal"'
    )
    assert all("\n" not in line for line in err.lines())


def test_escaped_backslash_before_u0000_is_not_a_nul(tmp_path: Path, contract_report: dict[str, Any]) -> None:
    contract_report["apps"][0]["name"] = "C:\\u0000"  # a backslash, then the text u0000
    text = json.dumps(contract_report)
    assert '"C:\\\\u0000"' in text
    assert load_report(_write(tmp_path, text)) == contract_report


def test_validation_can_be_skipped(tmp_path: Path) -> None:
    assert load_report(_write(tmp_path, b'{"anything": true}'), validate=False) == {"anything": True}


def test_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert str(_error(missing)) == f"{missing}: report not found"
    assert str(_error(tmp_path)) == f"{tmp_path}: report is a directory, not a regular file"


def test_file_name_is_printed_safely(tmp_path: Path) -> None:
    path = _write(tmp_path, b"", "evil\x1b[31m\nname.json")
    assert str(_error(path)).endswith("evil\\u001b[31m\\u000aname.json: report is empty")


def test_sparse_file_over_64_mib_is_rejected_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(max_report_bytes() + 1)  # sparse: no disk blocks, no 128 MiB in memory
    assert str(_error(path)) == f"{path}: report is larger than 128 MiB"


class _Endless(io.RawIOBase):
    """A stream of spaces that never ends, for the stdin / pipe case where no size is known up front."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        view[:] = b" " * len(view)
        self.served += len(view)
        return len(view)


def test_stream_over_64_mib_is_cut_off() -> None:
    stream = _Endless()
    assert str(_error("-", stream)) == "<stdin>: report is larger than 128 MiB"
    assert max_report_bytes() < stream.served <= max_report_bytes() + 1


def test_limit_is_inclusive(tmp_path: Path) -> None:
    _, data = read_report_bytes(_write(tmp_path, b"x" * 1000), limit=1000)
    assert len(data) == 1000
    with pytest.raises(InvalidInputError, match=r"^<stdin>: report is larger than 1000 bytes$"):
        read_report_bytes("-", io.BytesIO(b"x" * 1001), limit=1000)


def test_fifty_thousand_apps_load(tmp_path: Path, make_report: Any) -> None:
    """CONTRACT section 1: 50,000 apps with identifiers of 512 characters are valid, with names at their own
    bound (1,024 characters) too."""
    report = make_report()
    report["apps"] = [
        {"id": f"com.example.{i}.".ljust(512, "x"), "name": f"Example {i}".ljust(1024, "e")}
        for i in range(50_000)
    ]
    path = _write(tmp_path, json.dumps(report))
    assert path.stat().st_size < max_report_bytes()
    assert len(load_report(path)["apps"]) == 50_000


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    try:
        parse_report(data, "fuzz.json")
    except InvalidInputError as err:
        assert str(err).startswith("fuzz.json: ") and "\n" not in str(err)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_reports_never_escape_as_other_errors(data: st.DataObject) -> None:
    text = CONTRACT_TEXT.read_bytes()
    start = data.draw(st.integers(min_value=0, max_value=len(text)))
    end = data.draw(st.integers(min_value=start, max_value=min(len(text), start + 8)))
    damaged = text[:start] + data.draw(st.binary(max_size=4)) + text[end:]
    try:
        assert isinstance(parse_report(damaged, "fuzz.json"), dict)
    except InvalidInputError as err:
        assert str(err).startswith("fuzz.json: ") and "\n" not in str(err)


def test_a_nul_in_an_otherwise_valid_report_is_refused(
    tmp_path: Path, contract_report: dict[str, Any]
) -> None:
    """The loader skips the schema's per-string NUL patterns only when the JSON text cannot hold a NUL
    (no \\u0000 escape; a raw one is not JSON): with the escape, the NUL is found."""
    contract_report["apps"][0]["name"] = "Tik\u0000Tok"
    escaped = _error(_write(tmp_path, json.dumps(contract_report)))
    assert isinstance(escaped, ReportInvalidError)
    assert [issue.path for issue in escaped.issues] == ["$.apps[0].name"]
    raw_text = json.dumps(contract_report).replace("\\u0000", "\x00").encode()
    raw = _error(_write(tmp_path, raw_text))
    assert str(raw).endswith(f": report is binary, not JSON text (NUL byte at offset {raw_text.find(0)})")


def test_the_nul_free_schema_keeps_every_string_non_empty(contract_report: dict[str, Any]) -> None:
    """Without its NUL and control patterns the schema still refuses empty strings where the pattern
    did (``+``)."""
    from pyagent.report.validate import (
        CONTROL_FREE_PATTERN,
        NUL_FREE_PATTERN,
        _without_nul_patterns,
        report_validator,
    )

    schema = report_validator().schema
    stripped = _without_nul_patterns(schema)
    assert NUL_FREE_PATTERN not in json.dumps(stripped).replace("\\\\", "\\")
    assert CONTROL_FREE_PATTERN not in json.dumps(stripped).replace("\\\\", "\\")
    patterns = {"identifier": CONTROL_FREE_PATTERN, "name": NUL_FREE_PATTERN, "path": NUL_FREE_PATTERN}
    for name, pattern in patterns.items():
        before, after = schema["$defs"][name], stripped["$defs"][name]
        assert before["pattern"] == pattern and "pattern" not in after, name
        assert after["minLength"] == max(before.get("minLength", 0), 1), name
    assert report_validator().is_valid(contract_report, nul_free=True) is True
    contract_report["apps"][0]["id"] = ""
    assert (
        report_validator().is_valid(contract_report, nul_free=True)
        is report_validator().is_valid(contract_report)
        is False
    )
