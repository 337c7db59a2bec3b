"""Property-based fuzzing of the whole check path: crafted reports (mutations of real examples,
NUL and homoglyphs in ids and names, huge and odd values) never crash, never show a traceback, and
never read as allow unless the report is valid and the policy allows it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pyagent.cli import cli
from pyagent.decide import decide
from pyagent.engines.base import Engine, EngineSettings
from pyagent.engines.select import build_engine
from pyagent.errors import InvalidInputError
from pyagent.report.load import parse_report
from pyagent.report.schemas import load_schema
from pyagent.report.validate import _reference_validator_class
from tests.helpers.fuzz import FUZZ

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "reports").glob("*.json"))
BASES = [json.loads(p.read_text()) for p in EXAMPLES]
#: jsonschema, with ECMA-262's "$" (end of text) as the schema says: Python's also matches before a
#: final line break, and took "0\n" for an identifier without control characters.
REFERENCE = _reference_validator_class()(load_schema("device-report.schema.json"))
DECISION = Draft202012Validator(load_schema("decision.schema.json"))
AT = "2023-03-16T09:30:00Z"
COUNTS = {"cases": 0, "valid": 0, "invalid": 0}

HOMOGLYPHS = {"o": "\u043e", "a": "\u0430", "c": "\u0441", "e": "\u0435", "p": "\u0440"}
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
tricky_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            "\x00",
            "com.zhiliaoapp.musically\x00",
            "com.zhiliaoapp.musically\n",
            "TikTok\x1b[2J",
            "x" * 513,
            "\u202etiktok",
            "com.zhiliaoapp.musically ",
        ]
    ),
)


def homoglyph(text: str, data: st.DataObject) -> str:
    swappable = [i for i, ch in enumerate(text) if ch in HOMOGLYPHS]
    if not swappable:
        return text
    i = data.draw(st.sampled_from(swappable))
    return text[:i] + HOMOGLYPHS[text[i]] + text[i + 1 :]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def mutate(report: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = json.loads(json.dumps(report))
    for _ in range(data.draw(st.integers(1, 3))):
        target = data.draw(st.sampled_from(list(paths(doc))[1:]))
        parent = doc
        for step in target[:-1]:
            parent = parent[step]
        key = target[-1]
        action = data.draw(st.sampled_from(["replace", "delete", "text", "homoglyph", "add"]))
        if action == "replace":
            parent[key] = data.draw(json_value)
        elif action == "delete":
            del parent[key]
        elif action == "text":
            parent[key] = data.draw(tricky_text)
        elif action == "homoglyph" and isinstance(parent[key], str):
            parent[key] = homoglyph(parent[key], data)
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=12))] = data.draw(json_value)
    return doc


@pytest.fixture(scope="module", autouse=True)
def _write_counts() -> Iterator[None]:
    """The fuzz figures for the closing note, in build/fuzz-counts.json."""
    yield
    out = Path(__file__).resolve().parents[2] / "build" / "fuzz-counts.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(COUNTS) + "\n")


@pytest.fixture(scope="module")
def engine(policy_bundle: Path) -> Iterator[Engine]:
    with build_engine(EngineSettings(engine="embedded", bundle=str(policy_bundle))) as built:
        yield built


@FUZZ
@given(st.data())
def test_crafted_reports_never_crash_and_never_allow_when_invalid(
    engine: Engine, data: st.DataObject
) -> None:
    doc = mutate(data.draw(st.sampled_from(BASES)), data)
    raw = json.dumps(doc, ensure_ascii=data.draw(st.booleans())).encode()
    COUNTS["cases"] += 1
    reference_valid = REFERENCE.is_valid(doc)
    try:
        report = parse_report(raw, "fuzz.json")
    except InvalidInputError as err:
        COUNTS["invalid"] += 1
        assert not reference_valid or "duplicate" in str(err)
        assert "\n" not in str(err)
        return
    assert reference_valid
    COUNTS["valid"] += 1
    decision = decide(engine, report, at=AT)
    DECISION.validate(decision)
    assert decision["allow"] is (not decision["violations"] and not decision["errors"])


@FUZZ
@given(st.data())
def test_homoglyph_ids_never_match_and_real_ids_always_do(engine: Engine, data: st.DataObject) -> None:
    real = "com.zhiliaoapp.musically"
    fake = homoglyph(real, data)
    name = data.draw(tricky_text.filter(lambda t: t and "\x00" not in t and len(t) <= 1024))
    base = json.loads(EXAMPLES[[p.name for p in EXAMPLES].index("india-personal-lite.json")].read_text())
    base["apps"] = [{"id": fake, "name": "TikTok"}]
    assert decide(engine, base, at=AT)["allow"] is True
    base["apps"] = [{"id": real, "name": name}]
    assert [v["app_id"] for v in decide(engine, base, at=AT)["violations"]] == [real]


@FUZZ
@given(st.data())
def test_cli_exit_codes_on_crafted_input(policy_bundle: Path, data: st.DataObject) -> None:
    doc = mutate(data.draw(st.sampled_from(BASES)), data)
    result = CliRunner().invoke(cli, ["check", "-", "--at", AT, "--format", "json"], input=json.dumps(doc))
    assert result.exit_code in (0, 1, 2), result.stderr
    assert "Traceback" not in result.stderr
    if result.exit_code in (0, 1):  # decided: a valid report, and the exit code is the verdict's
        assert REFERENCE.is_valid(doc)
        decision = json.loads(result.stdout)
        verdict = not decision["violations"] and not decision["errors"]
        assert decision["allow"] is (result.exit_code == 0) is verdict
    else:  # refused, nothing decided (a schema error lists each issue after its first line)
        assert result.stdout == "" and result.stderr.startswith("pyagent: error: "), result.stderr
