"""The fleet API and dashboard at their edges: device ids holding line breaks, numbers written in other
scripts' digits, the overview as of year 1, the ban filter's case, the devices without an organisation
(beside one named "(none)"), and server tokens quoted in status errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from pyagent.server.app import create_app
from pyagent.server.auth import new_token, token_hash
from pyagent.server.instants import parse_instant
from pyagent.server.settings import ServerSettings
from pyagent.server.store import Store
from pyagent.server.store.base import StatusRow
from tests.server.conftest import decision_event

AT = "2023-03-16T09:30:00Z"


@dataclass
class Served:
    client: TestClient
    reader: dict[str, str]
    agent: dict[str, str]

    def post(self, *events: dict[str, Any]) -> None:
        answer = self.client.post("/logs", json=list(events), headers=self.agent)
        assert answer.json() == {"stored": len(events), "duplicates": 0, "ignored": 0}

    def get(self, path: str, **params: str) -> Any:
        return self.client.get(path, params=params, headers=self.reader)


def _serve(store: Store) -> Iterator[Served]:
    tokens = {role: new_token() for role in ("agent", "reader")}
    for role, secret in tokens.items():
        store.add_token(role, role, token_hash(secret))
    with TestClient(create_app(ServerSettings(), store)) as client:
        yield Served(client, *({"Authorization": f"Bearer {tokens[r]}"} for r in ("reader", "agent")))


@pytest.fixture
def served(store: Store) -> Iterator[Served]:
    """SQLite and PostgreSQL."""
    yield from _serve(store)


@pytest.fixture
def on_sqlite(sqlite_store: Store) -> Iterator[Served]:
    yield from _serve(sqlite_store)


# 1. ids with line breaks --------------------------------------------------------------------------

LINE_BREAKS = ["nl\nx", "cr\rx", "ls\u2028x", "a\n", "a/compliance\n"]


def test_an_id_holding_a_line_break_reaches_its_own_device(on_sqlite: Served) -> None:
    """Starlette's ``path`` convertor (``.*``) stops at a newline, and a route's ``$`` lets a last
    newline by: "a\\n" was answered as device "a". Every id reaches its own state, gate and page."""
    on_sqlite.post(decision_event("d-a", device_id="a", allow=True))
    on_sqlite.post(*(decision_event(f"d-{n}", device_id=device) for n, device in enumerate(LINE_BREAKS)))
    for n, device in enumerate(LINE_BREAKS):
        path = "/api/v1/devices/" + quote(device, safe="")
        state = on_sqlite.get(path)
        assert (state.status_code, state.json()["device_id"], state.json()["decision_id"]) == (
            200,
            device,
            f"d-{n}",
        )
        gate = on_sqlite.get(path + "/compliance")
        assert (gate.status_code, gate.json()) == (200, {
            "device_id": device, "compliant": False, "stale": True, "as_of": AT, "decision_id": f"d-{n}",
        })  # fmt: skip
        page = on_sqlite.get("/devices/" + quote(device, safe=""))
        shown = device.replace("\n", "\\x0a").replace("\r", "\\x0d").replace("\u2028", "\\u2028")
        assert (page.status_code, f'<h1 id="device-title">{shown} <span' in page.text) == (200, True)


def test_an_unknown_id_holding_a_line_break_is_a_json_404(on_sqlite: Served) -> None:
    on_sqlite.post(decision_event("d-a", device_id="a"))
    unknown = on_sqlite.get("/api/v1/devices/b%0A")
    assert (unknown.status_code, unknown.json()) == (
        404, {"code": "device_not_found", "message": "no decision is stored for device 'b\\n'"},
    )  # fmt: skip
    gate = on_sqlite.get("/api/v1/devices/b%0A/compliance")
    assert (gate.status_code, gate.json()) == (200, {
        "device_id": "b\n", "compliant": False, "stale": False, "as_of": None, "decision_id": None,
    })  # fmt: skip
    nowhere = on_sqlite.get("/api/v1/nope%0Ax")
    assert (nowhere.status_code, nowhere.json()) == (
        404, {"code": "not_found", "message": "GET /api/v1/nope\nx: not found"},
    )  # fmt: skip
    page = on_sqlite.get("/devices/b%0A")
    assert (page.status_code, "no decision is stored for device &#x27;b\\n&#x27;</p>" in page.text) == (
        404,
        True,
    )


# 2. numbers in ASCII digits only ------------------------------------------------------------------

WINDOW = {"from": "2023-03-14T00:00:00Z", "to": "2023-03-16T00:00:00Z"}
HISTORY = "expected a whole number from 0 to 10000"
STEP = (
    'expected a duration of at most 100 years, such as "1d", "24h", "90m", "1h30m", "45s", "PT1H", or seconds'
)


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/devices", {"limit": "\u00b2"}, "limit='\u00b2': expected a whole number from 1 to 1000"),
        ("/api/v1/devices", {"limit": "\u0661"}, "limit='\u0661': expected a whole number from 1 to 1000"),
        ("/api/v1/devices", {"limit": "1\n"}, "limit='1\\n': expected a whole number from 1 to 1000"),
        ("/api/v1/devices/a", {"history": "\u0661"}, "history='\u0661': " + HISTORY),
        ("/api/v1/devices/a", {"history": "\uff11"}, "history='\uff11': " + HISTORY),
        ("/api/v1/history", {**WINDOW, "step": "\u0661h"}, "step='\u0661h': " + STEP),
        ("/api/v1/history", {**WINDOW, "step": "1h\n"}, "step='1h\\n': " + STEP),
        ("/api/v1/summary", {"at": "\u0662\u0660\u0662\u0663-03-16T09:30:00Z"},
         "at='\u0662\u0660\u0662\u0663-03-16T09:30:00Z': expected an RFC 3339 timestamp, "
         "e.g. 2023-03-16T09:30:00Z"),
    ],
)  # fmt: skip
def test_numbers_are_ascii_digits_only(
    on_sqlite: Served, path: str, params: dict[str, str], message: str
) -> None:
    """int() reads other scripts' digits: a superscript two raised a ValueError (500), an Arabic-Indic
    one was read as 1."""
    on_sqlite.post(decision_event("d-a", device_id="a"))
    answer = on_sqlite.get(path, **params)
    assert (answer.status_code, answer.json()) == (400, {"code": "invalid_parameter", "message": message})


def test_the_end_of_a_history_counts_in_its_limit(on_sqlite: Served) -> None:
    """1,000 steps stop short of `to`, which is a point too: 1,001 points were answered."""
    window = {"from": "2023-03-16T06:00:00Z", "step": "1s"}
    over = on_sqlite.get("/api/v1/history", **window, to="2023-03-16T06:16:39.5Z")
    assert (over.status_code, over.json()["message"]) == (
        400, "history: 1001 points asked, at most 1000: widen step or narrow from/to"
    )  # fmt: skip
    points = on_sqlite.get("/api/v1/history", **window, to="2023-03-16T06:16:38.5Z").json()["points"]
    assert (len(points), points[-1]["at"]) == (1000, "2023-03-16T06:16:38.500000Z")


def test_a_step_is_read_as_a_configured_duration_is(on_sqlite: Served) -> None:
    """One grammar for the API's steps and the config's stale_after: days to seconds, or seconds."""
    on_sqlite.post(decision_event("d-a", device_id="a"))
    steps = ("5400", "90m", "1h30m", "PT1H30M", "PT90M", "PT5400S")
    points = {step: on_sqlite.get("/api/v1/history", **WINDOW, step=step) for step in steps}
    assert {step: answer.status_code for step, answer in points.items()} == dict.fromkeys(points, 200)
    assert all(points[step].json() == points["5400"].json() for step in steps)
    assert [p["at"] for p in points["1h30m"].json()["points"]][:3] == [
        "2023-03-14T00:00:00Z", "2023-03-14T01:30:00Z", "2023-03-14T03:00:00Z",
    ]  # fmt: skip
    too_long = on_sqlite.get("/api/v1/history", **WINDOW, step="36501d")
    assert (too_long.status_code, too_long.json()["message"]) == (400, "step='36501d': " + STEP)


def test_the_history_ends_at_to_when_its_steps_stop_short(on_sqlite: Served) -> None:
    """9:00 to 10:00 by 7 minutes: the steps stop at 9:56, and a decision at 9:58 was in no point (the
    chart ended before the figures it is drawn beside)."""
    on_sqlite.post(decision_event("d-late", device_id="a", at="2023-03-16T09:58:00Z", allow=True))
    window = {"from": "2023-03-16T09:00:00Z", "to": "2023-03-16T10:00:00Z", "step": "7m"}
    points = on_sqlite.get("/api/v1/history", **window).json()["points"]
    assert [p["at"] for p in points][-3:] == [
        "2023-03-16T09:49:00Z",
        "2023-03-16T09:56:00Z",
        "2023-03-16T10:00:00Z",
    ]
    summary = on_sqlite.get("/api/v1/summary", at="2023-03-16T10:00:00Z").json()
    assert (points[-2]["devices"], points[-1]["devices"], points[-1]["compliant"]) == (0, 1, 1)
    assert (summary["devices"], summary["compliant"]) == (1, 1)


def test_a_number_too_long_for_int_is_a_400(on_sqlite: Served) -> None:
    answer = on_sqlite.get("/api/v1/devices", limit="1" * 5000)  # int() refuses more than 4300 digits
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_parameter")


@pytest.mark.parametrize("limit", ["\u00b2", "\u0661"])
def test_the_dashboard_device_list_limit_is_ascii_digits_only(on_sqlite: Served, limit: str) -> None:
    page = on_sqlite.get("/devices", limit=limit)
    expected = f"limit=&#x27;{limit}&#x27;: expected a whole number from 1 to 500"
    assert (page.status_code, f'<p class="error" role="alert">{expected}</p>' in page.text) == (400, True)


# 3. the overview as of year 1 ---------------------------------------------------------------------


@pytest.mark.parametrize("at", ["0001-01-05T00:00:00Z", "0001-01-01T00:00:00Z", "0001-01-14T23:59:59Z"])
def test_the_overview_as_of_the_first_days_is_answered(on_sqlite: Served, at: str) -> None:
    """Its trend goes back 14 days, before year 1: it starts on year 1's first day (was a 500)."""
    on_sqlite.post(decision_event("d-a", device_id="a"))
    page = on_sqlite.get("/", at=at)
    assert (page.status_code, f'<time id="as-of" datetime="{at}">{at}</time>' in page.text) == (200, True)
    assert (
        '<td class="num" data-at="0001-01-01 00:00" data-metric="devices" data-value="0">0</td>' in page.text
    )


# 4. the ban filter is exact -----------------------------------------------------------------------


def _banned(decision_id: str, device: str, *bans: str) -> dict[str, Any]:
    event = decision_event(decision_id, device_id=device)
    event["result"]["violations"] = [{"rule": f"rule/{ban}", "ban": ban} for ban in bans]
    return event


@pytest.mark.parametrize(
    ("ban", "devices"),
    [("tiktok", ["lower"]), ("TikTok", ["upper"]), ("TIKTOK", []), ("tik_tok", ["under"]), ("tik%tok", []),
     ("tik", []), ("tiktok|TikTok", [])],
)  # fmt: skip
def test_the_ban_filter_is_exact_and_case_sensitive(served: Served, ban: str, devices: list[str]) -> None:
    """SQLite's LIKE ignores case, PostgreSQL's does not: one answer on both, the ban as named."""
    served.post(_banned("d-1", "lower", "tiktok"), _banned("d-2", "upper", "TikTok", "x"),
                _banned("d-3", "under", "tik_tok"), _banned("d-4", "both", "a", "tiktokx"))  # fmt: skip
    answer = served.get("/api/v1/devices", ban=ban)
    assert (answer.status_code, [d["device_id"] for d in answer.json()["devices"]]) == (200, devices)


# 5. devices without an organisation ---------------------------------------------------------------


def _of(decision_id: str, device: str, organization: str | None) -> dict[str, Any]:
    event = decision_event(decision_id, device_id=device, allow=organization is None)
    if organization is None:
        del event["result"]["organization"], event["input"]["report"]["device"]["organization"]
    else:
        event["result"]["organization"] = event["input"]["report"]["device"]["organization"] = organization
    return event


COUNTS = {"compliant": 0, "invalid": 0, "undecided": 0}
ONE_STALE = {"devices": 1, **COUNTS, "non_compliant": 1, "stale": 1}
STALE_AT = "2023-03-18T00:00:00Z"


def test_devices_without_an_organisation_are_their_own_group(served: Served) -> None:
    """They are listed under "" (no organisation is named that), asked for with no_organization=true,
    and never merged with an organisation named "(none)"."""
    served.post(
        _of("d-1", "orgless", None), _of("d-2", "named-none", "(none)"), _of("d-3", "eu", "eu-council")
    )
    summary = served.get("/api/v1/summary").json()
    assert summary["by_organization"] == {"": ONE_STALE, "(none)": ONE_STALE, "eu-council": ONE_STALE}
    asked = [({"no_organization": "true"}, ["orgless"]), ({"no_organization": "1"}, ["orgless"]),
             ({"organization": "(none)"}, ["named-none"]), ({}, ["eu", "named-none", "orgless"])]  # fmt: skip
    for params, devices in asked:
        listed = served.get("/api/v1/devices", **params).json()["devices"]
        assert [(d["device_id"], d["organization"]) for d in listed] == [
            (device, {"orgless": None, "named-none": "(none)", "eu": "eu-council"}[device])
            for device in devices
        ]
    for at in ({}, {"at": STALE_AT}):
        assert served.get("/api/v1/summary", no_organization="true", **at).json()["by_organization"] == {
            "": ONE_STALE
        }
        named = served.get("/api/v1/summary", organization="(none)", **at).json()
        assert named["by_organization"] == {"(none)": ONE_STALE}
    points = served.get("/api/v1/history", no_organization="true", step="1d",
                        **{"from": "2023-03-16T00:00:00Z", "to": STALE_AT}).json()["points"]  # fmt: skip
    fresh = {"devices": 1, **COUNTS, "compliant": 1, "non_compliant": 0, "stale": 0}
    assert [{k: p[k] for k in fresh} for p in points] == [
        {**fresh, "devices": 0, "compliant": 0},
        fresh,
        ONE_STALE,
    ]
    assert served.get("/api/v1/devices", no_organization="true", organization="x").json() == {
        "code": "invalid_parameter",
        "message": "organization and no_organization=true: give one or the other",
    }  # fmt: skip
    assert served.get("/api/v1/summary", no_organization="false").json() == {
        "code": "invalid_parameter", "message": "no_organization='false': expected true",
    }  # fmt: skip


def test_the_dashboard_offers_the_devices_without_an_organisation_apart(served: Served) -> None:
    served.post(_of("d-1", "orgless", None), _of("d-2", "named-none", "(none)"))
    overview = served.get("/").text
    assert '<option value="">all</option><option value="(none)">(none)</option></select>' in overview
    assert '<input type="checkbox" name="no_organization" value="true"> without organisation' in overview
    orgless = '<a href="/devices?no_organization=true"><em>without organisation</em></a>'
    assert f'<th scope="row">{orgless}</th>' in overview
    assert '<th scope="row"><a href="/devices?organization=%28none%29">(none)</a></th>' in overview
    narrowed = served.get("/", no_organization="true").text
    assert '<input type="checkbox" name="no_organization" value="true" checked>' in narrowed
    assert "</time> · without organisation</p>" in narrowed
    assert 'data-metric="devices" data-value="1"' in narrowed and 'data-org="(none)"' not in narrowed
    listed = served.get("/devices", no_organization="true").text
    assert 'data-device="orgless"' in listed and 'data-device="named-none"' not in listed
    assert '<option value="true" selected>yes</option>' in listed
    named = served.get("/devices", organization="(none)").text
    assert 'data-device="named-none"' in named and 'data-device="orgless"' not in named
    # the box still ticked when an organisation is then chosen (a review found a 400): the name wins
    both = served.get("/devices", organization="(none)", no_organization="true")
    assert both.status_code == 200
    assert 'data-device="named-none"' in both.text and 'data-device="orgless"' not in both.text
    assert served.get("/", organization="(none)", no_organization="true").status_code == 200


# 7. server tokens in status errors ----------------------------------------------------------------


def test_server_tokens_quoted_in_a_status_are_redacted(on_sqlite: Served) -> None:
    """A status error may quote a request with the sender's pyagent token in it (token=pya_…), not
    only as a bearer credential: readers never see one, on the API, the rollout or the dashboard."""
    token = new_token()
    quoted = f"download failed: GET /bundles/pyagent token={token} (401)"
    message = {"labels": {"id": "a"}, "bundles": {"pyagent": {
        "active_revision": "r0", "code": "bundle_error", "message": quoted, "errors": [f"X-Token: {token}"],
    }}}  # fmt: skip
    assert on_sqlite.client.post("/status", json=message, headers=on_sqlite.agent).status_code == 204
    on_sqlite.post(decision_event("d-a", device_id="a"))
    _published(on_sqlite)
    bundle = on_sqlite.get("/api/v1/devices/a").json()["status"]["bundles"]["pyagent"]
    assert (bundle["message"], bundle["errors"]) == (
        "download failed: GET /bundles/pyagent token=*** (401)",
        ["X-Token: ***"],
    )
    refusal = on_sqlite.get("/api/v1/rollout/pyagent").json()["refusals"][0]
    assert (refusal["message"], refusal["errors"]) == (bundle["message"], bundle["errors"])
    for page in ("/devices/a", "/"):
        assert token not in on_sqlite.get(page).text


def test_a_token_stored_before_redaction_knew_its_form_is_not_shown(on_sqlite: Served) -> None:
    """What an older server stored unredacted is redacted when read, too."""
    token = new_token()
    store: Store = on_sqlite.client.app.state.ctx.store  # type: ignore[attr-defined]
    bundles = {"pyagent": {"active_revision": "r0", "code": "bundle_error", "message": f"token={token}"}}
    errors = [{"bundle": "pyagent", "message": f"token={token}"}]
    store.record_status(StatusRow("a", '{"id": "a"}', json.dumps(bundles), json.dumps(errors), "{}"))
    on_sqlite.post(decision_event("d-a", device_id="a"))
    _published(on_sqlite)
    status = on_sqlite.get("/api/v1/devices/a").json()["status"]
    assert (status["bundles"]["pyagent"]["message"], status["errors"]) == (
        "token=***",
        [{"bundle": "pyagent", "message": "token=***"}],
    )
    assert on_sqlite.get("/api/v1/rollout/pyagent").json()["refusals"][0]["message"] == "token=***"
    assert token not in on_sqlite.get("/devices/a").text


def _published(served: Served) -> None:
    """Revision ``r1``, newer than the ``r0`` the statuses report (refused, so listed by rollout)."""
    from pyagent.server.store.base import BundleFile, NewRevision

    store: Store = served.client.app.state.ctx.store  # type: ignore[attr-defined]
    store.publish(NewRevision("pyagent", "r1", None, False, "t", [BundleFile("wasm", '"r1"', b"x")]))


def test_a_revision_named_none_is_its_own_and_no_revision_is_counted_under_empty(on_sqlite: Served) -> None:
    for device in ("named", "reporting-none", "undecided-by-status"):
        on_sqlite.post(decision_event(f"d-{device}", device_id=device))
    _published(on_sqlite)
    for device, bundle in (("named", {"active_revision": "(none)"}), ("reporting-none", {})):
        message = {"labels": {"id": device}, "bundles": {"pyagent": bundle}}
        assert on_sqlite.client.post("/status", json=message, headers=on_sqlite.agent).status_code == 204
    rollout = on_sqlite.get("/api/v1/rollout/pyagent").json()
    assert (rollout["by_revision"], rollout["instances_by_revision"]) == (
        {"": 2, "(none)": 1},
        {"": 1, "(none)": 1},
    )
    rows = on_sqlite.get("/").text
    assert '<tr><td>no revision</td><td class="num" data-bundle="pyagent" data-revision=""' in rows
    assert (
        '<tr><td><code>(none)</code></td><td class="num" data-bundle="pyagent" data-revision="(none)"' in rows
    )


def test_an_organisation_named_with_a_bidi_override_can_be_chosen(served: Served) -> None:
    """Its option is shown as \\u202e (never obeyed) but sends the name itself, so choosing it finds it."""
    served.post(_of("d-1", "rtl", "\u202eorg"), _of("d-2", "other", "org"))
    overview = served.get("/").text
    assert '<option value="\u202eorg">\\u202eorg</option>' in overview
    chosen = served.get("/devices", organization="\u202eorg").text
    assert 'data-device="rtl"' in chosen and 'data-device="other"' not in chosen
    assert '<input name="organization" value="\u202eorg">' in chosen  # submitted again, the same filter


def test_allow_filters_by_the_decision_s_allow_and_undecided_devices_by_compliant(served: Served) -> None:
    """``allow=false`` listed undecided devices too, whose ``allow`` is null; those are in
    ``compliant=false``, with the denied ones."""
    undecided = decision_event("d-u", device_id="undecided")
    del undecided["result"]
    allowed, denied = (
        decision_event("d-y", device_id="allowed", allow=True),
        decision_event("d-n", device_id="denied"),
    )
    served.post(allowed, denied, undecided)
    listed = {
        query: [
            (d["device_id"], d["allow"])
            for d in served.get("/api/v1/devices", **dict([query])).json()["devices"]
        ]
        for query in (("allow", "true"), ("allow", "false"), ("compliant", "false"))
    }
    assert listed == {
        ("allow", "true"): [("allowed", True)],
        ("allow", "false"): [("denied", False)],
        ("compliant", "false"): [
            ("allowed", True),
            ("denied", False),
            ("undecided", None),
        ],  # all stale (2023)
    }


# 5. instants with a fraction and an offset --------------------------------------------------------


def test_an_instant_with_a_fraction_and_an_offset_is_read_in_utc(on_sqlite: Served) -> None:
    """An OPA logs ``input.at`` as its client asked it: 09:00:00.25+05:00 is 04:00:00.25 UTC. The
    offset's digits were read as the fraction's (09:00:00.2505, offset dropped): a decision made in
    the past was ignored as dated after its arrival, and one in the future was stored in the past."""
    assert parse_instant("2023-03-16T09:00:00.25+05:00") == parse_instant("2023-03-16T04:00:00.25Z")
    assert parse_instant("2023-03-16T09:00:00.5-05:30").isoformat() == "2023-03-16T14:30:00.500000+00:00"
    on_sqlite.post(decision_event("d-offset", device_id="a", at="2023-03-16T09:00:00.25+05:00"))
    history = on_sqlite.get("/api/v1/devices/a", history="5").json()["history"]
    assert [h["decided_at"] for h in history] == ["2023-03-16T04:00:00.250000Z"]


def test_the_overviews_last_trend_point_is_its_figures(on_sqlite: Served) -> None:
    """A decision dated a little ahead of the server's clock (within the five minutes taken) is a
    device's current state, counted in the overview's figures; the trend's last point, now, counts it
    too (the history counts it from its own instant on): one page, one set of figures."""
    ahead = (datetime.now(UTC) + timedelta(minutes=3)).isoformat(timespec="seconds").replace("+00:00", "Z")
    on_sqlite.post(
        decision_event("d-now", device_id="now"), decision_event("d-ahead", at=ahead, device_id="ahead")
    )
    overview = on_sqlite.get("/").text
    tiles = overview[overview.index('<section class="kpis"') : overview.index("</section>")]
    trend = overview[overview.index("Compliance over time") :]
    trend = trend[: trend.index("</table>")]
    last_row = trend[trend.rindex("<tr>") :]
    for metric, value in (("devices", 2), ("non_compliant", 2), ("stale", 1), ("compliant", 0)):
        assert f'data-metric="{metric}" data-value="{value}"' in tiles
        assert f'data-metric="{metric}" data-value="{value}"' in last_row
    assert on_sqlite.get("/api/v1/summary").json()["devices"] == 2
