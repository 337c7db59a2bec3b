"""Organisations resolved in the ban index (``data.pyagent_index.resolved_orgs``,
:mod:`pyagent.policy.orgindex`): exactly the clean organisations are resolved, each as the policy's own
Rego resolves it (real OPA, without the index) with no error, and decisions with the index equal
decisions without it for organisations that inherit, override, loop or carry bad rules."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyagent.policy import index
from tests.helpers import domain
from tests.helpers.opa_server import POLICY_DIRS

RULES_DIR = POLICY_DIRS[0]
TIKTOK_ANDROID = "com.zhiliaoapp.musically"
SECURITY_REASON = (
    "cybersecurity: protection against threats that could be exploited against the organisation's corporate "
    "environment"
)


def _rule(ban: str, scopes: Any, **fields: Any) -> dict[str, Any]:
    return {"ban": ban, "scopes": scopes, "effective_from": "2023-03-15T00:00:00Z", **fields}


#: Organisations covering what the index must resolve (clean ones, including one that overrides an
#: inherited bad rule) and what it must leave to the policy (every kind of error it reports).
CRAFTED_ORGS: dict[str, Any] = {
    "parent": {"rules": {"base": _rule("tiktok", ["all"]), "extra": _rule("tiktok", ["personal-enrolled"])}},
    "child": {"inherits": ["parent"], "rules": {"base": _rule("tiktok", ["corporate"])}},
    "grandchild": {"inherits": ["child"], "rules": {}},
    "empty": {},
    "warn-mode": {"rules": {"soft": {"ban": "tiktok", "scopes": ["all"], "enforcement": "warn"}}},
    "loop-a": {"inherits": ["loop-b"], "rules": {"base": _rule("tiktok", ["all"])}},
    "loop-b": {"inherits": ["loop-a"]},
    "orphan": {"inherits": ["missing"], "rules": {"base": _rule("tiktok", ["all"])}},
    "bad-ban": {"rules": {"x": _rule("no-such-ban", ["all"])}},
    "bad-scope": {"rules": {"x": _rule("tiktok", ["everyone"])}},
    "no-scopes": {"rules": {"x": _rule("tiktok", [])}},
    "bad-time": {"rules": {"x": _rule("tiktok", ["all"], effective_from="2023-13-01T00:00:00Z")}},
    "bad-enforcement": {"rules": {"x": _rule("tiktok", ["all"], enforcement="block")}},
    "inherits-bad": {"inherits": ["bad-ban"]},
    "overrides-bad": {"inherits": ["bad-ban"], "rules": {"x": _rule("tiktok", ["corporate"])}},
    "false-remediation": {"rules": {"x": _rule("tiktok", ["all"], remediation=False)}},
    "titled": {
        "title": "Titled Agency",
        "rules": {"x": _rule("odd-texts", ["all"]), "y": _rule("tiktok", ["all"])},
    },
    "numeric-title": {
        "title": 5,
        "inherits": ["titled"],
        "rules": {"z": {"ban": "tiktok", "scopes": ["all"]}},
    },
    "null-rule": {"rules": {"x": None}},
    "listed-org": [],
    "inherits-listed": {"inherits": ["listed-org"], "rules": {"y": _rule("tiktok", ["all"])}},
}
RESOLVED = {"parent", "child", "grandchild", "empty", "warn-mode", "overrides-bad", "titled", "numeric-title"}
#: A ban whose title and reason are not strings: messages fall back to the ban's name and "policy".
ODD_TEXTS_BAN = {"title": ["TikTok"], "reason": 5, "apps": {"android": [TIKTOK_ANDROID]}}
ERROR_CODES = {
    "loop-a": ["inheritance_cycle"],
    "loop-b": ["inheritance_cycle"],
    "orphan": ["unknown_parent_organization"],
    "bad-ban": ["invalid_policy_data"],
    "bad-scope": ["invalid_policy_data"],
    "no-scopes": ["invalid_policy_data"],
    "bad-time": ["invalid_policy_data"],
    "bad-enforcement": ["invalid_policy_data"],
    "inherits-bad": ["invalid_policy_data"],
    "null-rule": ["invalid_policy_data"],
    "listed-org": ["invalid_policy_data"],
    "inherits-listed": ["invalid_policy_data"],
    "false-remediation": [],  # left to the policy: no data error, but not a rule the index copies
}


@pytest.fixture(scope="module")
def crafted_data() -> dict[str, Any]:
    data = copy.deepcopy(index.data_of_dirs(list(POLICY_DIRS)))
    data["pyagent"]["organizations"] = CRAFTED_ORGS
    data["pyagent"]["bans"]["odd-texts"] = ODD_TEXTS_BAN
    return data


def _write(data: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "data.json").write_text(json.dumps(data))
    return directory


def _opa(opa_bin: str, query: str, dirs: list[Path], input_: Any) -> Any:
    args = [opa_bin, "eval", "--format", "json", "--ignore", "*_test.rego", "--stdin-input"]
    done = subprocess.run(
        [*args, *(f"-d={d}" for d in dirs), query],
        input=json.dumps(input_),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout)["result"][0]["expressions"][0]["value"]


RESOLVE_QUERY = """{name: {"chain": sort(c), "rules": r, "errors": sort([e.code | some e in errs])} |
    some name in input.orgs
    device := {"report": {"device": {"organization": name, "platform": "android"}}}
    c := data.pyagent.lib.inheritance.chain with input as device
    r := data.pyagent.lib.inheritance.rules with input as device
    errs := data.pyagent.lib.inheritance.errors | data.pyagent.lib.ruledata.errors with input as device
}"""


def test_exactly_the_clean_organisations_are_resolved_as_the_policy_resolves_them(
    opa_bin: str, crafted_data: dict[str, Any], tmp_path: Path
) -> None:
    resolved = index.build(crafted_data)["resolved_orgs"]
    assert set(resolved) == RESOLVED
    assert resolved["grandchild"]["chain"] == ["child", "grandchild", "parent"]
    assert sorted(resolved["grandchild"]["rules"]) == ["child/base", "parent/extra"]
    assert sorted(resolved["overrides-bad"]["rules"]) == ["overrides-bad/x"]
    raw = _opa(
        opa_bin,
        RESOLVE_QUERY,
        [RULES_DIR, _write(crafted_data, tmp_path / "data")],
        {"orgs": list(CRAFTED_ORGS)},
    )
    for name in RESOLVED:
        assert raw[name] == {
            "chain": resolved[name]["chain"],
            "rules": resolved[name]["rules"],
            "errors": [],
        }, name
    assert {name: raw[name]["errors"] for name in ERROR_CODES} == ERROR_CODES


def test_the_shipped_organisations_are_all_resolved(opa_bin: str, tmp_path: Path) -> None:
    shipped = index.data_of_dirs(list(POLICY_DIRS))
    resolved = index.build(shipped)["resolved_orgs"]
    names = sorted(shipped["pyagent"]["organizations"])
    assert sorted(resolved) == names
    assert resolved["eeas"]["chain"] == ["eeas", "eu-commission"]
    raw = _opa(opa_bin, RESOLVE_QUERY, list(POLICY_DIRS), {"orgs": names})
    assert raw == {
        name: {"chain": v["chain"], "rules": v["rules"], "errors": []} for name, v in resolved.items()
    }


TAILS_QUERY = """{name: tails |
    some name in input.orgs
    device := {"report": {"device": {"organization": name, "platform": "android"}}}
    tails := {key: t |
        some key, r in data.pyagent.lib.inheritance.rules
        t := data.pyagent.lib.messages.message_tail(key, r.rule)
    } with input as device
}"""


def test_the_message_tails_are_the_text_the_policy_writes_itself(
    opa_bin: str, crafted_data: dict[str, Any], tmp_path: Path
) -> None:
    """Without the index the policy writes each tail from the organisation's title, the rule's date and
    the ban's reason; the index's tails (for the resolved organisations) are the same texts."""
    resolved = index.build(crafted_data)["resolved_orgs"]
    raw = _opa(
        opa_bin, TAILS_QUERY, [RULES_DIR, _write(crafted_data, tmp_path / "data")], {"orgs": sorted(RESOLVED)}
    )
    assert raw == {name: resolved[name]["message_tails"] for name in RESOLVED}
    assert resolved["numeric-title"]["message_tails"] == {
        "numeric-title/z": f" devices of numeric-title: {SECURITY_REASON}",
        "titled/x": " devices of numeric-title from 2023-03-15T00:00:00Z: policy",
        "titled/y": f" devices of numeric-title from 2023-03-15T00:00:00Z: {SECURITY_REASON}",
    }
    assert (
        resolved["titled"]["message_tails"]["titled/x"]
        == " devices of Titled Agency from 2023-03-15T00:00:00Z: policy"
    )


def test_the_shipped_message_tails_are_the_text_the_policy_writes_itself(opa_bin: str) -> None:
    shipped = index.data_of_dirs(list(POLICY_DIRS))
    resolved = index.build(shipped)["resolved_orgs"]
    raw = _opa(opa_bin, TAILS_QUERY, list(POLICY_DIRS), {"orgs": sorted(resolved)})
    assert raw == {name: entry["message_tails"] for name, entry in resolved.items()}
    # the device's organisation is named, not the one that owns an inherited rule
    assert resolved["eeas"]["message_tails"]["eu-commission/tiktok"] == (
        f" devices of European External Action Service from 2023-03-15T00:00:00Z: {SECURITY_REASON}"
    )


def _inputs() -> list[dict[str, Any]]:
    cases = []
    for org in [*CRAFTED_ORGS, "nobody"]:
        for ownership, enrolled, apps in [
            ("corporate", True, [TIKTOK_ANDROID]),
            ("personal", True, [TIKTOK_ANDROID, "com.example.notes"]),
            ("personal", False, [TIKTOK_ANDROID, "com.microsoft.teams"]),
        ]:
            for at in ["2023-03-14T23:59:59Z", "2023-03-16T09:30:00Z"]:
                report = domain.make_report(org, "android", ownership, enrolled, apps)
                cases.append({"at": at, "report": report})
    return cases


def _case_key(case: dict[str, Any]) -> tuple[str, str, bool, str]:
    device = case["report"]["device"]
    return device["organization"], device["ownership"], device["mdm"]["enrolled"], case["at"]


def test_opa_decides_the_same_with_and_without_the_resolved_organisations(
    opa_bin: str, crafted_data: dict[str, Any], tmp_path: Path
) -> None:
    data_dir = _write(crafted_data, tmp_path / "data")
    index_dir = index.write_root(crafted_data, tmp_path / "indexed")
    query = "[d | some c in input.cases; d := data.pyagent.decision with input as c]"
    cases = {"cases": _inputs()}
    without = _opa(opa_bin, query, [RULES_DIR, data_dir], cases)
    with_index = _opa(opa_bin, query, [RULES_DIR, data_dir, index_dir], cases)
    assert with_index == without
    decided = {_case_key(c): d for c, d in zip(cases["cases"], without, strict=True)}
    enrolled_now = decided["grandchild", "personal", True, "2023-03-16T09:30:00Z"]
    assert [v["rule"] for v in enrolled_now["violations"]] == ["parent/extra"]
    corporate_now = decided["grandchild", "corporate", True, "2023-03-16T09:30:00Z"]
    assert [v["rule"] for v in corporate_now["violations"]] == ["child/base"]
    corporate_before = decided["grandchild", "corporate", True, "2023-03-14T23:59:59Z"]
    assert [(w["rule"], w["reason"]) for w in corporate_before["warnings"]] == [
        ("child/base", "not_yet_effective")
    ]
    looping = decided["loop-a", "corporate", True, "2023-03-16T09:30:00Z"]
    assert [e["code"] for e in looping["errors"]] == ["inheritance_cycle"]
    assert looping["allow"] is False
    plain = decided["false-remediation", "corporate", True, "2023-03-16T09:30:00Z"]
    assert plain["violations"][0]["remediation"] == (
        "Uninstall TikTok (com.zhiliaoapp.musically) from this device."
    )


def test_an_organisation_edited_after_the_index_was_built_is_refused(crafted_data: dict[str, Any]) -> None:
    built = index.build(crafted_data)
    edited = copy.deepcopy(crafted_data)
    edited["pyagent"]["organizations"]["child"]["rules"]["base"]["scopes"] = ["all"]
    with pytest.raises(
        index.StaleIndexError, match=r"other policy data than the data beside it \(its organisations differ;"
    ):
        index.check({**edited, index.ROOT: built})
    reworded = copy.deepcopy(crafted_data)
    reworded["pyagent"]["bans"]["tiktok"]["reason"] = "another reason"  # the resolved messages quote it
    with pytest.raises(
        index.StaleIndexError, match=r"other policy data than the data beside it \(its organisations differ;"
    ):
        index.check({**reworded, index.ROOT: built})
    tampered = copy.deepcopy(built)
    tampered["resolved_orgs"]["loop-a"] = {"chain": ["loop-a"], "rules": {}}
    with pytest.raises(index.StaleIndexError, match="edited after it was built"):
        index.check({**crafted_data, index.ROOT: tampered})


def test_a_slash_in_a_name_is_left_to_the_policy_which_refuses_the_conflict(
    opa_bin: str, crafted_data: dict[str, Any], tmp_path: Path
) -> None:
    """ "a/b" inherits "a": its rule "c" and "a"'s rule "b/c" are both "a/b/c". The policy fails the
    evaluation (a conflict); the index must not resolve either organisation and hide one rule."""
    data = copy.deepcopy(crafted_data)
    data["pyagent"]["organizations"] = {
        "a": {"rules": {"b/c": _rule("tiktok", ["all"])}},
        "a/b": {"inherits": ["a"], "rules": {"c": _rule("tiktok", ["personal-enrolled"])}},
    }
    assert index.build(data)["resolved_orgs"] == {}
    data_dir = _write(data, tmp_path / "data")
    case = {
        "at": "2023-03-16T09:30:00Z",
        "report": domain.make_report("a/b", "android", "corporate", True, [TIKTOK_ANDROID]),
    }
    for dirs in ([RULES_DIR, data_dir], [RULES_DIR, data_dir, index.write_root(data, tmp_path / "indexed")]):
        args = [opa_bin, "eval", "--format", "json", "--ignore", "*_test.rego", "--stdin-input"]
        done = subprocess.run(
            [*args, *(f"-d={d}" for d in dirs), "data.pyagent.decision"],
            input=json.dumps(case),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert (done.returncode, "eval_conflict_error" in done.stdout + done.stderr) == (2, True)


def test_an_error_outside_the_resolved_organisation_still_reaches_the_decision(
    opa_bin: str, crafted_data: dict[str, Any], tmp_path: Path
) -> None:
    """With the index, a well-formed report of a resolved organisation takes the policy's shortcut to
    "no errors"; an exemption without `until` (a data error of its own) must still be reported there,
    as without the index."""
    data = copy.deepcopy(crafted_data)
    data["pyagent"]["exemptions"] = {
        "EX-open": {"device_id": "elsewhere", "organization": "parent", "ban": "tiktok", "reason": "r"}
    }
    data_dir = _write(data, tmp_path / "data")
    index_dir = index.write_root(data, tmp_path / "indexed")
    case = {
        "at": "2023-03-16T09:30:00Z",
        "report": domain.make_report("child", "android", "corporate", True, [TIKTOK_ANDROID]),
    }
    without = _opa(opa_bin, "data.pyagent.decision", [RULES_DIR, data_dir], case)
    with_index = _opa(opa_bin, "data.pyagent.decision", [RULES_DIR, data_dir, index_dir], case)
    assert with_index == without
    assert [(e["code"], e["path"]) for e in with_index["errors"]] == [
        ("invalid_policy_data", "pyagent.exemptions.EX-open.until")
    ]
    assert with_index["allow"] is False
    clean = _opa(
        opa_bin, "data.pyagent.decision", [RULES_DIR, _write(crafted_data, tmp_path / "clean")], case
    )
    assert (clean["errors"], [v["rule"] for v in clean["violations"]]) == ([], ["child/base"])


def _malformed_cases() -> dict[str, dict[str, Any]]:
    """A corporate phone of the resolved organisation "child" with TikTok, each case breaking what the
    policy's shortcut to "no errors" relies on: a valid time and a well-formed report."""
    report = domain.make_report("child", "android", "corporate", True, [TIKTOK_ANDROID])
    at = "2023-03-16T09:30:00Z"
    device = report["device"]
    return {
        "invalid time": {"at": "yesterday", "report": report},
        "no time": {"report": report},
        "apps not an array": {"at": at, "report": {**report, "apps": {"0": report["apps"][0]}}},
        "numeric app id": {"at": at, "report": {**report, "apps": [{"id": 5}, *report["apps"]]}},
        "platform misspelt": {"at": at, "report": {**report, "device": {**device, "platform": "Android"}}},
        "enrolment as text": {
            "at": at,
            "report": {**report, "device": {**device, "mdm": {"enrolled": "true"}}},
        },
    }


def test_a_malformed_input_for_a_resolved_organisation_is_an_error_with_the_index_too(
    opa_bin: str, crafted_data: dict[str, Any], tmp_path: Path
) -> None:
    data_dir = _write(crafted_data, tmp_path / "data")
    index_dir = index.write_root(crafted_data, tmp_path / "indexed")
    cases = _malformed_cases()
    query = "[d | some c in input.cases; d := data.pyagent.decision with input as c]"
    without = _opa(opa_bin, query, [RULES_DIR, data_dir], {"cases": list(cases.values())})
    with_index = _opa(opa_bin, query, [RULES_DIR, data_dir, index_dir], {"cases": list(cases.values())})
    assert with_index == without
    codes = {name: [e["code"] for e in d["errors"]] for name, d in zip(cases, with_index, strict=True)}
    assert codes == {
        "invalid time": ["invalid_time"],
        "no time": ["invalid_time"],
        "apps not an array": ["invalid_input"],
        "numeric app id": ["invalid_input"],
        "platform misspelt": ["invalid_input"],
        "enrolment as text": ["invalid_input"],
    }
    assert [d["allow"] for d in with_index] == [False] * len(cases)


def test_a_message_tail_that_is_not_text_never_hides_the_breach(
    opa_bin: str, crafted_data: dict[str, Any], tmp_path: Path
) -> None:
    """An index edited by hand (OPA does not check its digest): the policy writes the text itself."""
    tampered = index.build(crafted_data)
    tampered["resolved_orgs"]["child"]["message_tails"]["child/base"] = 5
    index_dir = tmp_path / "indexed" / index.ROOT
    index_dir.mkdir(parents=True)
    (index_dir / "data.json").write_text(json.dumps(tampered))
    case = {"at": "2023-03-16T09:30:00Z", "report": _malformed_cases()["invalid time"]["report"]}
    decided = _opa(
        opa_bin,
        "data.pyagent.decision",
        [RULES_DIR, _write(crafted_data, tmp_path / "data"), index_dir.parent],
        case,
    )
    assert (decided["allow"], [v["rule"] for v in decided["violations"]]) == (False, ["child/base"])
    assert decided["violations"][0]["message"].endswith(
        f"devices of child from 2023-03-15T00:00:00Z: {SECURITY_REASON}"
    )
