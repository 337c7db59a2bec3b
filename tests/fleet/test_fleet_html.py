"""`pyagent fleet --format html`: the page's figures equal `--format json`, it is safe with hostile
reports, loads nothing, and works in a real browser (Debian's Chromium, headless).

Set ``PYAGENT_UPDATE_SCREENSHOT=1`` to write the screenshot of the realistic fleet to
``docs/fleet-report.png``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import struct
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from pyagent.fleet.html import write_html
from pyagent.fleet.summary import FleetSummary
from tests.helpers import chromium
from tests.helpers.domain import NOT_BANNED_BYTEDANCE, TIKTOK_FAMILY, WORK_APPS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "reports"
AT = "2023-03-16T09:30:00Z"
ORGS = ("eu-commission", "eu-council", "eeas", "eu-parliament", "us-federal", "india")
NAMES = {
    "com.zhiliaoapp.musically": "TikTok",
    "com.ss.android.ugc.trill": "TikTok",
    "com.zhiliaoapp.musically.go": "TikTok Lite",
    "com.ss.android.ugc.aweme": "Douyin",
    "com.ss.iphone.ugc.Aweme": "Douyin",
    "BytedancePte.Ltd.TikTok_6yccndn6064se": "TikTok",
    "com.lemon.lvoverseas": "CapCut",
    "com.bd.nproject": "Lemon8",
    "ByteDance.CapCut": "CapCut",
}
EVERYDAY = {
    "android": ["com.whatsapp", "com.google.android.apps.maps", "org.mozilla.firefox"],
    "ios": ["com.apple.mobilesafari", "net.whatsapp.WhatsApp"],
    "windows": ["Microsoft.WindowsTerminal_8wekyb3d8bbwe", "Mozilla.Firefox"],
}
INJECTED_ID = '"><script>alert(1)</script>'
INJECTED_APP = "</script><script>alert(2)</script><!--"
TOTALS = ("devices", "compliant", "non_compliant", "invalid", "undecided")


def synthetic_reports(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` plausible devices across the six organisations; about a quarter carry a TikTok-family app."""
    rng = random.Random(seed)
    reports = []
    for number in range(count):
        org = ORGS[number % len(ORGS)]
        platform = rng.choices(["android", "ios", "windows"], weights=[50, 35, 15])[0]
        ownership = "corporate" if rng.random() < 0.55 else "personal"
        apps = [{"id": app} for app in rng.sample(EVERYDAY[platform], 2)]
        if platform in WORK_APPS and rng.random() < 0.6:
            apps.append({"id": rng.choice(WORK_APPS[platform])})
        if rng.random() < 0.28:
            apps.append({"id": rng.choice(TIKTOK_FAMILY[platform])})
        if platform in NOT_BANNED_BYTEDANCE and rng.random() < 0.15:
            apps.append({"id": rng.choice(NOT_BANNED_BYTEDANCE[platform])})
        for app in apps:
            if app["id"] in NAMES:
                app["name"] = NAMES[app["id"]]
        reports.append(
            {
                "schema_version": 1,
                "collected_at": f"2023-03-16T0{rng.randrange(10)}:{rng.randrange(60):02d}:00Z",
                "device": {
                    "id": f"{org}-{platform}-{number:04d}",
                    "platform": platform,
                    "ownership": ownership,
                    "organization": org,
                    "mdm": {"enrolled": ownership == "corporate" or rng.random() < 0.5},
                },
                "apps": apps,
            }
        )
    return reports


def write_fleet(path: Path, reports: list[Any]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for report in reports:
            out.write((report if isinstance(report, str) else json.dumps(report, ensure_ascii=False)) + "\n")
    return path


def realistic_fleet(path: Path) -> Path:
    examples = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(EXAMPLES.glob("*.json"))]
    broken = ['{"schema_version": 1, "device": {"id": "eu-council-android-9001"}}', "{not json"]
    return write_fleet(path, [*examples, *synthetic_reports(200), *broken])


def hostile_fleet(path: Path) -> Path:
    """Strings meant to break out of HTML, attributes and the embedded JSON."""
    app = {"id": "com.zhiliaoapp.musically", "name": INJECTED_APP}
    device = {
        "id": INJECTED_ID,
        "platform": "android",
        "ownership": "personal",
        "organization": "india",
        "mdm": {"enrolled": False},
    }
    return write_fleet(
        path,
        [
            {"schema_version": 1, "collected_at": AT, "device": device, "apps": [app]},
            {
                "schema_version": 1,
                "collected_at": AT,
                "apps": [],
                "device": {**device, "id": "x<img src=x>", "organization": "<b>org</b>'\"&amp;"},
            },
            {"schema_version": 1, "collected_at": AT, "apps": [], "device": device, "</script><i>": 1},
            *synthetic_reports(12, seed=3),
        ],
    )


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["fleet", *args, "--at", AT, "--jobs", "1", "--engine", "embedded"])


class Metrics(HTMLParser):
    """Every ``data-metric`` figure as ``{(scope, name, metric): value}``, plus the table rows and JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[tuple[str, ...], float] = {}
        self.texts: dict[tuple[str, ...], str] = {}
        self.rows: list[dict[str, str | None]] = []
        self.scripts: dict[str, str] = {}
        self._open: tuple[str, ...] | None = None
        self._script: str | None = None
        self.html_attrs: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        if tag == "tr" and "data-status" in a:
            self.rows.append(a)
        if tag == "script":
            self._script = a.get("id") or "inline"
            self.scripts.setdefault(self._script, "")
        if "data-metric" in a:
            scope: tuple[str, str] = ("total", "")
            for kind in ("data-org", "data-platform", "data-ban"):
                if kind in a:
                    scope = (kind, a[kind] or "")
            if "data-app" in a:
                scope = ("data-app", f"{a.get('data-ban')}\0{a['data-app']}")
            key = (*scope, a["data-metric"] or "")
            assert key not in self.figures, f"figure {key} appears twice"
            self.figures[key] = float(a["data-value"] or "nan")
            self._open, self.texts[key] = key, ""

    def handle_endtag(self, tag: str) -> None:
        self._open = None
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.texts[self._open] += data
        if self._script:
            self.scripts[self._script] += data


def parse(page: str) -> Metrics:
    parser = Metrics()
    parser.feed(page)
    parser.close()
    return parser


def expected_figures(summary: dict[str, Any]) -> dict[tuple[str, ...], float]:
    """What the page must show for a ``--format json`` summary: every count, keyed like :class:`Metrics`."""
    out: dict[tuple[str, ...], float] = {("total", "", m): summary[m] for m in TOTALS[:4]}
    if summary["undecided"]:
        out["total", "", "undecided"] = summary["undecided"]
    out["total", "", "percent_compliant"] = round(100 * summary["compliant"] / summary["devices"], 1)
    for kind, key in (("data-org", "by_organization"), ("data-platform", "by_platform")):
        for name, counts in summary[key].items():
            out.update({(kind, name, m): v for m, v in counts.items()})
    for ban, counts in summary["by_ban"].items():
        out.update({("data-ban", ban, m): v for m, v in counts.items() if m != "apps"})
        out.update({("data-app", f"{ban}\0{app}", "apps"): n for app, n in counts["apps"].items()})
    return out


def assert_figures_match(page: Metrics, summary: dict[str, Any]) -> None:
    assert page.figures == expected_figures(summary)
    for key, value in page.figures.items():  # what people read is the same number
        if key[2] != "percent_compliant":
            assert page.texts[key].replace(",", "") == str(int(value)), key
    assert json.loads(page.scripts["fleet-summary"]) == summary


@pytest.fixture(scope="module")
def realistic(policy_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The realistic fleet through the real CLI, as HTML and as JSON."""
    work = tmp_path_factory.mktemp("fleet-html")
    fleet = realistic_fleet(work / "fleet.jsonl")
    page = work / "fleet.html"
    html_run = run_cli(str(fleet), "--format", "html", "-o", str(page))
    json_run = run_cli(str(fleet), "--format", "json")
    assert html_run.exit_code == json_run.exit_code == 1, html_run.stderr + json_run.stderr
    assert html_run.stderr == json_run.stderr  # the same text summary
    return {
        "dir": work,
        "page": page,
        "html": page.read_text(encoding="utf-8"),
        "json": json.loads(json_run.stdout),
    }


def test_every_figure_equals_the_json_output(realistic: dict[str, Any]) -> None:
    summary = realistic["json"]["summary"]
    assert summary["devices"] == 8 + 200 + 2 and summary["invalid"] == 2
    assert set(summary["by_organization"]) >= set(ORGS)
    page = parse(realistic["html"])
    assert_figures_match(page, summary)
    needing = [d for d in realistic["json"]["devices"] if not d["allow"]]
    assert len(page.rows) == len(needing) == summary["non_compliant"] + summary["invalid"]
    assert [r["data-status"] for r in page.rows] == [
        "invalid" if d["errors"] else "non_compliant" for d in needing
    ]


def test_the_page_loads_nothing(realistic: dict[str, Any]) -> None:
    page: str = realistic["html"]
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert csp and "default-src 'none'" in csp.group(1) and "unsafe" not in csp.group(1)
    without_csp = page.replace(csp.group(0), "").replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?:", without_csp, re.IGNORECASE)
    assert not re.search(r"\s(src|href|srcset|action|formaction)\s*=|url\(|@import", page, re.IGNORECASE)
    # the CSP allows exactly the page's own style and script, by hash
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert style and len(scripts) == 1
    for body in (style.group(1), scripts[0]):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp.group(1)


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
    assert json.loads(parsed.scripts["fleet-summary"])["by_ban"]["tiktok"]["devices"] >= 1
    assert {r["data-status"] for r in parsed.rows} >= {"invalid", "non_compliant"}


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


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium.chromium_path()


def test_console_errors_are_caught(browser: str, tmp_path: Path) -> None:
    """The console check is real: a thrown error, console.error and a CSP violation are all seen."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        "<img alt='' src='https://example.invalid/x.png'>"
        "<script>console.error('logged'); missingFunction();</script></body></html>"
    )
    console = "\n".join(chromium.load(page, tmp_path).console)
    assert "Uncaught ReferenceError: missingFunction" in console
    assert "logged" in console and "Content Security Policy" in console


def test_in_chromium_no_console_output_and_same_figures(browser: str, realistic: dict[str, Any]) -> None:
    run = chromium.load(realistic["page"], realistic["dir"])
    assert run.console == []
    dom = parse(run.dom)
    assert dom.html_attrs.get("data-script") == "ready"  # the script ran to its end
    assert_figures_match(dom, realistic["json"]["summary"])
    totals = realistic["json"]["summary"]
    assert len(dom.rows) == totals["non_compliant"] + totals["invalid"]
    shown = re.search(r'id="device-count"[^>]*>(\d+) of (\d+) devices shown<', run.dom)
    assert shown and shown.group(1) == shown.group(2) == str(len(dom.rows))


def test_in_chromium_a_tampered_script_is_blocked(
    browser: str, realistic: dict[str, Any], tmp_path: Path
) -> None:
    """The hashes in the CSP are enforced: an altered inline script does not run, and says so."""
    page = tmp_path / "tampered.html"
    page.write_text(realistic["html"].replace('"use strict";', '"use strict"; var tampered = 1;', 1))
    run = chromium.load(page, tmp_path)
    assert "data-script" not in parse(run.dom).html_attrs
    assert any("Content Security Policy" in line for line in run.console)


def test_in_chromium_search_and_sort(browser: str, realistic: dict[str, Any], tmp_path: Path) -> None:
    """Drive the page's own search box and sort button from a probe script (allowed by its hash)."""
    probe = (
        "var box = document.getElementById('device-search'); box.value = 'INDIA';"
        "box.dispatchEvent(new Event('input'));"
        "document.querySelector('#devices thead button').click();"
        "document.querySelector('#devices thead button').click();"
        "var rows = Array.prototype.slice.call(document.querySelectorAll('#devices tbody tr'));"
        "var out = document.createElement('pre'); out.id = 'probe';"
        "out.textContent = JSON.stringify({count: document.getElementById('device-count').textContent,"
        "sort: document.querySelector('#devices thead th').getAttribute('aria-sort'),"
        "visible: rows.filter(function (r) { return !r.hidden; }).map(function (r) {"
        " return r.cells[0].textContent; })});"
        "document.body.appendChild(out);"
    )
    digest = base64.b64encode(hashlib.sha256(probe.encode()).digest()).decode()
    page_text = realistic["html"].replace("script-src ", f"script-src 'sha256-{digest}' ", 1)
    page = tmp_path / "probe.html"
    page.write_text(page_text.replace("</body>", f"<script>{probe}</script></body>"))
    run = chromium.load(page, tmp_path)
    assert run.console == []
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.dom, re.DOTALL)
    assert found
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    india = [
        d["device_id"]
        for d in realistic["json"]["devices"]
        if not d["allow"] and d["organization"] == "india"
    ]
    assert result["visible"] == sorted(india, reverse=True)
    assert result["count"] == f"{len(india)} of {len(parse(realistic['html']).rows)} devices shown"
    assert result["sort"] == "descending"


def test_in_chromium_screenshot(browser: str, realistic: dict[str, Any]) -> None:
    update = bool(os.environ.get("PYAGENT_UPDATE_SCREENSHOT"))
    if update:
        chromium.ensure_cjk_font()
    png = realistic["dir"] / "fleet-report.png"
    run = chromium.screenshot(realistic["page"], png, realistic["dir"], size=(1400, 2000))
    assert run.console == []
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1400, 2000)
    assert len(data) > 100_000  # a blank page of that size compresses to a few kB
    if update:
        shutil.copyfile(png, REPO / "docs" / "fleet-report.png")


def test_in_chromium_hostile_strings_stay_text(browser: str, policy_bundle: Path, tmp_path: Path) -> None:
    fleet = hostile_fleet(tmp_path / "fleet.jsonl")
    page = tmp_path / "fleet.html"
    assert run_cli(str(fleet), "--format", "html", "-o", str(page)).exit_code == 1
    run = chromium.load(page, tmp_path)
    assert run.console == []  # no alert, no error: nothing injected ran or broke the page
    dom = parse(run.dom)
    assert dom.html_attrs.get("data-script") == "ready"
    assert run.dom.count("<script") == 3 and "<img" not in run.dom
    assert_figures_match(dom, json.loads(run_cli(str(fleet), "--format", "json").stdout)["summary"])


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
