"""Fleets for the HTML report's tests: the realistic one (the shipped examples, 200 synthetic devices
across the six organisations, two broken lines) and a hostile one, run through the real CLI; and a
reader of the page's figures, to compare them with `--format json`."""

from __future__ import annotations

import json
import random
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pyagent.cli import cli
from tests.fleet.runs import AT, EXAMPLES
from tests.helpers.domain import NOT_BANNED_BYTEDANCE, TIKTOK_FAMILY, WORK_APPS

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
