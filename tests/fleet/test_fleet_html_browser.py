"""`pyagent fleet --format html` in a real browser (Debian's Chromium, headless): no console output,
the same figures as `--format json`, the CSP's hashes enforced, search and sort driven on the page,
hostile strings kept as text, and the screenshot.

Set ``PYAGENT_UPDATE_SCREENSHOT=1`` to write the screenshot of the realistic fleet to
``docs/fleet-report.png``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.html_fleets import assert_figures_match, hostile_fleet, parse, run_cli
from tests.fleet.runs import REPO
from tests.helpers import chromium


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


def test_in_chromium_no_console_output_and_same_figures(
    browser: str, realistic_fleet_outputs: dict[str, Any]
) -> None:
    run = chromium.load(realistic_fleet_outputs["page"], realistic_fleet_outputs["dir"])
    assert run.console == []
    dom = parse(run.dom)
    assert dom.html_attrs.get("data-script") == "ready"  # the script ran to its end
    assert_figures_match(dom, realistic_fleet_outputs["json"]["summary"])
    totals = realistic_fleet_outputs["json"]["summary"]
    assert len(dom.rows) == totals["non_compliant"] + totals["invalid"]
    shown = re.search(r'id="device-count"[^>]*>(\d+) of (\d+) devices shown<', run.dom)
    assert shown and shown.group(1) == shown.group(2) == str(len(dom.rows))


def test_in_chromium_a_tampered_script_is_blocked(
    browser: str, realistic_fleet_outputs: dict[str, Any], tmp_path: Path
) -> None:
    """The hashes in the CSP are enforced: an altered inline script does not run, and says so."""
    page = tmp_path / "tampered.html"
    page.write_text(
        realistic_fleet_outputs["html"].replace('"use strict";', '"use strict"; var tampered = 1;', 1)
    )
    run = chromium.load(page, tmp_path)
    assert "data-script" not in parse(run.dom).html_attrs
    assert any("Content Security Policy" in line for line in run.console)


def test_in_chromium_search_and_sort(
    browser: str, realistic_fleet_outputs: dict[str, Any], tmp_path: Path
) -> None:
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
    page_text = realistic_fleet_outputs["html"].replace("script-src ", f"script-src 'sha256-{digest}' ", 1)
    page = tmp_path / "probe.html"
    page.write_text(page_text.replace("</body>", f"<script>{probe}</script></body>"))
    run = chromium.load(page, tmp_path)
    assert run.console == []
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.dom, re.DOTALL)
    assert found
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    india = [
        d["device_id"]
        for d in realistic_fleet_outputs["json"]["devices"]
        if not d["allow"] and d["organization"] == "india"
    ]
    assert result["visible"] == sorted(india, reverse=True)
    assert (
        result["count"] == f"{len(india)} of {len(parse(realistic_fleet_outputs['html']).rows)} devices shown"
    )
    assert result["sort"] == "descending"


def test_in_chromium_screenshot(browser: str, realistic_fleet_outputs: dict[str, Any]) -> None:
    update = bool(os.environ.get("PYAGENT_UPDATE_SCREENSHOT"))
    if update:
        chromium.ensure_cjk_font()
    png = realistic_fleet_outputs["dir"] / "fleet-report.png"
    run = chromium.screenshot(
        realistic_fleet_outputs["page"], png, realistic_fleet_outputs["dir"], size=(1400, 2000)
    )
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
