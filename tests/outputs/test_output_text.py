"""``--format text``: exact lines for each kind of decision, colour only when asked, safe printing."""

from __future__ import annotations

from typing import Any

import pytest

from pyagent.outputs.base import printable
from pyagent.outputs.text import TextFormat

Decision = dict[str, Any]

HEAD = "device fr-brussels-0042, organisation eu-commission, evaluated 2023-03-16T09:31:02Z"
FOOT = "policy revision 2023.03.15-1, engine embedded, decision 5f0c2a9e-1111-4222-8333-444455556666"
TIKTOK = "  eu-commission/tiktok: TikTok (com.zhiliaoapp.musically), scope personal-enrolled"
MESSAGE = (
    "    TikTok (com.zhiliaoapp.musically) is banned on personal-enrolled devices of European Commission "
    "from 2023-03-15T00:00:00Z: cybersecurity"
)
REMEDIATION = "    remediation: Uninstall TikTok (com.zhiliaoapp.musically) from this device."


def lines(decision: Decision, *, color: bool = False) -> list[str]:
    text = TextFormat(color=color).render(decision, source="report.json")
    assert text.endswith("\n")
    return text.splitlines()


def test_compliant(compliant: Decision) -> None:
    assert lines(compliant) == [f"COMPLIANT: {HEAD}", "no ban applies to this device's apps", FOOT]


def test_a_denial_without_a_violation_does_not_say_no_ban_applies(compliant: Decision) -> None:
    """Another policy on an OPA may deny without naming why: the text says so, not "no ban applies"."""
    denied = {**compliant, "allow": False}
    assert lines(denied) == [
        f"NON-COMPLIANT: {HEAD}", "the decision denies the device without naming a violation", FOOT
    ]  # fmt: skip


def test_non_compliant(non_compliant: Decision) -> None:
    assert lines(non_compliant) == [
        f"NON-COMPLIANT: {HEAD}",
        "violations (1):",
        TIKTOK,
        MESSAGE,
        REMEDIATION,
        "    expired exemptions: EX-2022-009",
        FOOT,
    ]


def test_warnings_of_all_three_reasons(with_warnings: Decision) -> None:
    assert lines(with_warnings) == [
        f"COMPLIANT: {HEAD}",
        "warnings (3):",
        "  eu-council/tiktok: TikTok (com.zhiliaoapp.musically), scope corporate",
        "    reason: not in force yet: takes effect 2023-04-01T00:00:00Z",
        "    TikTok (com.zhiliaoapp.musically) is banned on corporate devices of Council of the EU "
        "from 2023-04-01T00:00:00Z: cybersecurity",
        REMEDIATION,
        "  eu-commission/tiktok-lite: TikTok Lite (com.zhiliaoapp.musically.go), scope personal-enrolled",
        "    reason: enforcement is warn: reported, not enforced",
        "    TikTok Lite (com.zhiliaoapp.musically.go) is banned: cybersecurity",
        "    remediation: Uninstall TikTok Lite.",
        "  eu-commission/tiktok-dryrun: com.ss.android.ugc.trill, scope personal-enrolled",
        "    reason: enforcement is dryrun: a trial run, not enforced",
        "    tiktok (com.ss.android.ugc.trill) is banned: cybersecurity",
        "    remediation: Uninstall tiktok (com.ss.android.ugc.trill) from this device.",
        FOOT,
    ]


def test_not_yet_effective_without_a_date(with_warnings: Decision) -> None:
    with_warnings["warnings"] = [dict(with_warnings["warnings"][0], effective_from=None)]
    assert lines(with_warnings)[3] == "    reason: not in force yet"


def test_exempted(with_exemption: Decision) -> None:
    assert lines(with_exemption) == [
        f"COMPLIANT: {HEAD}",
        "exempted (1):",
        TIKTOK,
        "    exemption EX-2023-001 until 2023-06-30T00:00:00Z, approved by DIGIT.S: "
        "official communications account",
        MESSAGE,
        FOOT,
    ]


def test_exemption_without_approver(with_exemption: Decision) -> None:
    with_exemption["exempted"][0]["exemption"]["approved_by"] = None
    assert lines(with_exemption)[3] == (
        "    exemption EX-2023-001 until 2023-06-30T00:00:00Z: official communications account"
    )


def test_display_name_evidence(display_name_evidence: Decision) -> None:
    assert lines(display_name_evidence) == [
        "NON-COMPLIANT: device be-intune-0007, organisation eu-commission, evaluated 2023-03-16T09:31:02Z",
        "violations (1):",
        TIKTOK,
        MESSAGE,
        REMEDIATION,
        "    note: matched from a display name, not a package ID: weaker evidence",
        FOOT,
    ]


def test_display_name_evidence_told_once_when_the_message_says_it(display_name_evidence: Decision) -> None:
    note = " (matched from a display name, not a package ID: weaker evidence)"
    display_name_evidence["violations"][0]["message"] += note  # as the shipped policy words it
    assert lines(display_name_evidence) == [
        "NON-COMPLIANT: device be-intune-0007, organisation eu-commission, evaluated 2023-03-16T09:31:02Z",
        "violations (1):",
        TIKTOK,
        MESSAGE + note,
        REMEDIATION,
        FOOT,
    ]


def test_errors(with_errors: Decision) -> None:
    with_errors["errors"].append({"code": "invalid_policy_data", "message": "bad", "path": "pyagent.bans"})
    assert lines(with_errors) == [
        "NON-COMPLIANT: device fr-brussels-0042, organisation unknown, evaluated 2023-03-16T09:31:02Z",
        "errors (2):",
        "  unknown_organization: organisation 'nope' is not known",
        "  invalid_policy_data: bad (at pyagent.bans)",
        FOOT,
    ]


@pytest.mark.parametrize(
    "name",
    [
        "compliant",
        "non_compliant",
        "with_warnings",
        "with_exemption",
        "display_name_evidence",
        "crafted_name",
    ],
)
def test_no_colour_unless_asked(name: str, request: pytest.FixtureRequest) -> None:
    decision = request.getfixturevalue(name)
    text = TextFormat().render(decision, source="-")
    assert "\x1b" not in text
    assert "\r" not in text


def test_colour_when_asked(non_compliant: Decision) -> None:
    out = lines(non_compliant, color=True)
    assert out[0] == f"\x1b[1;31mNON-COMPLIANT\x1b[0m: {HEAD}"
    assert out[1] == "\x1b[31mviolations (1):\x1b[0m"
    assert out[-1] == f"\x1b[2m{FOOT}\x1b[0m"
    assert lines(non_compliant, color=False)[0] == f"NON-COMPLIANT: {HEAD}"


def test_compliant_verdict_in_green(compliant: Decision) -> None:
    assert lines(compliant, color=True)[0] == f"\x1b[1;32mCOMPLIANT\x1b[0m: {HEAD}"


@pytest.mark.parametrize("color", [False, True])
def test_crafted_app_name_cannot_inject_escapes(crafted_name: Decision, color: bool) -> None:
    text = TextFormat(color=color).render(crafted_name, source="-")
    assert "\x1b[2J" not in text
    assert "\x1b]0;" not in text
    assert "\r" not in text
    assert "\u202e" not in text
    assert "\x07" not in text
    entry_lines = text.splitlines()[2:4]
    assert entry_lines == [
        "  eu-commission/tiktok: TikTok\\x1b[2J\\x0dCOMPLIANT\\u202e (com.evil\\x1b]0;pwned\\x07), "
        "scope personal-enrolled",
        "    TikTok\\x1b[2J\\x0dCOMPLIANT\\u202e (com.evil) is banned\\x0a: cybersecurity",
    ]
    if color:  # the only escape sequences are the format's own SGR codes
        stripped = text
        for code in ("\x1b[0m", "\x1b[1;31m", "\x1b[31m", "\x1b[2m"):
            stripped = stripped.replace(code, "")
        assert "\x1b" not in stripped


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain TikTok é 抖音", "plain TikTok é 抖音"),
        ("a\tb", "a\\x09b"),
        ("\x7f\x9b", "\\x7f\\x9b"),
        ("zero\u200bwidth\u2028sep", "zero\\u200bwidth\\u2028sep"),
        ("\U000e0041", "\\U000e0041"),
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown
