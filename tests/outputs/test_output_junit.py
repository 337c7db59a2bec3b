"""``--format junit``: well-formed XML, exact counts, one testcase per rule and app."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from pyagent.outputs.junit import JunitFormat

Decision = dict[str, Any]

MESSAGE = (
    "TikTok (com.zhiliaoapp.musically) is banned on personal-enrolled devices of European Commission "
    "from 2023-03-15T00:00:00Z: cybersecurity"
)


def render(decision: Decision, source: str = "reports/device.json") -> tuple[str, ET.Element]:
    text = JunitFormat().render(decision, source=source)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')
    assert text.endswith("</testsuites>\n")
    return text, ET.fromstring(text.encode("utf-8"))  # raises on any well-formedness error


def suite_of(root: ET.Element) -> ET.Element:
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    assert suites[0].get("name") == "pyagent"
    return suites[0]


def counts(element: ET.Element) -> dict[str, str | None]:
    return {key: element.get(key) for key in ("tests", "failures", "errors", "skipped")}


def expect_counts(root: ET.Element, tests: int, failures: int, errors: int, skipped: int) -> None:
    want = {"tests": str(tests), "failures": str(failures), "errors": str(errors), "skipped": str(skipped)}
    suite = suite_of(root)
    assert counts(root) == want
    assert counts(suite) == want
    cases = suite.findall("testcase")
    assert len(cases) == tests
    assert sum(1 for c in cases if c.find("failure") is not None) == failures
    assert sum(1 for c in cases if c.find("error") is not None) == errors
    assert sum(1 for c in cases if c.find("skipped") is not None) == skipped


def case_props(case: ET.Element) -> dict[str, str | None]:
    return {p.get("name") or "": p.get("value") for p in case.findall("properties/property")}


def test_compliant_has_one_passing_compliance_case(compliant: Decision) -> None:
    _, root = render(compliant)
    expect_counts(root, tests=1, failures=0, errors=0, skipped=0)
    suite = suite_of(root)
    (case,) = suite.findall("testcase")
    assert (case.get("classname"), case.get("name"), case.get("file")) == (
        "pyagent",
        "compliance",
        "reports/device.json",
    )
    assert list(case) == [case.find("system-out")]
    assert suite.get("hostname") == "fr-brussels-0042"
    assert suite.get("timestamp") == "2023-03-16T09:31:02"
    assert case_props(suite) == {
        "device_id": "fr-brussels-0042",
        "organization": "eu-commission",
        "allow": "true",
        "evaluated_at": "2023-03-16T09:31:02Z",
        "policy_revision": "2023.03.15-1",
        "engine": "embedded",
        "decision_id": "5f0c2a9e-1111-4222-8333-444455556666",
        "source": "reports/device.json",
    }


def test_non_compliant_is_a_failure(non_compliant: Decision) -> None:
    _, root = render(non_compliant)
    expect_counts(root, tests=1, failures=1, errors=0, skipped=0)
    (case,) = suite_of(root).findall("testcase")
    assert (case.get("classname"), case.get("name")) == ("eu-commission/tiktok", "com.zhiliaoapp.musically")
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("type") == "eu-commission/tiktok"
    assert failure.get("message") == MESSAGE
    assert (failure.text or "").splitlines() == [
        MESSAGE,
        "remediation: Uninstall TikTok (com.zhiliaoapp.musically) from this device.",
        "scope: personal-enrolled",
        "expired exemptions: EX-2022-009",
    ]
    assert case_props(case) == {"app_name": "TikTok"}
    assert case_props(suite_of(root))["allow"] == "false"


def test_warnings_are_skipped(with_warnings: Decision) -> None:
    _, root = render(with_warnings)
    expect_counts(root, tests=3, failures=0, errors=0, skipped=3)
    cases = suite_of(root).findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("eu-council/tiktok", "com.zhiliaoapp.musically"),
        ("eu-commission/tiktok-lite", "com.zhiliaoapp.musically.go"),
        ("eu-commission/tiktok-dryrun", "com.ss.android.ugc.trill"),
    ]
    skipped = [c.find("skipped") for c in cases]
    assert [s.get("message") if s is not None else None for s in skipped] == [
        "warning: not in force yet: takes effect 2023-04-01T00:00:00Z: TikTok (com.zhiliaoapp.musically) "
        "is banned on corporate devices of Council of the EU from 2023-04-01T00:00:00Z: cybersecurity",
        "warning: enforcement is warn: reported, not enforced: "
        "TikTok Lite (com.zhiliaoapp.musically.go) is banned: cybersecurity",
        "warning: enforcement is dryrun: a trial run, not enforced: "
        "tiktok (com.ss.android.ugc.trill) is banned: cybersecurity",
    ]
    assert (cases[2].findtext("system-out") or "").splitlines() == [
        "warning: enforcement is dryrun: a trial run, not enforced",
        "tiktok (com.ss.android.ugc.trill) is banned: cybersecurity",
        "remediation: Uninstall tiktok (com.ss.android.ugc.trill) from this device.",
        "scope: personal-enrolled",
    ]
    assert case_props(cases[2]) == {}  # app_name is null


def test_exempted_is_a_passing_case_with_the_exemption(with_exemption: Decision) -> None:
    _, root = render(with_exemption)
    expect_counts(root, tests=1, failures=0, errors=0, skipped=0)
    (case,) = suite_of(root).findall("testcase")
    assert case_props(case) == {
        "app_name": "TikTok",
        "exemption": "EX-2023-001",
        "exemption_until": "2023-06-30T00:00:00Z",
    }
    assert (case.findtext("system-out") or "").splitlines() == [
        "exempted by EX-2023-001 until 2023-06-30T00:00:00Z, approved by DIGIT.S: "
        "official communications account",
        MESSAGE,
        "scope: personal-enrolled",
    ]


def test_display_name_evidence_noted(display_name_evidence: Decision) -> None:
    _, root = render(display_name_evidence)
    expect_counts(root, tests=1, failures=1, errors=0, skipped=0)
    (case,) = suite_of(root).findall("testcase")
    assert case_props(case) == {"app_name": "TikTok", "evidence": "display_name"}
    text = case.findtext("failure") or ""
    assert text.splitlines()[-1] == "note: matched from a display name, not a package ID: weaker evidence"


def test_mixed_counts_are_exact(
    non_compliant: Decision, with_warnings: Decision, with_exemption: Decision
) -> None:
    mixed = dict(non_compliant, warnings=with_warnings["warnings"], exempted=with_exemption["exempted"] * 2)
    mixed["errors"] = [{"code": "invalid_policy_data", "message": "rule x names no scopes", "path": "p.q"}]
    _, root = render(mixed)
    expect_counts(root, tests=7, failures=1, errors=1, skipped=3)
    error_case = suite_of(root).findall("testcase")[-1]
    error = error_case.find("error")
    assert error is not None
    assert (error_case.get("name"), error.get("type"), error.get("message"), error.text) == (
        "error invalid_policy_data",
        "invalid_policy_data",
        "rule x names no scopes",
        "at p.q",
    )


def test_errors_only(with_errors: Decision) -> None:
    _, root = render(with_errors)
    expect_counts(root, tests=1, failures=0, errors=1, skipped=0)


def test_deny_without_violation_fails_the_compliance_case(with_warnings: Decision) -> None:
    with_warnings["allow"] = False
    _, root = render(with_warnings)
    expect_counts(root, tests=4, failures=1, errors=0, skipped=3)
    assert suite_of(root).findall("testcase")[-1].get("name") == "compliance"


def test_compliant_with_only_warnings_has_no_compliance_case(with_warnings: Decision) -> None:
    _, root = render(with_warnings)
    assert "compliance" not in [c.get("name") for c in suite_of(root).findall("testcase")]


@pytest.mark.parametrize("source", ["-", "this machine", 'C:\\reports\\a "b" <c>.json'])
def test_source_is_the_file_attribute(compliant: Decision, source: str) -> None:
    _, root = render(compliant, source=source)
    (case,) = suite_of(root).findall("testcase")
    assert case.get("file") == source


def test_crafted_strings_stay_well_formed(crafted_name: Decision) -> None:
    text, root = render(crafted_name)
    assert "\x1b" not in text
    assert "\x07" not in text
    (case,) = suite_of(root).findall("testcase")
    assert case.get("name") == "com.evil\\x1b]0;pwned\\x07"
    assert case_props(case)["app_name"] == "TikTok\\x1b[2J\\x0dCOMPLIANT\\u202e"
