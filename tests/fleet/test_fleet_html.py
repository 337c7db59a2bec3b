"""`pyagent fleet --format html`: the page's figures equal `--format json`, it is safe with hostile
reports and loads nothing (in a real browser: ``test_fleet_html_browser.py``)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

from pyagent.fleet.html import write_html
from pyagent.fleet.summary import FleetSummary
from tests.fleet.html_fleets import ORGS, assert_figures_match, hostile_fleet, parse, run_cli
from tests.fleet.runs import AT


def test_every_figure_equals_the_json_output(realistic_fleet_outputs: dict[str, Any]) -> None:
    summary = realistic_fleet_outputs["json"]["summary"]
    assert summary["devices"] == 8 + 200 + 2 and summary["invalid"] == 2
    assert sorted(summary["by_organization"]) == sorted([*ORGS, "(none)"])  # (the invalid reports')
    page = parse(realistic_fleet_outputs["html"])
    assert_figures_match(page, summary)
    needing = [d for d in realistic_fleet_outputs["json"]["devices"] if not d["allow"]]
    assert len(page.rows) == len(needing) == summary["non_compliant"] + summary["invalid"]
    assert [r["data-status"] for r in page.rows] == [
        "invalid" if d["errors"] else "non_compliant" for d in needing
    ]


def test_the_page_loads_nothing(realistic_fleet_outputs: dict[str, Any]) -> None:
    page: str = realistic_fleet_outputs["html"]
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert csp
    without_csp = page.replace(csp.group(0), "").replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?:", without_csp, re.IGNORECASE)
    assert not re.search(r"\s(src|href|srcset|action|formaction)\s*=|url\(|@import", page, re.IGNORECASE)
    # the CSP allows exactly the page's own style and script, by hash
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert style and len(scripts) == 1
    style_digest, script_digest = (
        base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        for body in (style.group(1), scripts[0])
    )
    assert csp.group(1) == (
        f"default-src 'none'; style-src 'sha256-{style_digest}'; script-src 'sha256-{script_digest}'; "
        "base-uri 'none'; form-action 'none'"
    )


def test_hostile_strings_are_escaped(policy_bundle: Path, tmp_path: Path) -> None:
    fleet = hostile_fleet(tmp_path / "fleet<i>.jsonl")
    page_path = tmp_path / "fleet.html"
    assert run_cli(str(fleet), "--format", "html", "-o", str(page_path)).exit_code == 1
    page = page_path.read_text(encoding="utf-8")
    assert "alert(" in page  # the strings are there, as text
    assert page.count("<script") == 3  # fleet-summary, fleet-timeline, the page's own script
    for raw in ("<script>alert", "<img", "<b>org", "<i>", "<!--"):
        assert raw not in page
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;&lt;!--" in page
    parsed = parse(page)
    expected = json.loads(run_cli(str(fleet), "--format", "json").stdout)["summary"]
    assert_figures_match(parsed, expected)
    assert json.loads(parsed.scripts["fleet-summary"])["by_ban"] == {
        "tiktok": {
            "devices": 4,
            "violations": 4,
            "warnings": 0,
            "exempted": 0,
            "apps": {"com.ss.iphone.ugc.Aweme": 1, "com.zhiliaoapp.musically": 3},
        }
    }
    assert [r["data-status"] for r in parsed.rows] == [
        "non_compliant",
        "invalid",
        "invalid",
        "non_compliant",
        "non_compliant",
        "non_compliant",
    ]


def results_for(*statuses: str) -> list[dict[str, Any]]:
    base = {
        "organization": "eu-council",
        "platform": "android",
        "source": "x.jsonl:1",
        "warnings": [],
        "exempted": [],
    }
    violation = {
        "rule": "eu-council/tiktok",
        "ban": "tiktok",
        "app_id": "com.zhiliaoapp.musically",
        "message": "m",
        "remediation": "Uninstall it.",
        "effective_from": "2023-03-15T00:00:00Z",
        "scope": "corporate",
        "enforcement": "deny",
        "evidence": "display_name",
    }
    invalid = [{"code": "invalid_report", "message": "bad"}]
    undecided = [{"code": "no_decision", "message": "down"}]
    shapes = {
        "compliant": {"allow": True, "violations": [], "errors": []},
        "non_compliant": {"allow": False, "violations": [violation], "errors": []},
        "invalid": {"allow": False, "violations": [], "errors": invalid},
        "undecided": {"allow": False, "violations": [], "errors": undecided},
    }
    return [{**base, "device_id": f"d{i}", **shapes[s]} for i, s in enumerate(statuses)]


def render(results: list[dict[str, Any]], **kwargs: Any) -> tuple[str, FleetSummary]:
    out, summary = StringIO(), FleetSummary()
    timeline = kwargs.pop("timeline", [])
    write_html(iter(results), out, summary, at=AT, timeline=timeline, **kwargs)
    return out.getvalue(), summary


def test_counts_every_device_and_caps_the_table() -> None:
    statuses = ("compliant", *["non_compliant"] * 5, "invalid", "undecided")
    page, summary = render(results_for(*statuses), max_rows=3)
    assert (summary.devices, summary.non_compliant, summary.invalid, summary.undecided) == (8, 5, 1, 1)
    parsed = parse(page)
    assert len(parsed.rows) == 3 and "the first 3 of 7 devices" in page
    assert_figures_match(parsed, summary.as_dict())
    assert "weaker evidence" in page and "got no decision" in page


def test_all_compliant_and_an_upcoming_rule() -> None:
    timeline = [
        {
            "organization": "eu-parliament",
            "rule": "eu-parliament/tiktok",
            "ban": "tiktok",
            "scopes": ["corporate"],
            "effective_from": "2023-03-20T00:00:00Z",
            "enforcement": "warn",
            "inherited_by": [],
        }
    ]
    page, _ = render(results_for("compliant", "compliant"), timeline=timeline)
    assert "All 2 devices comply" in page and "nothing to do" in page and not parse(page).rows
    assert 'class="rule rule-future"' in page and "eu-parliament/tiktok" in page
    empty, _ = render([])
    assert "No devices were evaluated" in empty and "No policy timeline" in empty


# --- in a real browser -----------------------------------------------------------------------------


def test_the_app_chart_description_counts_in_the_singular_and_plural() -> None:
    from pyagent.fleet.html_assets import AppBar, app_bars

    bars = [
        AppBar("tiktok", "com.zhiliaoapp.musically", "TikTok", 1),
        AppBar("tiktok", "com.ss.android.ugc.trill", None, 2),
    ]
    svg = app_bars("apps", "Banned apps found", bars, hidden=0)
    description = re.search(r'<desc id="apps-d">(.*?)</desc>', svg)
    assert description is not None
    assert description.group(1) == (
        "com.zhiliaoapp.musically (tiktok): 1 violation; com.ss.android.ugc.trill (tiktok): 2 violations"
    )
