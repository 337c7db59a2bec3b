"""The dashboard stays live without a script: its pages of the fleet as it is now reload themselves
(the ``Refresh`` header, ``dashboard_refresh_seconds``), while a past instant's page, which cannot
change, does not; in real headless Chromium the overview loads again by itself and shows a decision
stored meanwhile."""

from __future__ import annotations

import gzip
import json
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from pyagent.errors import InvalidInputError
from pyagent.server.settings import load_settings
from tests.helpers.chromium import chromium_path
from tests.helpers.pyagent_server import add_token, run_server
from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet

DEVICE = "fr-brussels-0042"


def test_pages_of_now_reload_themselves_and_a_past_instant_does_not(fleet: Fleet) -> None:
    assert fleet.post_logs([decision_event("d-1")]).status_code == 200
    reader = fleet.auth("reader")
    refresh = {
        path: fleet.client.get(path, headers=reader).headers.get("refresh")
        for path in ("/", "/?organization=eu-commission", "/devices", f"/devices/{DEVICE}",
                     "/?at=2023-03-16T10:00:00Z", "/login")
    }  # fmt: skip
    assert refresh == {
        "/": "60", "/?organization=eu-commission": "60", "/devices": "60", f"/devices/{DEVICE}": "60",
        "/?at=2023-03-16T10:00:00Z": None, "/login": None,
    }  # fmt: skip


def test_the_reload_interval_is_a_setting(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text("[server]\ndashboard_refresh_seconds = 0\n")
    assert load_settings(config).dashboard_refresh_seconds == 0
    config.write_text("[server]\ndashboard_refresh_seconds = -5\n")
    with pytest.raises(InvalidInputError) as refused:
        load_settings(config)
    assert (
        str(refused.value) == f"{config}: server.dashboard_refresh_seconds: must be an integer of at least 0"
    )


def test_the_overview_in_chromium_shows_a_decision_stored_after_it_was_opened(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    config = tmp_path / "server.toml"
    config.write_text('[server]\ndashboard_refresh_seconds = 1\nstale_after = "36500d"\n')
    with run_server(tmp_path, db, extra_args=["--config", str(config)]) as server:
        reader, agent = add_token(db, "reader", "reader"), add_token(db, "agent", "agent")

        def upload(decision_id: str, device_id: str) -> None:
            body = gzip.compress(json.dumps([decision_event(decision_id, device_id=device_id)]).encode())
            headers = {"Authorization": f"Bearer {agent}", "Content-Encoding": "gzip",
                       "Content-Type": "application/json"}  # fmt: skip
            request = urllib.request.Request(f"{server.url}/logs", body, headers, method="POST")
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200

        upload("d-1", "first-device")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(f"{server.url}/login")
                page.fill("#token", reader)
                with page.expect_navigation():
                    page.click("#login")
                shown = page.get_attribute('.kpis [data-metric="devices"]', "data-value")
                upload("d-2", "second-device")
                loads: list[str] = []
                page.on("load", lambda loaded: loads.append(loaded.url))
                deadline = time.monotonic() + 15
                while not loads and time.monotonic() < deadline:
                    page.wait_for_timeout(100)
                assert loads, "the overview did not reload itself"
                page.wait_for_selector('.kpis [data-metric="devices"][data-value="2"]', timeout=5000)
                assert shown == "1"
                assert page.evaluate("document.querySelectorAll('script').length") == 0
                loads.clear()
                past = page.goto(f"{server.url}/?at=2023-03-16T10:00:00Z")
                assert past is not None and past.headers.get("refresh") is None
                page.wait_for_timeout(2500)
                assert loads == [f"{server.url}/?at=2023-03-16T10:00:00Z"]  # its own load only
            finally:
                browser.close()
