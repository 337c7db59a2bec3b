"""The dashboard in real headless Chromium (Debian's package, driven by Playwright) over a real server
process holding real decisions: a generated fleet decided by the embedded engine at two instants,
uploaded through ``POST /logs``, plus one device with hostile data. The page's figures must equal the
API's, charts render, filters, device pages, paging and logout work, no script ever runs and no
Content-Security-Policy violation happens. A second test holds the session and role rules over HTTP."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Dialog, Page, sync_playwright

from pyagent.engines.base import EngineSettings
from pyagent.engines.embedded import EmbeddedEngine
from pyagent.fleet.generate import devices as generated_devices
from pyagent.outputs.base import printable
from pyagent.server.store import open_store
from tests.helpers.chromium import chromium_path
from tests.helpers.pyagent_server import RunningServer, add_token, run_server

REPO = Path(__file__).resolve().parents[2]
T1, T2 = "2023-03-14T12:00:00Z", "2023-03-16T12:00:00Z"
FLEET = 40
# 2023 is more than 100,000,000 s (3.2 years) before late 2026: a billion keeps every decision fresh
STALE_AFTER = 1_000_000_000
HOSTILE_ID = "<script>alert(1)</script>\"'"
HOSTILE_ORG = '=HYPERLINK("http://x")'
HOSTILE_APP = "Evil \x1b[31mred\x1b[0m \u202egnp.exe"
METRICS = ("devices", "compliant", "non_compliant", "invalid", "stale")
NOISY = ("error", "warning", "assert")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Fleet:
    server: RunningServer
    db: str
    reader: str
    agent: str
    bundle: Path
    verdicts: Counter[str]
    """Each device's newest decision as the summary counts it (nothing is stale: STALE_AFTER)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def http(url: str, method: str = "GET", data: bytes | None = None,
         headers: Mapping[str, str] | None = None) -> tuple[int, Message, bytes]:  # fmt: skip
    """One request, redirects not followed: (status, headers, body)."""
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=15) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api(fleet: Fleet, path: str, **params: str) -> Any:
    status, _, body = http(f"{fleet.server.url}{path}?{urlencode(params)}", headers=bearer(fleet.reader))
    assert status == 200, body
    return json.loads(body)


def _event(engine: EmbeddedEngine, report: dict[str, Any], at: str) -> dict[str, Any]:
    result = engine.evaluate({"at": at, "report": report})
    return {
        "decision_id": str(uuid.uuid4()), "labels": {"id": report["device"]["id"], "version": "test"},
        "path": "pyagent/decision", "input": {"at": at, "report": report}, "result": result, "timestamp": at,
    }  # fmt: skip


@pytest.fixture(scope="module")
def fleet(policy_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("dashboard")
    db = f"sqlite:///{workdir / 'server.db'}"
    config = workdir / "server.toml"
    # (no reload in the middle of a step: test_dashboard_live.py has the pages reload themselves)
    config.write_text(f"[server]\nstale_after_seconds = {STALE_AFTER}\ndashboard_refresh_seconds = 0\n")
    engine = EmbeddedEngine.from_settings(EngineSettings(engine="embedded", bundle=str(policy_bundle)))
    reports = list(generated_devices(FLEET, seed=20230315, apps_per_device=20))
    hostile = json.loads(json.dumps(reports[0]))
    hostile["device"].update(id=HOSTILE_ID, organization=HOSTILE_ORG)
    hostile["apps"][0]["name"] = HOSTILE_APP
    events = [_event(engine, r, T1) for r in reports]
    events += [_event(engine, r, T2) for r in [*reports[: FLEET - 5], hostile]]  # five stay at T1
    with run_server(workdir, db, extra_args=["--config", str(config)]) as server:
        reader, agent = add_token(db, "reader", "reader"), add_token(db, "agent", "agent")
        headers = {**bearer(agent), "Content-Encoding": "gzip", "Content-Type": "application/json"}
        for start in range(0, len(events), 25):
            body = gzip.compress(json.dumps(events[start : start + 25]).encode())
            status, _, answer = http(f"{server.url}/logs", "POST", body, headers)
            assert status == 200, answer
        newest = {e["labels"]["id"]: e["result"] for e in events}  # (in order: T2 after T1)
        verdicts = Counter(
            "invalid" if r.get("errors") else "compliant" if r["allow"] and not r["violations"]
            else "non_compliant"
            for r in newest.values()
        )  # fmt: skip
        yield Fleet(server, db, reader, agent, policy_bundle, verdicts)


def rows(page: Page) -> list[str]:
    listed: list[str] = page.eval_on_selector_all("tr[data-device]", "trs => trs.map(r => r.dataset.device)")
    return listed


def click(page: Page, selector: str) -> None:
    with page.expect_navigation():
        page.click(selector)


def no_script_ran(page: Page) -> None:
    assert page.evaluate("document.querySelectorAll('script').length") == 0, page.url


def test_dashboard_in_chromium(fleet: Fleet, tmp_path: Path) -> None:
    base, problems, dialogs = fleet.server.url, list[str](), list[str]()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1800})
            page = context.new_page()
            page.on("console", lambda m: problems.append(f"{m.type}: {m.text} ({m.location['url']})")
                    if m.type in NOISY else None)  # fmt: skip
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("pageerror", lambda err: problems.append(f"page error: {err}"))

            def dialog(opened: Dialog) -> None:
                dialogs.append(opened.message)
                opened.dismiss()

            page.on("dialog", dialog)

            page.goto(f"{base}/")
            assert urlsplit(page.url).path == "/login"
            no_script_ran(page)
            page.fill("#token", fleet.reader)
            click(page, "#login")
            assert urlsplit(page.url).path == "/"
            summary = api(fleet, "/api/v1/summary")
            shown = {m: page.get_attribute(f'.kpis [data-metric="{m}"]', "data-value") for m in METRICS}
            assert shown == {m: str(summary[m]) for m in METRICS}
            counted = {k: summary[k] for k in ("devices", "compliant", "non_compliant", "invalid", "stale")}
            assert counted == {"devices": FLEET + 1, "stale": 0, **{k: fleet.verdicts[k] for k in
                               ("compliant", "non_compliant", "invalid")}}  # fmt: skip
            assert fleet.verdicts["compliant"] and fleet.verdicts["non_compliant"]  # both kinds shown
            for chart in ("chart-history", "chart-orgs"):
                svg = page.locator(f'svg[aria-labelledby^="{chart}-"]')
                box = svg.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 50, chart
                assert svg.locator("rect").count() > 3, chart
            assert HOSTILE_ORG in (page.text_content("main") or "")
            no_script_ran(page)
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot))
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("PYAGENT_UPDATE_SCREENSHOT"):  # the README's picture: the day after the ban
                page.goto(f"{base}/?at={T2}")
                page.screenshot(path=str(shot))
                shutil.copyfile(shot, REPO / "docs" / "dashboard.png")
                page.goto(f"{base}/")

            click(page, 'nav.top a[href="/devices"]')
            everyone = rows(page)
            assert sorted(everyone) == everyone and len(everyone) == FLEET + 1
            for status in ("compliant", "non_compliant", "invalid"):  # each status badge has a colour
                colour = page.eval_on_selector(f".badge.{status}", "b => getComputedStyle(b).backgroundColor")
                assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), status
            for organization in ("eu-council", HOSTILE_ORG):
                page.fill('form.filters input[name="organization"]', organization)
                click(page, "#filter")
                listed = rows(page)
                expected = api(fleet, "/api/v1/devices", organization=organization, limit="1000")["devices"]
                assert listed == [d["device_id"] for d in expected] and 0 < len(listed) < len(everyone)
                click(page, "tr[data-device] a >> nth=0")
                assert (page.text_content("#device-title") or "").startswith(listed[0])
                no_script_ran(page)
                page.go_back()
            assert listed == [HOSTILE_ID]
            page.go_forward()
            # shown as text, with the escape and the right-to-left override as visible codes, not obeyed
            shown = printable(HOSTILE_APP)
            assert shown == "Evil \\x1b[31mred\\x1b[0m \\u202egnp.exe"
            assert page.evaluate("document.querySelector('#apps').textContent").count(shown) == 1
            assert HOSTILE_ORG in (page.text_content("dl.facts") or "")

            page.goto(f"{base}/devices?limit=7")
            seen, pages = rows(page), 1
            assert len(seen) == 7
            while page.locator("#next-page").count():
                click(page, "#next-page")
                following = rows(page)
                assert following and not set(following) & set(seen)
                seen, pages = seen + following, pages + 1
            assert seen == everyone and pages == -(-(FLEET + 1) // 7)  # 7 a page

            click(page, "#logout")
            assert urlsplit(page.url).path == "/login"
            assert [c["name"] for c in context.cookies()] == []
            page.goto(f"{base}/")
            assert urlsplit(page.url).path == "/login"
            assert (problems, dialogs) == ([], [])
            # the collector is not blind: a forbidden image load is a CSP violation it reports
            with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
                page.evaluate("() => { new Image().src = 'http://evil.example/x.png'; }")
            assert len(problems) == 1 and "img-src" in problems[0]
        finally:
            browser.close()


def test_sessions_and_roles_over_http(fleet: Fleet) -> None:
    base = fleet.server.url
    secret = add_token(fleet.db, "short-lived", "reader")
    form = urlencode({"token": secret, "next": "//evil.example/x"}).encode()
    assert http(f"{base}/login", "POST", form, {**FORM, "Origin": "http://evil.example"})[0] == 403
    status, headers, _ = http(f"{base}/login", "POST", form, {**FORM, "Origin": base})
    assert (status, headers["Location"]) == (303, "/")
    set_cookie = headers["Set-Cookie"]
    attributes = {part.strip().lower() for part in set_cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    cookie = {"Cookie": set_cookie.split(";")[0]}
    assert http(f"{base}/", headers=cookie)[0] == 200
    assert http(f"{base}/logout", "POST", b"", {**FORM, **cookie})[0] == 403
    assert http(f"{base}/logout", "POST", b"csrf=wrong", {**FORM, **cookie})[0] == 403
    assert http(f"{base}/", headers=cookie)[0] == 200  # the refused logouts ended nothing

    agent_login = urlencode({"token": fleet.agent}).encode()
    assert http(f"{base}/login", "POST", agent_login, FORM)[0] == 403  # a token, of the wrong role
    assert http(f"{base}/login", "POST", urlencode({"token": "pya_not-a-token"}).encode(), FORM)[0] == 401
    assert http(f"{base}/api/v1/summary", headers=bearer(fleet.agent))[0] == 403
    assert http(f"{base}/", headers=bearer(fleet.agent))[0] == 403  # as the API answers it
    assert http(f"{base}/", headers=bearer("not-a-token"))[0] == 401
    assert http(f"{base}/")[0] == 401  # no credentials, not a browser
    status, headers, _ = http(f"{base}/devices", headers={"Accept": "text/html"})  # a browser: log in first
    assert (status, headers["Location"]) == (303, "/login?next=%2Fdevices")
    multipart = (b"--b\r\nContent-Disposition: form-data; name=\"wasm\"; filename=\"bundle.tar.gz\"\r\n\r\n"
                 + fleet.bundle.read_bytes() + b"\r\n--b--\r\n")  # fmt: skip
    publish = {**bearer(fleet.reader), "Content-Type": "multipart/form-data; boundary=b"}
    assert http(f"{base}/api/v1/bundles/pyagent", "PUT", multipart, publish)[0] == 403

    status, headers, body = http(f"{base}/api/v1/devices?format=csv", headers=bearer(fleet.reader))
    assert (status, headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    exported = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    hostile = [row for row in exported if row["device_id"] == HOSTILE_ID]
    assert len(exported) == FLEET + 1 and [row["organization"] for row in hostile] == ["'" + HOSTILE_ORG]
    assert not [cell for row in exported for cell in row.values() if cell[:1] in ("=", "+", "-", "@")]

    store = open_store(fleet.db)
    try:
        assert store.revoke_token("short-lived")
    finally:
        store.close()
    status, headers, _ = http(f"{base}/", headers=cookie)
    assert status == 303 and headers["Location"].startswith("/login")
