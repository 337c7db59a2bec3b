"""The fleet API on real decisions: a generated fleet decided by the embedded engine at two instants,
uploaded as decision-log events through ``POST /logs``, then asked for its summary now and as of past
instants, its history, device pages and access-gating answers. SQLite and PostgreSQL both; every
expected figure is recounted here from the decisions themselves."""

from __future__ import annotations

import gzip
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from pyagent.engines.base import EngineSettings
from pyagent.engines.embedded import EmbeddedEngine
from pyagent.fleet.generate import devices as generated_devices
from pyagent.server.app import create_app
from pyagent.server.auth import new_token, token_hash
from pyagent.server.instants import parse_instant
from pyagent.server.settings import ServerSettings
from pyagent.server.store import open_store

T1 = "2023-03-14T12:00:00Z"  # before the EU bans take effect (15 March)
T2 = "2023-03-16T12:00:00Z"
LATE = "2023-03-15T12:00:00Z"  # uploaded after T2's decisions, decided between
FLEET = 48
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Decided:
    device_id: str
    organization: str
    platform: str
    at: str
    verdict: str
    bans: tuple[str, ...]
    event: dict[str, Any]


def _decide(engine: EmbeddedEngine, report: dict[str, Any], at: str) -> Decided:
    result = engine.evaluate({"at": at, "report": report})
    violations, errors = result.get("violations") or [], result.get("errors") or []
    allow = bool(result["allow"]) and not violations and not errors
    device = report["device"]
    event = {
        "decision_id": str(uuid.uuid4()), "labels": {"id": device["id"], "version": "test"},
        "path": "pyagent/decision", "input": {"at": at, "report": report}, "result": result, "timestamp": at,
    }  # fmt: skip
    return Decided(
        device["id"], result.get("organization") or device["organization"], device["platform"], at,
        "invalid" if errors else "compliant" if allow else "non_compliant",
        tuple(sorted({v["ban"] for v in violations})), event,
    )  # fmt: skip


@pytest.fixture(scope="module")
def decided(policy_bundle: Path) -> list[Decided]:
    engine = EmbeddedEngine.from_settings(EngineSettings(engine="embedded", bundle=str(policy_bundle)))
    reports = list(generated_devices(FLEET, seed=20230315, apps_per_device=30))
    made = [_decide(engine, report, T1) for report in reports]
    made += [_decide(engine, report, T2) for report in reports[: FLEET - 6]]  # six go silent after T1
    made += [_decide(engine, reports[0], LATE)]
    return made


def expected_summary(decided: list[Decided], at: str, stale_after: timedelta = DAY) -> dict[str, Any]:
    instant = parse_instant(at)
    latest: dict[str, Decided] = {}
    for d in decided:
        if parse_instant(d.at) <= instant and (d.device_id not in latest or d.at > latest[d.device_id].at):
            latest[d.device_id] = d
    totals: Counter[str] = Counter()
    by_org: dict[str, Counter[str]] = {}
    by_platform: dict[str, Counter[str]] = {}
    by_ban: Counter[str] = Counter()
    for d in latest.values():
        stale = parse_instant(d.at) < instant - stale_after
        status = "non_compliant" if stale else d.verdict
        groups = (by_org.setdefault(d.organization, Counter()), by_platform.setdefault(d.platform, Counter()))
        for counts in (totals, *groups):
            counts.update({"devices": 1, status: 1, "stale": int(stale)})
        by_ban.update(d.bans)
    keys = ("devices", "compliant", "non_compliant", "invalid", "undecided", "stale")
    return {
        **{k: totals[k] for k in keys},
        "by_organization": {o: {k: c[k] for k in keys} for o, c in sorted(by_org.items())},
        "by_platform": {p: {k: c[k] for k in keys} for p, c in sorted(by_platform.items())},
        "by_ban": {b: {"devices": n} for b, n in sorted(by_ban.items())},
    }


@dataclass
class Api:
    client: TestClient
    reader: dict[str, str]
    agent: dict[str, str]

    def get(self, path: str, **params: str) -> Any:
        response = self.client.get(path, params=params, headers=self.reader)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def api(db_url: str, decided: list[Decided]) -> Iterator[Api]:
    store = open_store(db_url)
    tokens = {role: new_token() for role in ("agent", "reader")}
    for role, secret in tokens.items():
        store.add_token(role, role, token_hash(secret))
    with TestClient(create_app(ServerSettings(), store)) as client:
        api = Api(
            client,
            {"Authorization": f"Bearer {tokens['reader']}"},
            {"Authorization": f"Bearer {tokens['agent']}"},
        )
        ordered = [d for d in decided if d.at != LATE] + [d for d in decided if d.at == LATE]
        for start in range(0, len(ordered), 20):  # the late decision arrives last
            body = gzip.compress(json.dumps([d.event for d in ordered[start : start + 20]]).encode())
            headers = {**api.agent, "Content-Encoding": "gzip", "Content-Type": "application/json"}
            assert client.post("/logs", content=body, headers=headers).status_code == 200
        yield api
    store.close()


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "devices",
        "compliant",
        "non_compliant",
        "invalid",
        "undecided",
        "stale",
        "by_organization",
        "by_platform",
        "by_ban",
    )
    return {k: summary[k] for k in keys}


@pytest.mark.parametrize("at", [T1, LATE, T2, "2023-03-17T12:00:01Z", "2023-03-13T00:00:00Z"])
def test_summary_at_an_instant_is_exact_and_repeatable(api: Api, decided: list[Decided], at: str) -> None:
    first = api.get("/api/v1/summary", at=at)
    assert _comparable(first) == expected_summary(decided, at)
    assert api.get("/api/v1/summary", at=at) == first
    assert first["at"] == at


def test_the_fleet_has_both_outcomes(decided: list[Decided]) -> None:
    at_t2 = expected_summary(decided, T2)
    assert at_t2["compliant"] > 0 and at_t2["non_compliant"] > at_t2["stale"] > 0
    assert expected_summary(decided, T1)["by_ban"] != at_t2["by_ban"]  # the bans took effect between


def test_summary_by_organization_filter(api: Api, decided: list[Decided]) -> None:
    whole = expected_summary(decided, T2)
    for organization, counts in whole["by_organization"].items():
        narrowed = api.get("/api/v1/summary", at=T2, organization=organization)
        assert {k: narrowed[k] for k in counts} == counts
        assert list(narrowed["by_organization"]) == [organization]


def test_summary_now_counts_every_silent_device_as_stale(api: Api) -> None:
    now = api.get("/api/v1/summary")
    assert (now["devices"], now["compliant"], now["stale"], now["non_compliant"]) == (FLEET, 0, FLEET, FLEET)


def test_history_points_equal_the_summaries(api: Api, decided: list[Decided]) -> None:
    answer = api.get("/api/v1/history", **{"from": T1, "to": T2, "step": "12h"})
    assert [p["at"] for p in answer["points"]] == [
        T1, "2023-03-15T00:00:00Z", LATE, "2023-03-16T00:00:00Z", T2,
    ]  # fmt: skip
    for point in answer["points"]:
        expected = expected_summary(decided, point["at"])
        assert {k: point[k] for k in ("devices", "compliant", "non_compliant", "invalid", "stale")} == {
            k: expected[k] for k in ("devices", "compliant", "non_compliant", "invalid", "stale")
        }


def test_a_late_upload_lands_at_its_own_instant(api: Api, decided: list[Decided]) -> None:
    first = decided[0].device_id
    device = api.get(f"/api/v1/devices/{first}", history="10")
    assert device["decided_at"] == T2  # the late decision did not overwrite the newer state
    assert [h["decided_at"] for h in device["history"]] == [T2, LATE, T1]
    assert device["history_truncated"] is False
    # when each was stored: a decision dated back shows it (the history was rewritten without a trace)
    received = [datetime.fromisoformat(h["received_at"]) for h in device["history"]]
    assert all(r.tzinfo == UTC and r > datetime.fromisoformat(T2) for r in received), received
    assert received[1] >= received[0]  # LATE was uploaded after T2's decision, though decided before it
    newest = api.get(f"/api/v1/devices/{first}", history="2")
    assert ([h["decided_at"] for h in newest["history"]], newest["history_truncated"]) == ([T2, LATE], True)
    exact = api.get(f"/api/v1/devices/{first}", history="3")
    assert (len(exact["history"]), exact["history_truncated"]) == (3, False)


def test_device_pages_cover_the_fleet_once(api: Api, decided: list[Decided]) -> None:
    seen: list[str] = []
    cursor = ""
    while True:
        page = api.get("/api/v1/devices", limit="7", cursor=cursor)
        seen += [d["device_id"] for d in page["devices"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == sorted({d.device_id for d in decided})


def test_device_filters(api: Api, decided: list[Decided]) -> None:
    latest = {d.device_id: d for d in sorted(decided, key=lambda d: d.at)}
    tiktok = api.get("/api/v1/devices", ban="tiktok", limit="1000")["devices"]
    assert sorted(d["device_id"] for d in tiktok) == sorted(
        k for k, d in latest.items() if "tiktok" in d.bans
    )
    org = "eu-council"
    council = api.get("/api/v1/devices", organization=org, limit="1000")["devices"]
    assert sorted(d["device_id"] for d in council) == sorted(
        k for k, d in latest.items() if d.organization == org
    )
    assert api.get("/api/v1/devices", compliant="true")["devices"] == []  # everything is stale now
    allowed = api.get("/api/v1/devices", allow="true", limit="1000")["devices"]
    allows = {k: d.event["result"]["allow"] for k, d in latest.items()}
    assert sorted(d["device_id"] for d in allowed) == sorted(k for k, allow in allows.items() if allow)
    assert {(d["allow"], d["compliant"], d["stale"]) for d in allowed} == {(True, False, True)}
    denied = api.get("/api/v1/devices", allow="false", limit="1000")["devices"]
    assert sorted(d["device_id"] for d in denied) == sorted(k for k, allow in allows.items() if not allow)
    assert {d["allow"] for d in denied} == {False}
    for spelled, wanted in [("True", allowed), ("1", allowed), ("False", denied), ("0", denied)]:
        assert api.get("/api/v1/devices", allow=spelled, limit="1000")["devices"] == wanted
    bad = api.client.get("/api/v1/devices", params={"allow": "maybe"}, headers=api.reader)
    assert (bad.status_code, bad.json()["message"]) == (400, "allow='maybe': expected true or false")
    stale = api.get("/api/v1/devices", stale="true", limit="1000")["devices"]  # decided in 2023: all
    assert [d["device_id"] for d in stale] == sorted(latest)
    assert api.get("/api/v1/devices", stale="false")["devices"] == []
    bad = api.client.get("/api/v1/devices", params={"stale": "maybe"}, headers=api.reader)
    assert (bad.status_code, bad.json()["message"]) == (400, "stale='maybe': expected true or false")


def test_compliance_for_access_gating(api: Api, decided: list[Decided]) -> None:
    unknown = api.get("/api/v1/devices/nobody/compliance")
    assert unknown == {"device_id": "nobody", "compliant": False, "stale": False, "as_of": None,
                       "decision_id": None}  # fmt: skip
    stale = api.get(f"/api/v1/devices/{decided[0].device_id}/compliance")
    assert (stale["compliant"], stale["stale"], stale["as_of"]) == (False, True, T2)
    fresh_report = dict(decided[1].event["input"]["report"])
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    allowed = {"allow": True, "violations": [], "errors": [], "warnings": []}
    event = {**decided[1].event, "decision_id": "fresh", "input": {"at": now, "report": fresh_report},
             "result": allowed, "timestamp": now}  # fmt: skip
    assert api.client.post("/logs", json=[event], headers=api.agent).status_code == 200
    fresh = api.get(f"/api/v1/devices/{decided[1].device_id}/compliance")
    assert fresh == {"device_id": decided[1].device_id, "compliant": True, "stale": False, "as_of": now,
                     "decision_id": "fresh"}  # fmt: skip
    not_stale = api.get("/api/v1/devices", stale="false")["devices"]
    assert [d["device_id"] for d in not_stale] == [decided[1].device_id]


def test_rollout_per_bundle(api: Api, decided: list[Decided]) -> None:
    store = api.client.app.state.ctx.store  # type: ignore[attr-defined]
    from pyagent.server.store.base import BundleFile, NewRevision

    for revision in ("r1", "r2"):
        store.publish(
            NewRevision("pyagent", revision, None, False, "t", [BundleFile("wasm", f'"{revision}"', b"x")])
        )
    ids = sorted({d.device_id for d in decided})
    for device_id, active, error in [
        (ids[0], "r2", "server replied with HTTP 503"),  # a failed poll on the newest: no refusal
        (ids[1], "r1", "signature verification failed"),
    ]:
        info: dict[str, Any] = {"active_revision": active}
        if error:
            info.update(code="bundle_error", message=error)
        message = {"labels": {"id": device_id}, "bundles": {"pyagent": info}}
        assert api.client.post("/status", json=message, headers=api.agent).status_code == 204
    rollout = api.get("/api/v1/rollout/pyagent")
    assert rollout["newest"]["revision"] == "r2"
    assert (rollout["devices"], rollout["on_newest"]) == (FLEET, 1)
    assert rollout["by_revision"] == {"": FLEET - 2, "r1": 1, "r2": 1}
    opa_instance = {"labels": {"id": "opa-7f3a"}, "bundles": {"pyagent": {"active_revision": "r1",
                    "code": "bundle_error", "message": "download failed"}}}  # fmt: skip
    assert api.client.post("/status", json=opa_instance, headers=api.agent).status_code == 204
    rollout = api.get("/api/v1/rollout/pyagent")
    assert [(r["instance_id"], r["message"], r["device"]) for r in rollout["refusals"]] == [
        (ids[1], "signature verification failed", True),
        ("opa-7f3a", "download failed", False),  # an OPA instance: no device page
    ]
    assert [(r["instance_id"], r["message"]) for r in rollout["errors_on_newest"]] == [
        (ids[0], "server replied with HTTP 503")  # on r2, the newest: it refused nothing published
    ]  # fmt: skip
    assert api.client.get("/api/v1/rollout/nope", headers=api.reader).status_code == 404
    page = api.client.get("/", headers=api.reader).text
    assert f'href="/devices/{ids[1]}">{ids[1]}</a>: bundle_error' in page
    assert "<li>opa-7f3a: bundle_error download failed</li>" in page
    newest_errors = page[page.index("<p>On the newest, with an error:</p>") :]
    assert (
        f'href="/devices/{ids[0]}">{ids[0]}</a>: bundle_error server replied with HTTP 503' in newest_errors
    )
    assert page.index("<p>Refused the newest:</p>") < page.index("opa-7f3a") < page.index("On the newest")

    # one organisation's rollout: its devices, their refusals, no OPA instance (it is no device)
    organization = next(d.organization for d in decided if d.device_id == ids[1])
    members = {d.device_id for d in decided if d.organization == organization}
    mine = api.get("/api/v1/rollout/pyagent", organization=organization)
    assert (mine["devices"], mine["on_newest"]) == (len(members), int(ids[0] in members))
    mine_on_r2 = int(ids[0] in members)
    assert mine["by_revision"] == {
        "": len(members) - 1 - mine_on_r2, "r1": 1, **({"r2": 1} if mine_on_r2 else {})
    }  # fmt: skip
    assert [r["instance_id"] for r in mine["refusals"]] == [ids[1]]
    assert mine["instances_by_revision"] == {"r1": 1, **({"r2": 1} if ids[0] in members else {})}


def test_the_overview_filtered_by_organisation_lists_only_its_stale_devices(
    api: Api, decided: list[Decided]
) -> None:
    """Every device is stale now (decided in 2023); filtered, the overview lists only the chosen
    organisation's, and keeps the organisation selectable even where none of its devices is counted."""
    organizations = sorted({d.organization for d in decided})
    chosen = organizations[0]
    page = api.client.get("/", params={"organization": chosen}, headers=api.reader).text
    stale_section = page[page.index("Stale devices") :]
    listed = {d.device_id for d in decided if f'href="/devices/{d.device_id}"' in stale_section}
    members = {d.device_id for d in decided if d.organization == chosen}
    assert 0 < len(members) <= 20  # the overview lists up to 20 stale devices: all of them here
    assert listed == members
    before = api.client.get(
        "/", params={"organization": chosen, "at": "2001-01-01T00:00:00Z"}, headers=api.reader
    )
    assert f'<option value="{chosen}" selected>{chosen}</option>' in before.text


def test_the_overview_at_a_past_instant_lists_the_devices_stale_then(
    api: Api, decided: list[Decided]
) -> None:
    """On 17 March the six devices silent since T1 (14 March) were stale, and no other; today every
    device is, but the overview as of then must show then."""
    at = "2023-03-17T00:00:00Z"
    silent = {d.device_id for d in decided} - {d.device_id for d in decided if d.at != T1}
    assert len(silent) == 6
    page = api.client.get("/", params={"at": at}, headers=api.reader).text
    stale_section = page[page.index("Stale devices") :]
    listed = {d.device_id for d in decided if f'href="/devices/{d.device_id}"' in stale_section}
    assert listed == silent and "All stale devices" not in stale_section
    organization = sorted({d.organization for d in decided if d.device_id in silent})[0]
    page = api.client.get("/", params={"at": at, "organization": organization}, headers=api.reader).text
    stale_section = page[page.index("Stale devices") :]
    listed = {d.device_id for d in decided if f'href="/devices/{d.device_id}"' in stale_section}
    assert listed == {
        d.device_id for d in decided if d.device_id in silent and d.organization == organization
    }


def test_exports_csv(api: Api, decided: list[Decided]) -> None:
    devices_csv = api.client.get("/api/v1/devices", params={"format": "csv"}, headers=api.reader)
    lines = devices_csv.text.strip().split("\r\n")
    assert (
        lines[0]
        == "device_id,organization,platform,compliant,verdict,stale,bans,decided_at,decision_id,last_seen"
    )
    assert len(lines) == 1 + FLEET
    summary_csv = api.client.get("/api/v1/summary", params={"format": "csv", "at": T2}, headers=api.reader)
    expected = expected_summary(decided, T2)
    first = summary_csv.text.split("\r\n")[1]
    assert first == "fleet,all," + ",".join(
        str(expected[k]) for k in ("devices", "compliant", "non_compliant", "invalid", "undecided", "stale")
    )


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/devices", {"cursor": "!!!!"}, "cursor: not a cursor this API gave out"),
        ("/api/v1/devices", {"cursor": "ZGV2"[:3] + "="}, "cursor: not a cursor this API gave out"),
        ("/api/v1/devices", {"cursor": "AA"}, "cursor: not a cursor this API gave out"),  # a NUL
        ("/api/v1/devices", {"format": "xml"}, "format='xml': expected json or csv"),
        ("/api/v1/summary", {"format": "xml"}, "format='xml': expected json or csv"),
        (
            "/api/v1/history",
            {"from": "2023-03-17T00:00:00Z", "to": "2023-03-16T00:00:00Z", "step": "1h"},
            "history: from (2023-03-17T00:00:00Z) is after to (2023-03-16T00:00:00Z)",
        ),
        (
            "/api/v1/summary",
            {"at": "0001-01-01T00:00:00+01:00"},
            "at='0001-01-01T00:00:00+01:00': 0001-01-01T00:00:00+01:00 is out of range"
            " (years 1 to 9999 in UTC)",
        ),
        ("/api/v1/no-such-thing", {}, "GET /api/v1/no-such-thing: not found"),
    ],
)
def test_bad_queries_get_a_400_or_404_that_names_them(
    api: Api, path: str, params: dict[str, str], message: str
) -> None:
    answer = api.client.get(path, params=params, headers=api.reader)
    assert (answer.status_code, answer.json()["message"]) == (404 if "no-such" in path else 400, message)


def test_a_known_route_asked_by_another_method_is_a_405_that_names_the_allowed_ones(api: Api) -> None:
    answer = api.client.post("/api/v1/summary", headers=api.reader)
    assert (answer.status_code, answer.headers["allow"], answer.json()["message"]) == (
        405, "GET, HEAD", "POST /api/v1/summary: allowed methods are GET, HEAD"
    )  # fmt: skip
    wrong = api.client.delete("/api/v1/bundles/pyagent", headers=api.reader)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "PUT")


def test_instants_at_the_ends_of_time_are_answered(api: Api, decided: list[Decided]) -> None:
    """Year 1 and year 9999 are RFC 3339 instants: nothing had been decided at the first, and
    everything at the last (stale by then); neither may overflow into a 500."""
    first = api.get("/api/v1/summary", at="0001-01-01T00:00:00Z")
    assert (first["devices"], first["stale"]) == (0, 0)
    last = api.get("/api/v1/summary", at="9999-12-31T23:59:59Z")
    assert (last["devices"], last["stale"]) == (FLEET, FLEET)
    points = api.get("/api/v1/history", **{"from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z",
                                            "step": "12h"})["points"]  # fmt: skip
    assert [(p["at"], p["devices"]) for p in points] == [
        ("0001-01-01T00:00:00Z", 0), ("0001-01-01T12:00:00Z", 0), ("0001-01-02T00:00:00Z", 0)
    ]  # fmt: skip


def test_an_agent_token_cannot_read_the_fleet(api: Api) -> None:
    for path in ("/api/v1/summary", "/api/v1/devices", "/api/v1/history", "/api/v1/devices/x/compliance"):
        assert api.client.get(path, headers=api.agent).status_code == 403


def test_openapi_document_lists_every_route(api: Api) -> None:
    from pyagent.server.app import create_app
    from pyagent.server.settings import ServerSettings

    assert api.client.get("/api/v1/openapi.json").status_code == 401
    assert api.client.get("/api/v1/openapi.json", headers=api.agent).status_code == 403
    document = api.get("/api/v1/openapi.json")
    assert document["openapi"] == "3.1.0"
    app = create_app(ServerSettings(), api.client.app.state.ctx.store)  # type: ignore[attr-defined]
    served = {
        re.sub(r":\w+}", "}", route.path)  # "{device_id:anypath}" is "{device_id}"
        for route in app.routes
        if getattr(route, "path", "").startswith(("/api/", "/bundles", "/logs", "/status", "/health"))
    }
    assert served - {"/api/v1/openapi.json", "/api/v1/{rest}"} == set(document["paths"])
