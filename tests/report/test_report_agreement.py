"""The fast validator (jsonschema-rs) and the reference one (jsonschema) agree on every document.

Generated corpus: valid reports, valid reports with one to three mutations (unknown fields, wrong types,
NUL, lone surrogates, over-long strings, bad enums and timestamps, ...), and arbitrary JSON shaped like a
report. Same for decisions. jsonschema-rs's own verdict is compared with the reference one; it may only
decline a document (``ValueError``, the reference then decides) when a string in it is not Unicode text.
"""

from __future__ import annotations

import copy
import json
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyagent.report import DecisionValidator, ReportValidator, decision_validator, report_validator
from pyagent.report.load import control_free

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------------------------------
# Strategies

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
no_nul_text = st.characters(exclude_characters="\x00", codec="utf-8")
#: What an identifier may hold: no C0 control character or DEL.
id_text = st.characters(exclude_characters="".join(map(chr, range(32))) + "\x7f", codec="utf-8")
identifiers = st.one_of(
    st.sampled_from(
        [
            "com.zhiliaoapp.musically",
            "com.ss.iphone.ugc.Aweme",
            "BytedancePte.Ltd.TikTok_6yccndn6064se",
            "com.microsoft.office.outlook",
            "{90160000-008C-0000-1000-0000000FF1CE}",
            "x" * 512,
        ]
    ),
    st.text(id_text, min_size=1, max_size=40),
)
names = st.one_of(st.text(no_nul_text, min_size=1, max_size=30), st.just("n" * 1024))


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 30)))
    minutes = draw(st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
    spec = draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))
    text = moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(timespec=spec)
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


def _optional(draw: st.DrawFn, target: dict[str, Any], key: str, strategy: st.SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        target[key] = draw(strategy)


extras = st.dictionaries(st.text(max_size=10), json_values, max_size=4)


@st.composite
def apps(draw: st.DrawFn) -> dict[str, Any]:
    app: dict[str, Any] = {"id": draw(identifiers)}
    _optional(draw, app, "name", names)
    _optional(draw, app, "version", names)
    _optional(draw, app, "source", identifiers)
    _optional(draw, app, "evidence", st.sampled_from(["id", "display_name"]))
    _optional(draw, app, "installer", names)
    _optional(draw, app, "user", st.integers(min_value=0, max_value=2**31 - 1))
    _optional(draw, app, "path", st.text(no_nul_text, min_size=1, max_size=60))
    _optional(draw, app, "extra", extras)
    return app


@st.composite
def valid_reports(draw: st.DrawFn) -> dict[str, Any]:
    mdm: dict[str, Any] = {"enrolled": draw(st.booleans())}
    _optional(draw, mdm, "provider", names)
    device: dict[str, Any] = {
        "id": draw(identifiers),
        "platform": draw(st.sampled_from(["android", "ios", "windows", "macos", "linux"])),
        "ownership": draw(st.sampled_from(["corporate", "personal"])),
        "mdm": mdm,
    }
    _optional(draw, device, "os_version", names)
    _optional(draw, device, "organization", identifiers)
    _optional(draw, device, "work_profile", st.booleans())
    _optional(draw, device, "extra", extras)
    report: dict[str, Any] = {
        "schema_version": draw(st.sampled_from([1, 1.0])),
        "collected_at": draw(timestamps()),
        "device": device,
        "apps": draw(st.lists(apps(), max_size=6)),
    }
    if draw(st.booleans()):
        report["collector"] = {"name": draw(identifiers), "version": draw(names)}
    _optional(draw, report, "extra", extras)
    return report


def _containers(node: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every object and array in ``node``, the root first."""
    found = [where]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        if isinstance(value, (dict, list)):
            found.extend(_containers(value, (*where, key)))
    return found


def _get(node: Any, where: tuple[Any, ...]) -> Any:
    for step in where:
        node = node[step]
    return node


BAD_VALUES = st.one_of(
    json_values,
    st.sampled_from(
        [
            "",
            "\x00",
            "a\x00b",
            "x" * 513,
            "x" * 1025,
            "x" * 4097,
            "2023-03-16",
            "2023-03-16T09:30:00Z\n",
            "\ud800",
            "com.example\udfff",
            {"\udc00": 1},
            "2023-02-29T00:00:00Z",
            "2023-03-16t09:30:00z",
            "company",
            "symbian",
            "display-name",
            1.5,
            -1,
            2**31,
            True,
            False,
            None,
            1.0,
            2,
            "1",
            [],
            {},
            {"k" * 257: 1},
            {str(i): i for i in range(257)},
        ]
    ),
)
KNOWN_KEYS = [
    "schema_version",
    "collected_at",
    "device",
    "apps",
    "collector",
    "extra",
    "id",
    "platform",
    "os_version",
    "ownership",
    "organization",
    "mdm",
    "enrolled",
    "provider",
    "work_profile",
    "name",
    "version",
    "source",
    "evidence",
    "installer",
    "user",
    "path",
    "ownershp",
    "colour",
    "\ud83d",
]


def _fresh(value: Any) -> Any:
    """A private copy: sampled values are shared objects, and an edit must never make the document cyclic."""
    return copy.deepcopy(value)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A document from ``base`` with one to three random edits: set, delete or add a key, replace an item."""
    doc = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(_containers(doc)))
        target = _get(doc, where)
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if isinstance(target, dict) and target and action in ("set", "delete"):
            key = draw(st.sampled_from(sorted(target)))
            if action == "delete":
                del target[key]
            else:
                target[key] = _fresh(draw(BAD_VALUES))
        elif isinstance(target, dict):
            target[draw(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8)))] = _fresh(
                draw(BAD_VALUES)
            )
        elif isinstance(target, list) and target and action != "add":
            target[draw(st.integers(min_value=0, max_value=len(target) - 1))] = _fresh(draw(BAD_VALUES))
        elif isinstance(target, list):
            target.append(_fresh(draw(BAD_VALUES)))
    return doc


report_shaped = st.fixed_dictionaries(
    {},
    optional={key: json_values for key in ["schema_version", "collected_at", "device", "apps", "collector"]},
)


# ------------------------------------------------------------------------------------------------------------
# Properties


def _not_unicode(node: Any) -> bool:
    """Some string (key or value) in ``node`` holds a lone surrogate."""
    if isinstance(node, str):
        return not node.isascii() and any(0xD800 <= ord(char) <= 0xDFFF for char in node)
    if isinstance(node, dict):
        return any(_not_unicode(key) or _not_unicode(value) for key, value in node.items())
    return isinstance(node, list) and any(_not_unicode(item) for item in node)


def rust_verdict(validator: ReportValidator | DecisionValidator, doc: Any) -> bool | None:
    """jsonschema-rs's own verdict, the fast path; None when it cannot read ``doc``."""
    try:
        return bool(validator._fast.is_valid(doc))
    except ValueError:
        return None


def assert_agree(validator: ReportValidator | DecisionValidator, doc: Any) -> bool:
    """jsonschema-rs and reference verdicts are equal; ``is_valid`` and ``validate`` are consistent with both.
    Returns the verdict."""
    reference = validator.reference_issues(doc)
    rust = rust_verdict(validator, doc)
    if rust is None:
        assert _not_unicode(doc), json.dumps(doc)[:2000]
    else:
        assert rust is (not reference), (rust, reference, json.dumps(doc)[:2000])
    fast = validator.is_valid(doc)
    assert fast is (not reference), (fast, reference, json.dumps(doc)[:2000])
    if control_free(json.dumps(doc)):  # the loader's shortcut applies: same verdict
        assert validator.is_valid(doc, nul_free=True) is fast
    result = validator.validate(doc)
    assert result.valid is fast
    size = validator.size_issues(doc)  # the pre-check's issues are the reference's own; if any, the refusal
    assert set(size) <= set(reference), (size, reference)
    assert result.issues == (size or reference)
    return fast


@SETTINGS
@given(valid_reports())
def test_generated_valid_reports_are_valid(doc: dict[str, Any]) -> None:
    assert assert_agree(report_validator(), doc), report_validator().reference_issues(doc)


@SETTINGS
@given(mutated(valid_reports()))
def test_validators_agree_on_mutated_reports(doc: dict[str, Any]) -> None:
    assert_agree(report_validator(), doc)


@SETTINGS
@given(st.one_of(report_shaped, json_values))
def test_validators_agree_on_arbitrary_json(doc: Any) -> None:
    assert_agree(report_validator(), doc)


@SETTINGS
@given(st.text(string.digits + "-:TZtz.+ ", max_size=32) | timestamps())
def test_validators_agree_on_timestamps(stamp: str) -> None:
    doc = {
        "schema_version": 1,
        "collected_at": stamp,
        "apps": [],
        "device": {"id": "d", "platform": "ios", "ownership": "personal", "mdm": {"enrolled": True}},
    }
    if assert_agree(report_validator(), doc):  # whatever the pattern accepts, Python can parse
        parsed = datetime.fromisoformat(stamp)
        assert parsed.tzinfo is not None and parsed.astimezone(UTC).year >= 999


# ------------------------------------------------------------------------------------------------------------
# Decisions

entries = st.fixed_dictionaries(
    {
        "rule": st.sampled_from(["eu-commission/tiktok", "eeas/tiktok-work-apps", "india/tiktok"]),
        "ban": st.sampled_from(["tiktok", "capcut"]),
        "app_id": identifiers,
        "message": names,
        "remediation": st.text(max_size=20),
        "effective_from": timestamps(),
        "scope": st.sampled_from(["corporate", "personal-enrolled", "personal-with-work-apps", "all"]),
    },
    optional={
        "app_name": st.text(max_size=10),
        "enforcement": st.sampled_from(["deny", "warn", "dryrun"]),
        "evidence": st.sampled_from(["id", "display_name"]),
    },
)


@st.composite
def decisions(draw: st.DrawFn) -> dict[str, Any]:
    violations = draw(st.lists(entries, max_size=2))
    warnings = [
        {
            **entry,
            "reason": draw(st.sampled_from(["not_yet_effective", "enforcement_warn", "enforcement_dryrun"])),
        }
        for entry in draw(st.lists(entries, max_size=2))
    ]
    exemption = {
        "id": "EX-2023-001",
        "reason": "official communications account",
        "until": draw(timestamps()),
    }
    exempted = [{**entry, "exemption": exemption} for entry in draw(st.lists(entries, max_size=1))]
    decision = {
        "device_id": draw(identifiers),
        "organization": draw(st.one_of(st.none(), identifiers)),
        "allow": not violations if draw(st.booleans()) else False,
        "violations": violations,
        "warnings": warnings,
        "exempted": exempted,
        "evaluated_at": draw(timestamps()),
        "policy_revision": draw(names),
        "engine": draw(st.sampled_from(["opa", "embedded"])),
        "decision_id": draw(names),
    }
    _optional(draw, decision, "errors", st.lists(st.fixed_dictionaries({"code": names, "message": names})))
    return decision


@SETTINGS
@given(decisions())
def test_generated_decisions_are_valid(doc: dict[str, Any]) -> None:
    assert assert_agree(decision_validator(), doc), decision_validator().reference_issues(doc)


@SETTINGS
@given(mutated(decisions()))
def test_validators_agree_on_mutated_decisions(doc: dict[str, Any]) -> None:
    assert_agree(decision_validator(), doc)
