"""The server in-process, the Status receiver (redaction, bad status, OPA's plug-in states, the
rollout by the name a sender gives its bundle) and the server's settings file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyagent.server.store.base import BundleFile, NewRevision
from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet


def test_credentials_quoted_in_a_status_are_redacted_before_readers_see_them(fleet: Fleet) -> None:
    """A sender's status may quote what its bundle server echoed (an older agent, a real OPA): readers
    see status messages on the API and the dashboard, so credentials never reach them."""
    quoted = "HTTP 401: token rejected (Authorization: Bearer agent-s3cret-0042)"
    fetched = "GET https://u:pw@b.example/x?token=abc: 401"
    message = {"labels": {"id": "fr-brussels-0042"}, "bundles": {"pyagent": {
        "active_revision": "r1", "code": "bundle_error", "message": quoted, "errors": [quoted, fetched],
    }}}  # fmt: skip
    assert fleet.client.post("/status", json=message, headers=fleet.auth("agent")).status_code == 204
    fleet.post_logs([decision_event("d-1", sender="fr-brussels-0042")])
    device = fleet.client.get("/api/v1/devices/fr-brussels-0042", headers=fleet.auth("reader")).json()
    redacted = "HTTP 401: token rejected (Authorization: Bearer ***)"
    bundle = device["status"]["bundles"]["pyagent"]
    assert (bundle["message"], bundle["errors"]) == (
        redacted,
        [redacted, "GET https://***@b.example/x?token=*** 401"],
    )
    page = fleet.client.get("/devices/fr-brussels-0042", headers=fleet.auth("reader")).text
    assert "agent-s3cret-0042" not in page


def test_status_lands_and_bad_status_is_400(fleet: Fleet) -> None:
    message = {
        "labels": {"id": "fr-brussels-0042", "version": "0.1.0"},
        "bundles": {
            "pyagent": {"active_revision": "r1", "last_successful_activation": "2023-03-16T09:00:00Z"}
        },
    }
    response = fleet.client.post("/status", json=message, headers=fleet.auth("agent"))
    assert response.status_code == 204
    assert fleet.client.post("/status", json={"labels": {}}, headers=fleet.auth("agent")).json()[
        "message"
    ] == ("status: labels.id must be a non-empty string, got nothing")
    no_labels = fleet.client.post("/status", json={"bundles": {}}, headers=fleet.auth("agent"))
    assert (no_labels.status_code, no_labels.json()["message"]) == (
        400,
        "status: labels must be an object, got nothing",
    )
    null_labels = fleet.client.post("/status", json={"labels": None}, headers=fleet.auth("agent"))
    assert null_labels.json()["message"] == "status: labels must be an object, got null"
    listed = {"labels": {"id": "s1"}, "bundles": {"pyagent": {"active_revision": ["r1"]}}}
    refused = fleet.client.post("/status", json=listed, headers=fleet.auth("agent"))
    assert (refused.status_code, refused.json()["message"]) == (
        400,
        "status: bundles.pyagent.active_revision must be a string",
    )  # fmt: skip  (it was kept, and a rollout counted instances under "['r1']")
    fleet.post_logs([decision_event("d-1", sender="fr-brussels-0042")])
    device = fleet.client.get("/api/v1/devices/fr-brussels-0042", headers=fleet.auth("reader")).json()
    assert device["status"]["bundles"] == {
        "pyagent": {"active_revision": "r1", "last_successful_activation": "2023-03-16T09:00:00Z"}
    }
    assert (device["decision_id"], device["allow"], device["decided_at"]) == (
        "d-1",
        False,
        "2023-03-16T09:30:00Z",
    )


def test_rollout_finds_a_bundle_its_sender_named_otherwise_by_its_published_revision(fleet: Fleet) -> None:
    """An OPA configured with bundles.fleet (resource bundles/pyagent) reports "fleet": its status and
    its decisions count toward pyagent's rollout by revision, and so does its refusal."""
    fleet.store.publish(
        NewRevision("pyagent", "r2", None, False, "test", [BundleFile("rego", '"e2"', b"rego-r2")])
    )
    bundles = {"fleet": {"revision": "r1"}, "local-authz": {"revision": "a7"}}
    assert fleet.post_logs([decision_event("d-1", bundles=bundles, sender="opa-fleet")]).json()["stored"] == 1
    refusing = {"labels": {"id": "opa-fleet"}, "bundles": {
        "local-authz": {"active_revision": "a7"},
        "fleet": {"active_revision": "r1", "code": "bundle_error", "message": "rego_parse_error"},
    }}  # fmt: skip
    assert fleet.client.post("/status", json=refusing, headers=fleet.auth("agent")).status_code == 204
    other = {
        "labels": {"id": "opa-other"},
        "bundles": {"other": {"active_revision": "x9", "code": "bundle_error"}},
    }
    assert fleet.client.post("/status", json=other, headers=fleet.auth("agent")).status_code == 204
    rollout = fleet.client.get("/api/v1/rollout/pyagent", headers=fleet.auth("reader")).json()
    assert (rollout["devices"], rollout["on_newest"], rollout["by_revision"]) == (1, 0, {"r1": 1})
    assert rollout["instances_by_revision"] == {"r1": 1}
    assert [(r["instance_id"], r["message"]) for r in rollout["refusals"]] == [
        ("opa-fleet", "rego_parse_error")
    ]


def test_rollout_lists_an_opa_whose_only_bundle_never_activated(fleet: Fleet) -> None:
    """An OPA with `signing` served an unsigned revision under its own bundle name reports no active
    revision, only the error: it was in neither the refusals nor the counts. It is this bundle's while
    the server publishes no other; once it publishes two, there is no telling which it refuses."""
    refusing = {"labels": {"id": "opa-signed"}, "bundles": {
        "fleet2": {"code": "bundle_error", "message": "bundle missing .signatures.json file"},
    }}  # fmt: skip
    assert fleet.client.post("/status", json=refusing, headers=fleet.auth("agent")).status_code == 204

    def rollout() -> dict[str, Any]:
        answer = fleet.client.get("/api/v1/rollout/pyagent", headers=fleet.auth("reader"))
        return dict(answer.json())

    shown = rollout()
    assert [(r["instance_id"], r["active_revision"], r["message"]) for r in shown["refusals"]] == [
        ("opa-signed", "", "bundle missing .signatures.json file")
    ]
    assert shown["instances_by_revision"] == {"": 1}
    fleet.store.publish(NewRevision("other", "o1", None, False, "test", [BundleFile("rego", '"o1"', b"o")]))
    assert (rollout()["refusals"], rollout()["instances_by_revision"]) == ([], {})


def test_status_plugins_in_opas_error_state_are_errors() -> None:
    """OPA's plug-in states are NOT_READY, OK, ERROR and WARN (older pyagent agents sent ERR)."""
    from pyagent.server.status import status_row

    plugins = {
        "bundle": {"state": "ERROR", "message": "download failed"},
        "decision_logs": {"state": "OK"},
        "status": {"state": "ERR", "message": "older agent"},
        "discovery": {"state": "WARN"},
    }
    row = status_row({"labels": {"id": "opa-1"}, "plugins": plugins})
    assert json.loads(row.errors) == [
        {"plugin": "bundle", "message": "download failed"},
        {"plugin": "status", "message": "older agent"},
    ]


def test_a_failed_upload_and_a_top_level_errors_list_are_errors() -> None:
    """OPA reports a failed decision-log upload or discovery under its own key (``code``, ``message``,
    ``errors``); a hand-written status may list ``errors`` at the top (CONTRACT 6.3 names it)."""
    from pyagent.server.status import status_row

    message = {
        "labels": {"id": "opa-1"},
        "decision_logs": {"code": "decision_log_error", "message": "server replied with HTTP 503"},
        "discovery": {"name": "discovery"},  # no error
        "errors": [
            {"bundle": "pyagent", "code": "bundle_error", "message": "signature invalid"},  # no bundle's
            "disk full",
            "",
            7,
            {"code": None, "message": ""},
            {"msg": "out of memory"},
        ],
    }
    assert json.loads(status_row(message).errors) == [
        {"plugin": "decision_logs", "code": "decision_log_error", "message": "server replied with HTTP 503"},
        {"code": "bundle_error", "message": "signature invalid"},
        {"message": "disk full"},
        {"message": '{"msg": "out of memory"}'},
    ]


def test_bundles_past_the_status_bound_are_counted_not_dropped_unsaid() -> None:
    """90 bundles of 4,000 characters each: those past the 256 K bound were dropped with no word."""
    from pyagent.server.status import MAX_TOTAL, status_row

    bundles = {f"b{n:02d}": {"code": "c" * 2000, "message": "x" * 2000, "active_revision": "r1"}
               for n in range(90)}  # fmt: skip
    row = status_row({"labels": {"id": "opa-1"}, "bundles": bundles})
    kept = json.loads(row.bundles)
    errors = json.loads(row.errors)
    assert 0 < len(kept) < 90
    assert errors[-1] == {
        "message": f"… {90 - len(kept)} more bundles not kept: the message is over {MAX_TOTAL:,} characters"
    }
    assert len(row.bundles) <= MAX_TOTAL + 90 * 100


def test_a_message_over_the_bound_is_stored_cut_not_refused_for_what_the_cut_left(fleet: Fleet) -> None:
    """An OPA with 30 failing bundles: the 256 K bound was spent before ``plugins``, whose cut mark
    (a string) the type check then refused (400), so that OPA resent its status forever (audit)."""
    errors = [{"code": "rego_parse_error", "message": "x" * 1000}] * 10
    bundles = {f"b{n:02d}": {"errors": errors} for n in range(30)}
    plugins = {"bundle": {"state": "ERROR", "message": "download failed"}}
    status = {"labels": {"id": "opa-big"}, "bundles": bundles, "plugins": plugins}
    assert fleet.client.post("/status", json=status, headers=fleet.auth("agent")).status_code == 204
    from pyagent.server.status import MAX_TOTAL, status_row

    row = status_row(status)
    kept, said = json.loads(row.bundles), json.loads(row.errors)
    too_long = f"the message is over {MAX_TOTAL:,} characters"
    assert 0 < len(kept) < 30
    assert said[-2:] == [
        {"message": f"… {30 - len(kept)} more bundles not kept: {too_long}"},
        {"message": f"… the plugins' states not kept: {too_long}"},
    ]
    assert json.loads(row.plugins) == {}
    wrong = fleet.client.post("/status", json={**status, "plugins": "x"}, headers=fleet.auth("agent"))
    assert (wrong.status_code, wrong.json()["message"]) == (
        400,
        "status: plugins must be an object, got a string",
    )


def test_a_bundle_cut_inside_its_revision_is_not_kept_with_a_false_one() -> None:
    """The bound spent inside a bundle left its ``active_revision`` as "…", which rollouts counted as
    a revision (review)."""
    from pyagent.server.status import MAX_TOTAL, status_row

    bundles = {
        f"b{n:02d}": {"errors": [{"message": "x" * 2000}] * 10, "active_revision": f"r{n}"} for n in range(20)
    }
    row = status_row({"labels": {"id": "opa-1"}, "bundles": bundles})
    kept = json.loads(row.bundles)
    assert 0 < len(kept) < 20
    assert {name: info["active_revision"] for name, info in kept.items()} == {
        name: f"r{int(name[1:])}" for name in kept
    }
    assert json.loads(row.errors)[-1] == {
        "message": f"… {20 - len(kept)} more bundles not kept: the message is over {MAX_TOTAL:,} characters"
    }


def test_bundles_past_the_key_bound_are_counted_not_dropped_unsaid(fleet: Fleet) -> None:
    """150 small bundles: the first 100 are kept (objects are cut at 100 keys), and the 50 others are
    said in an error that the device's page shows (an audit found them gone without a word)."""
    assert fleet.post_logs([decision_event("d-1", device_id="dev-b3")]).status_code == 200
    bundles = {f"b{n:03d}": {"active_revision": "r1"} for n in range(150)}
    status = {"labels": {"id": "dev-b3"}, "bundles": bundles}
    assert fleet.client.post("/status", json=status, headers=fleet.auth("agent")).status_code == 204
    shown = fleet.client.get("/api/v1/devices/dev-b3", headers=fleet.auth("reader")).json()["status"]
    assert (sorted(shown["bundles"]), shown["errors"]) == (
        [f"b{n:03d}" for n in range(100)],
        [{"message": "… 50 more bundles not kept: the message has over 100"}],
    )


@pytest.mark.parametrize("mark", ["\u00b2 more", "7 more"])
def test_a_cut_mark_sent_by_the_sender_is_no_count(mark: str) -> None:
    """A sender's own bundle named "…": no cut happened, so nothing is said about bundles not kept
    (a superscript digit in it was a 500: ``int("\u00b2")`` raises)."""
    from pyagent.server.status import status_row

    row = status_row({"labels": {"id": "x"}, "bundles": {"…": mark, "a": {"active_revision": "1"}}})
    assert (json.loads(row.bundles), json.loads(row.errors)) == ({"a": {"active_revision": "1"}}, [])


def test_settings_file_unknown_key_is_named(tmp_path: Path) -> None:
    from pyagent.errors import InvalidInputError
    from pyagent.server.settings import load_settings

    config = tmp_path / "server.toml"
    config.write_text('[server]\nbind = "127.0.0.1:9"\nmax_bodyy = 5\n')
    with pytest.raises(InvalidInputError, match=r"server.toml: server.max_bodyy: unknown key"):
        load_settings(config)


def test_every_setting_of_the_config_file_has_the_type_it_is_checked_against() -> None:
    from dataclasses import fields

    from pyagent.server.settings import _INTS, _PATHS, _STRINGS, ServerSettings

    typed = [*_INTS, *_PATHS, *_STRINGS, "verification"]
    assert sorted(typed) == sorted(f.name for f in fields(ServerSettings))


@pytest.mark.parametrize(
    ("line", "seconds"),
    [('stale_after = "24h"', 86400), ('stale_after = "1h30m"', 5400), ('stale_after = "45s"', 45),
     ('stale_after = "PT12H"', 43200),
     ('stale_after = "1d"', 86400), ('stale_after = "2d12h"', 216000), ('stale_after = "600"', 600),
     ("stale_after = 600", 600), ("stale_after_seconds = 7200", 7200)],
)  # fmt: skip
def test_stale_after_as_a_duration_or_seconds(tmp_path: Path, line: str, seconds: int) -> None:
    from pyagent.server.settings import load_settings

    config = tmp_path / "server.toml"
    config.write_text(f"[server]\n{line}\n")
    assert load_settings(config).stale_after_seconds == seconds


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            'stale_after = "1y"',
            'server.stale_after: must be a duration of at most 100 years, such as "1d", "24h", "90m", '
            '"1h30m", "45s", "PT1H", or seconds',
        ),
        (
            'stale_after = "0s"',
            'server.stale_after: must be a duration of at most 100 years, such as "1d", "24h", "90m", '
            '"1h30m", "45s", "PT1H", or seconds',
        ),
        ("stale_after = 0", "server.stale_after: must be at least one second"),
        (
            'stale_after = "1h"\nstale_after_seconds = 60',
            "server.stale_after: give stale_after or stale_after_seconds",
        ),
    ],
)
def test_stale_after_refused_with_the_key_named(tmp_path: Path, lines: str, message: str) -> None:
    from pyagent.errors import InvalidInputError
    from pyagent.server.settings import load_settings

    config = tmp_path / "server.toml"
    config.write_text(f"[server]\n{lines}\n")
    with pytest.raises(InvalidInputError) as refused:
        load_settings(config)
    assert str(refused.value).startswith(f"{config}: {message}")
