"""``--format table``: exact aligned rows, the verdict line, and cells that cannot break the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from pyagent.outputs.table import TableFormat, display_width
from tests.outputs.conftest import TIKTOK_REMEDIATION, decision, entry

Decision = dict[str, Any]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "reports"

VERDICT = "device fr-brussels-0042, organisation eu-commission"


def lines(document: Decision) -> list[str]:
    text = TableFormat().render(document, source="report.json")
    assert text.endswith("\n")
    return text.splitlines()


def test_compliant_without_rows_is_the_verdict_alone(compliant: Decision) -> None:
    assert lines(compliant) == [f"COMPLIANT: {VERDICT}: 0 violations, 0 warnings, 0 exempted"]


def test_every_kind_of_row_aligned() -> None:
    every_kind = decision(
        allow=False,
        violations=[entry(message="TikTok is banned", evidence="display_name", scope="corporate")],
        warnings=[entry(rule="eu-commission/lite", app_id="com.zhiliaoapp.musically.go", app_name=None,
                        message="Lite is banned", reason="enforcement_warn", remediation="By June.")],
        exempted=[entry(message="waived", exemption={"id": "EX-2023-001", "until": "2023-06-30T00:00:00Z"})],
        errors=[{"code": "bad_input", "message": "x", "path": "/apps/0"}],
    )  # fmt: skip
    width = len(TIKTOK_REMEDIATION)  # the widest cell of the column
    remedy = TIKTOK_REMEDIATION
    rule = (
        "+-----------+----------------------+-----------------------------------+"
        + "-" * 81
        + "+------------------+"
        + "-" * (width + 2)
        + "+"
    )
    assert lines(every_kind) == [
        rule,
        "| RESULT    | RULE                 | APP                               | NOTE"
        + " " * 76
        + "| MESSAGE          | REMEDIATION"
        + " " * (width - 10)
        + "|",
        rule,
        "| violation | eu-commission/tiktok | TikTok (com.zhiliaoapp.musically) | scope corporate; "
        f"matched from a display name, not a package ID: weaker evidence | TikTok is banned | {remedy} |",
        "| warning   | eu-commission/lite   | com.zhiliaoapp.musically.go       | enforcement is warn: "
        "reported, not enforced" + " " * 37 + "| Lite is banned   | " + "By June.".ljust(width) + " |",
        "| exempted  | eu-commission/tiktok | TikTok (com.zhiliaoapp.musically) | exempted by EX-2023-001 "
        "until 2023-06-30T00:00:00Z" + " " * 30 + "| waived           | " + "-".ljust(width) + " |",
        "| error     | bad_input            | -                                 | at /apps/0"
        + " " * 70
        + "| x"
        + " " * 16
        + "| "
        + "-".ljust(width)
        + " |",
        rule,
        f"NON-COMPLIANT: {VERDICT}: 1 violation, 1 warning, 1 exempted, 1 error",
    ]
    assert len({len(line) for line in lines(every_kind)[:-1]}) == 1


def test_a_rule_without_remediation_shows_a_dash() -> None:
    out = lines(decision(allow=False, violations=[entry(message="m", remediation=None)]))
    assert out[1].endswith("| MESSAGE | REMEDIATION |")
    assert out[3].endswith("| m       | -           |")


def test_exemptions_that_expired_are_in_the_note(non_compliant: Decision) -> None:
    """As in every other format (table and github left them out)."""
    row = lines(non_compliant)[3]
    assert "| scope personal-enrolled; expired exemptions: EX-2022-009 |" in row, row


def test_crafted_cells_are_escaped_and_stay_on_one_row(crafted_name: Decision) -> None:
    out = lines(crafted_name)
    assert out[3] == (
        "| violation | eu-commission/tiktok "
        "| TikTok\\x1b[2J\\x0dCOMPLIANT\\u202e (com.evil\\x1b]0;pwned\\x07) | scope personal-enrolled "
        "| TikTok\\x1b[2J\\x0dCOMPLIANT\\u202e (com.evil) is banned\\x0a: cybersecurity "
        f"| {TIKTOK_REMEDIATION} |"
    )
    assert len(out) == 6
    rendered = TableFormat().render(crafted_name, source="-")
    assert not any(char in rendered for char in "\x1b\r\x07\u202e")


def test_wide_characters_keep_the_columns_aligned() -> None:
    douyin = entry(app_id="com.ss.android.ugc.aweme", app_name="抖音", message="e\u0301")
    out = lines(decision(allow=False, violations=[douyin, entry(message="-")]))
    head = "| violation | eu-commission/tiktok "
    tail = f" {TIKTOK_REMEDIATION} |"
    assert (
        out[3]
        == head + "| 抖音 (com.ss.android.ugc.aweme)   | scope personal-enrolled | e\u0301       |" + tail
    )
    assert out[4] == head + "| TikTok (com.zhiliaoapp.musically) | scope personal-enrolled | -       |" + tail
    assert {display_width(line) for line in out[:-1]} == {display_width(out[0])}


@pytest.mark.parametrize(("text", "width"), [("abc", 3), ("抖音", 4), ("e\u0301", 1), ("", 0)])
def test_display_width(text: str, width: int) -> None:
    assert display_width(text) == width


def test_check_prints_the_table_on_stdout(policy_bundle: Path) -> None:
    report = str(EXAMPLES / "india-personal-lite.json")
    result = CliRunner().invoke(cli, ["check", report, "--at", "2023-03-16T09:30:00Z", "--format", "table"])
    assert result.exit_code == 1
    out = result.stdout.splitlines()
    assert [line[:74] for line in out[:4]] == [
        "+-----------+--------------+-------------------------------------------+--",
        "| RESULT    | RULE         | APP                                       | N",
        "+-----------+--------------+-------------------------------------------+--",
        "| violation | india/tiktok | TikTok Lite (com.zhiliaoapp.musically.go) | s",
    ]
    assert out[4:] == [
        out[0],
        "NON-COMPLIANT: device in-bengaluru-personal-2210, organisation india: "
        "1 violation, 0 warnings, 0 exempted",
    ]
    assert result.stderr == "pyagent: NON-COMPLIANT: in-bengaluru-personal-2210 (india): 1 violation\n"
