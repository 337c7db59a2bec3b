"""The dashboard's links from a figure to the devices behind it: each keeps the organisation shown,
none is offered on a past instant (the device list is of current states), and a parameter a page does
not read is refused as the API refuses it, rather than shown as an unfiltered view."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pyagent.server.store.base import BundleFile, NewRevision
from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet

NOW = "2023-03-16T09:30:00Z"


def _of(decision_id: str, device_id: str, organization: str, *, allow: bool = False, at: str = NOW) -> Any:
    event = decision_event(decision_id, device_id=device_id, allow=allow, at=at)
    event["input"]["report"]["device"]["organization"] = organization
    event["result"]["organization"] = organization
    return event


def _page(fleet: Fleet, path: str, **params: str) -> str:
    answer = fleet.client.get(path, params=params, headers=fleet.auth("reader"))
    assert answer.status_code == 200, answer.text
    return answer.text


def _device_links(page: str) -> list[str]:
    return sorted(set(re.findall(r'href="(/devices\?[^"]*)"', page)))


def _populated(fleet: Fleet) -> None:
    events = [
        _of("d-1", "commission-breach", "eu-commission"),
        _of("d-2", "commission-fine", "eu-commission", allow=True),
        _of("d-3", "council-breach", "eu-council"),
    ]
    assert fleet.post_logs(events).json()["stored"] == 3


def test_an_organisation_s_overview_links_to_its_own_devices(fleet: Fleet) -> None:
    _populated(fleet)
    overview = _page(fleet, "/", organization="eu-commission")
    assert _device_links(overview) == [
        "/devices?organization=eu-commission",
        "/devices?organization=eu-commission&amp;ban=tiktok",
        "/devices?organization=eu-commission&amp;platform=android",
        "/devices?organization=eu-commission&amp;stale=true",
    ]
    listed = _page(fleet, "/devices", organization="eu-commission", ban="tiktok")
    assert re.findall(r'data-device="([^"]+)"', listed) == ["commission-breach"]
    everyone = _page(fleet, "/")
    assert "/devices?organization=eu-council" in _device_links(everyone)
    assert "/devices?ban=tiktok" in _device_links(everyone)


def test_a_past_instant_offers_no_link_to_today_s_devices(fleet: Fleet) -> None:
    _populated(fleet)
    past = _page(fleet, "/", organization="eu-commission", at="2023-03-16T09:45:00Z")
    assert _device_links(past) == []
    assert '<th scope="row">tiktok</th>' in past


def _stale_rows(page: str) -> list[str]:
    stale = page[page.index("<h2>Stale devices</h2>") :]
    return re.findall(r'<tr><td><a href="/devices/([^"]+)">', stale)


def test_a_stale_list_cut_short_says_of_how_many(fleet: Fleet) -> None:
    """The overview lists the 20 oldest decisions of the stale devices: 23 stale devices showed 20 rows
    and nothing said there were more (on a past instant, which has no link to the whole list, the other
    three could not be found at all)."""
    days = [f"2023-03-{day:02d}T09:30:00Z" for day in range(1, 24)]
    events = [_of(f"d-{i}", f"silent-{i:02d}", "eu-commission", at=at) for i, at in enumerate(days)]
    assert fleet.post_logs(events).json()["stored"] == 23
    oldest = [f"silent-{i:02d}" for i in range(20)]
    for params, linked in (({}, True), ({"at": "2023-06-01T00:00:00Z"}, False)):
        page = _page(fleet, "/", **params)
        assert _stale_rows(page) == oldest
        assert ('<p class="sub">The 20 oldest decisions of 23 stale devices.</p>' in page) is True
        assert ("/devices?stale=true" in page) is linked
    few = _page(fleet, "/", at="2023-03-04T12:00:00Z")  # stale then: the first three (1 to 3 March)
    assert (_stale_rows(few), "oldest decisions of" in few) == (oldest[:3], False)


def test_a_device_page_links_its_organisation_platform_and_violated_ban(fleet: Fleet) -> None:
    _populated(fleet)
    page = _page(fleet, "/devices/commission-breach")
    assert _device_links(page) == [
        "/devices?ban=tiktok", "/devices?organization=eu-commission", "/devices?platform=android"
    ]  # fmt: skip


def test_a_parameter_a_page_does_not_read_is_a_400_naming_it(fleet: Fleet) -> None:
    reader = fleet.auth("reader")
    listing = "organization, no_organization, platform, compliant, stale, ban, cursor, limit"
    for path, name, takes in [
        ("/devices?allow=false", "allow", listing),
        ("/?platform=ios", "platform", "at, organization, no_organization"),
        ("/?organisation=eeas", "organisation", "at, organization, no_organization"),
    ]:  # fmt: skip
        answer = fleet.client.get(path, headers=reader)
        message = f"{name}: not a parameter of {path.split('?')[0]} (it takes: {takes})"
        assert (answer.status_code, message in answer.text) == (400, True), answer.text


def test_the_filter_forms_are_not_refilled_by_the_browser(fleet: Fleet) -> None:
    """Back to an earlier view, a browser would restore the values typed since, over that view's."""
    _populated(fleet)
    for path in ("/", "/devices"):
        assert len(re.findall(r'<form class="filters" [^>]*autocomplete="off"', _page(fleet, path))) == 1


@pytest.mark.parametrize("spelled", ["true", "1", "True"])
def test_a_filter_spelled_otherwise_shows_as_chosen(fleet: Fleet, spelled: str) -> None:
    """``?stale=1`` filters as ``stale=true`` does: its select says so, or Filter would drop it."""
    _populated(fleet)
    page = _page(fleet, "/devices", stale=spelled)
    assert (
        '<select name="stale"><option value="">any</option><option value="true" selected>yes</option>' in page
    )


def test_the_chart_s_last_point_is_of_the_instant_the_figures_are_of(fleet: Fleet) -> None:
    events = [
        _of("d-1", "early", "eu-commission"),
        _of("d-2", "late", "eu-commission", at="2023-03-16T09:30:00.3Z"),
    ]
    assert fleet.post_logs(events).json()["stored"] == 2
    page = _page(fleet, "/", at="2023-03-16T09:30:00.5Z")
    assert 'data-metric="devices" data-value="2">' in page  # the key figure
    last_point = re.findall(r'data-at="2023-03-16 09:30" data-metric="devices" data-value="(\d+)"', page)
    assert last_point == ["2"]


def test_an_invalid_device_s_page_says_why(fleet: Fleet) -> None:
    event = _of("d-1", "broken-report", "eu-commission")
    message = "evaluation time input.at must be an RFC 3339 timestamp, got <now>"
    event["result"].update(allow=False, violations=[], errors=[{"code": "invalid_time", "message": message}])
    assert fleet.post_logs([event]).json()["stored"] == 1
    page = _page(fleet, "/devices/broken-report")
    assert (
        '<table id="errors"><thead><tr><th scope="col">Code</th><th scope="col">Message</th></tr></thead>'
        "<tbody><tr><td><code>invalid_time</code></td><td>evaluation time input.at must be an RFC 3339 "
        "timestamp, got &lt;now&gt;</td></tr></tbody></table>"
    ) in page


def test_a_long_refusal_list_says_how_many_it_leaves_out(fleet: Fleet) -> None:
    """53 OPAs on r0 refuse r1 (the fixture's newest): 50 listed, and a line for the other 3."""
    refused = {"active_revision": "r0", "code": "bundle_error", "message": "signature verification failed"}
    for n in range(53):
        status = {"labels": {"id": f"opa-{n:02d}"}, "bundles": {"pyagent": refused}}
        assert fleet.client.post("/status", json=status, headers=fleet.auth("agent")).status_code == 204
    page = _page(fleet, "/")
    assert page.count("bundle_error signature verification failed</li>") == 50
    assert "<li>opa-49: bundle_error" in page and "opa-50" not in page
    assert "<li>and 3 more (the API's rollout lists them all)</li>" in page


def test_a_device_without_a_platform_is_counted_but_not_linked_to_a_list_that_would_be_empty(
    fleet: Fleet,
) -> None:
    """Its row is "no platform" (key "", which no platform is named): a link would list nothing."""
    event = _of("d-1", "no-platform", "eu-commission")
    del event["input"]["report"]["device"]["platform"]  # a report is stored as it was sent
    assert fleet.post_logs([event]).json()["stored"] == 1
    overview = _page(fleet, "/")
    assert '<th scope="row">no platform</th>' in overview
    assert "/devices?platform=" not in overview
    at = fleet.client.get("/devices/no-platform?at=2023-03-16T09:30:00Z", headers=fleet.auth("reader"))
    assert (at.status_code, "at: not a parameter of /devices/no-platform (it takes: none)" in at.text) == (
        400,
        True,
    )


def test_devices_named_dot_and_dot_dot_are_linked_to_pages_a_browser_reaches(fleet: Fleet) -> None:
    """A browser collapses ``/devices/..`` (and ``%2E%2E``) to ``/`` before asking: such ids led to the
    overview or a 404; they are linked as ``/device?id=``."""
    assert (
        fleet.post_logs([_of("d-dot", ".", "eu-commission"), _of("d-dots", "..", "eu-council")]).status_code
        == 200
    )
    listed = _page(fleet, "/devices")
    assert re.findall(r'href="(/device\?[^"]*)"', listed) == ["/device?id=.", "/device?id=.."]
    page = _page(fleet, "/device", id="..")
    assert re.findall(r'<h1 id="device-title">([^ <]+) ', page) == [".."]
    unknown = fleet.client.get("/device", params={"id": "nope"}, headers=fleet.auth("reader"))
    assert unknown.status_code == 404
    missing = fleet.client.get("/device", headers=fleet.auth("reader"))
    assert (missing.status_code, "id: the device&#x27;s id is required" in missing.text) == (400, True)


def test_a_past_overview_shows_no_rollout_of_today(fleet: Fleet) -> None:
    """Status keeps no history: a past overview showed today's newest revision and devices on it."""
    _populated(fleet)
    now = _page(fleet, "/")
    assert 'data-metric="on_newest"' in now and 'id="rollout-now-only"' not in now
    past = _page(fleet, "/", at="2023-03-16T09:45:00Z")
    assert 'data-metric="on_newest"' not in past and 'id="rollout-now-only"' in past


def test_a_revision_published_with_one_build_says_what_the_other_build_s_senders_get(fleet: Fleet) -> None:
    """r2 published with its Rego build only leaves the agents (wasm) on r1, the newest they can get:
    the rollout said r2 was the newest, with nothing to tell it holds no wasm build."""
    reader = fleet.auth("reader")
    whole = fleet.client.get("/api/v1/rollout/pyagent", headers=reader).json()
    assert (whole["newest"]["builds"], whole["newest_by_build"]) == (
        ["rego", "wasm"],
        {"rego": "r1", "wasm": "r1"},
    )
    assert "build only" not in _page(fleet, "/")
    fleet.store.publish(
        NewRevision("pyagent", "r2", None, False, "t", [BundleFile("rego", '"etag-r2"', b"rego-r2")])
    )
    rollout = fleet.client.get("/api/v1/rollout/pyagent", headers=reader).json()
    assert (rollout["newest"]["revision"], rollout["newest"]["builds"], rollout["newest_by_build"]) == (
        "r2", ["rego"], {"rego": "r2", "wasm": "r1"}
    )  # fmt: skip
    assert (
        '<code>r2</code> <span class="sub">(rego build only; newest wasm: <code>r1</code>)</span> on '
        in _page(fleet, "/")
    )
