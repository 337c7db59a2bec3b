"""The server in-process (Starlette's test client, SQLite), who may ask what: each role on each
kind of route, wrong and revoked tokens, the open health check, a NUL in a path and parameters a route
does not read."""

from __future__ import annotations

import html
import logging
from urllib.parse import urlencode

import pytest

from pyagent.server.store import StoreError
from tests.server.inprocess import Fleet


@pytest.mark.parametrize(
    ("method", "path", "role", "status"),
    [
        ("GET", "/bundles/pyagent", None, 401),
        ("GET", "/bundles/pyagent", "reader", 403),
        ("GET", "/bundles/pyagent", "admin", 403),
        ("GET", "/bundles/pyagent", "agent", 200),
        ("POST", "/logs", None, 401),
        ("POST", "/logs", "reader", 403),
        ("POST", "/status", "reader", 403),
        ("GET", "/api/v1/devices/x", None, 401),
        ("GET", "/api/v1/devices/x", "agent", 403),
        ("GET", "/api/v1/devices/x", "reader", 404),
        ("PUT", "/api/v1/bundles/pyagent", "agent", 403),
        ("PUT", "/api/v1/bundles/pyagent", "reader", 403),
        ("POST", "/status", None, 401),
        ("POST", "/logs", "admin", 403),
        ("GET", "/bundles/pyagent/wasm", None, 401),
        ("GET", "/bundles/pyagent/wasm", "reader", 403),
        ("GET", "/bundles/pyagent/wasm", "agent", 200),
        ("GET", "/api/v1/summary", "agent", 403),
        ("GET", "/api/v1/summary", "reader", 200),
        ("GET", "/api/v1/summary", "admin", 200),  # an admin may read what readers may
        ("GET", "/", "agent", 403),
        ("GET", "/", "reader", 200),
    ],
)
def test_roles(fleet: Fleet, method: str, path: str, role: str | None, status: int) -> None:
    headers = fleet.auth(role) if role else {}
    assert fleet.client.request(method, path, headers=headers).status_code == status


@pytest.mark.parametrize("header", ["Bearer pya_wrong", "Bearer ", "Basic dXNlcjpwYXNz", "pya_x", "Bearer  "])
def test_wrong_tokens_are_401(fleet: Fleet, header: str) -> None:
    response = fleet.client.get("/bundles/pyagent", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pyagent"'


@pytest.mark.parametrize("path", ["/api/v1/summary", "/"])
def test_two_authorization_headers_are_refused_not_one_chosen(fleet: Fleet, path: str) -> None:
    """The first used to win: a proxy adding its own header must not decide which credential counts."""
    (name, reader), = fleet.auth("reader").items()  # fmt: skip
    (_, agent), = fleet.auth("agent").items()  # fmt: skip
    for pair in ([(name, reader), (name, agent)], [(name, reader), (name, "Bearer pya_wrong")]):
        response = fleet.client.get(path, headers=pair)  # (the dashboard's error is a page)
        assert (response.status_code, "2 Authorization headers; send one" in response.text) == (401, True)
    assert fleet.client.get(path, headers=[(name, reader)]).status_code == 200


def test_other_errors_carry_no_challenge(fleet: Fleet) -> None:
    response = fleet.client.get("/bundles/pyagent", headers=fleet.auth("reader"))
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers


def test_a_revoked_token_is_refused_at_once(fleet: Fleet) -> None:
    assert fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent")).status_code == 200
    fleet.store.revoke_token("agent-token")
    assert fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent")).status_code == 401


def test_health_is_open(fleet: Fleet) -> None:
    response = fleet.client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_health_does_not_tell_anyone_where_the_database_is(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reason = "postgresql://pyagent@10.0.0.7:5432/fleet: connection refused"

    def down() -> None:
        raise StoreError(reason)

    monkeypatch.setattr(fleet.store, "ping", down)
    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        response = fleet.client.get("/health")
    assert (response.status_code, response.json()) == (
        503, {"status": "unavailable", "message": "the database is not available"}
    )  # fmt: skip
    assert f"health: {reason}" in caplog.messages


@pytest.mark.parametrize(
    ("path", "role"),
    [("/api/v1/devices/%00", "reader"), ("/api/v1/devices/a%00/compliance", "reader"),
     ("/api/v1/rollout/%00", "reader"), ("/devices/%00", "reader"), ("/bundles/%00", "agent"),
     ("/bundles/pyagent%00/wasm", "agent")],
)  # fmt: skip
def test_a_nul_in_the_path_is_a_bad_request_before_any_route(fleet: Fleet, path: str, role: str) -> None:
    """No NUL reaches the database, where PostgreSQL would refuse it as if the database had failed."""
    response = fleet.client.get(path, headers=fleet.auth(role))
    told = "the request's path contains a NUL character"
    if path.startswith("/devices/"):  # a dashboard page: said as a page
        assert (response.status_code, response.headers["content-type"]) == (400, "text/html; charset=utf-8")
        assert f'<p class="error" role="alert">{html.escape(told)}</p>' in response.text
    else:
        assert (response.status_code, response.json()) == (
            400,
            {"code": "invalid_parameter", "message": told},
        )


@pytest.mark.parametrize(
    ("path", "part"),
    [("/api/v1/devices/%FF/compliance", "path"), ("/api/v1/devices/a%C3", "path"),
     ("/devices/%ED%A0%80", "path"), ("/bundles/%FE", "path"),
     ("/api/v1/summary?organization=%FF", "query"), ("/api/v1/devices?ban=a%C3", "query"),
     ("/devices?organization=%FF", "query"), ("/device?id=%FF", "query")],
)  # fmt: skip
def test_a_path_that_is_not_utf8_is_a_bad_request_before_any_route(
    fleet: Fleet, path: str, part: str
) -> None:
    """Decoded, each such byte was U+FFFD: %FF reached the device named "\ufffd", and access gating
    answered for it (an organisation so named, in a query). A dashboard page says so as a page."""
    response = fleet.client.get(path, headers=fleet.auth("reader"))
    told = f"the request's {part} is not UTF-8 once its %-escapes are decoded"
    if path.startswith("/api/") or path.startswith("/bundles/"):
        assert (response.status_code, response.json()) == (
            400,
            {"code": "invalid_parameter", "message": told},
        )
    else:
        assert (response.status_code, response.headers["content-type"]) == (400, "text/html; charset=utf-8")
        assert f'<p class="error" role="alert">{html.escape(told)}</p>' in response.text


@pytest.mark.parametrize(
    ("asked", "next_path"),
    [("/devices/in%23q%3Fx%3D1%26y%3D%252F", "/devices/in%23q%3Fx%3D1%26y%3D%252F"),
     ("/devices/nl%0Ax", "/devices/nl%0Ax"), ("/devices/caf%C3%A9?history=5", "/devices/caf%C3%A9?history=5"),
     ("/devices?organization=eu%20council", "/devices?organization=eu%20council")],
)  # fmt: skip
def test_after_login_a_browser_lands_on_the_page_it_asked_for(
    fleet: Fleet, asked: str, next_path: str
) -> None:
    """The page asked for is kept as it was sent, escapes and all: decoded once, ``in#q?x=1&y=%2F``
    led after login to the device ``in``'s page's fragment, and ``nl\nx`` to the device ``nlx``."""
    sent = fleet.client.get(asked, headers={"Accept": "text/html"}, follow_redirects=False)
    assert (sent.status_code, sent.headers["location"]) == (303, f"/login?{urlencode({'next': next_path})}")
    form = fleet.client.get(sent.headers["location"]).text
    assert f'<input type="hidden" name="next" value="{html.escape(next_path)}">' in form
    login = {"token": fleet.tokens["reader"], "next": next_path}
    landed = fleet.client.post("/login", data=login, follow_redirects=False)
    assert (landed.status_code, landed.headers["location"]) == (303, next_path)
    # a next= given decoded (a line break, a space, a non-ASCII letter) is escaped, not shown as text
    form = fleet.client.get("/login", params={"next": "/devices/nl\nx y\u00e9"}).text
    assert '<input type="hidden" name="next" value="/devices/nl%0Ax%20y%C3%A9">' in form


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v1/devices?orgnization=india", "orgnization: not a parameter of /api/v1/devices (it takes: "
         "organization, no_organization, platform, allow, compliant, stale, ban, cursor, limit, format)"),
        ("/api/v1/devices/fr-brussels-0042?at=2023-03-16T00:00:00Z",
         "at: not a parameter of /api/v1/devices/fr-brussels-0042 (it takes: history)"),
        ("/api/v1/devices/fr-brussels-0042/compliance?as_of=2023-03-16T00:00:00Z",
         "as_of: not a parameter of /api/v1/devices/fr-brussels-0042/compliance (it takes: at)"),
        ("/api/v1/summary?organisation=india",
         "organisation: not a parameter of /api/v1/summary "
         "(it takes: at, organization, no_organization, format)"),
        ("/api/v1/rollout/pyagent?at=2023-03-16T00:00:00Z",
         "at: not a parameter of /api/v1/rollout/pyagent (it takes: organization, no_organization)"),
        ("/api/v1/history?from=2023-03-14T00:00:00Z&to=2023-03-16T00:00:00Z&step=1d&every=1",
         "every: not a parameter of /api/v1/history "
         "(it takes: from, to, step, organization, no_organization)"),
        ("/api/v1/openapi.json?version=3.0",
         "version: not a parameter of /api/v1/openapi.json (it takes: none)"),
        ("/api/v1/devices?organization=india&organization=eu-commission",  # only the last was obeyed
         "organization: given 2 times; give it once"),
        ("/api/v1/summary?at=2023-03-16T00:00:00Z&at=",
         "at: given 2 times; give it once"),
        # given empty (organization=$ORG with ORG unset): it answered for the whole fleet
        ("/api/v1/summary?organization=", "organization: given empty; leave it out to ask without it"),
        ("/api/v1/devices?allow=true&ban=", "ban: given empty; leave it out to ask without it"),
        ("/api/v1/history?from=2023-03-14T00:00:00Z&to=2023-03-16T00:00:00Z&step=1d&organization=",
         "organization: given empty; leave it out to ask without it"),
    ],
)  # fmt: skip
def test_a_parameter_a_route_does_not_read_is_refused_by_name(fleet: Fleet, path: str, message: str) -> None:
    """A typo, or a question the route does not answer (a device's state "at"), gets no answer that
    looks like the one asked for."""
    response = fleet.client.get(path, headers=fleet.auth("reader"))
    assert (response.status_code, response.json()) == (400, {"code": "invalid_parameter", "message": message})


@pytest.mark.parametrize("path", ["/api/v1/summary", "/api/v1/devices", "/api/v1/nope"])
def test_fleet_api_answers_are_kept_by_no_cache(fleet: Fleet, path: str) -> None:
    """A reader's view of the fleet, errors too; the bundle service keeps its own caching headers."""
    answer = fleet.client.get(path, headers=fleet.auth("reader"))
    assert (answer.headers["cache-control"], answer.headers["x-content-type-options"]) == (
        "no-store",
        "nosniff",
    )
    bundle = fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent"))
    assert (bundle.headers["cache-control"], bundle.headers["x-content-type-options"]) == (
        "no-cache",
        "nosniff",
    )


@pytest.mark.parametrize(
    "path", ["/health", "/health/%3Cscript%3E", "/logs", "/static/dashboard.css", "/%ff"]
)
def test_no_answer_is_read_as_another_type(fleet: Fleet, path: str) -> None:
    """`nosniff` was on the fleet API and the dashboard only: a health check's error echoes its path."""
    answer = fleet.client.get(path)
    assert answer.headers["x-content-type-options"] == "nosniff", answer.status_code


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/bundles/..%2F", "GET /bundles/../: not found"),  # was a 307 to /bundles/.. (a trailing slash cut)
        ("/bundles/pyagent/", "GET /bundles/pyagent/: not found"),
        ("/bundles/pyagent/wasm/x", "GET /bundles/pyagent/wasm/x: not found"),
        ("/health/", "GET /health/: not found"),
        ("/health%0Ax", "GET /health\nx: not found"),  # the path as asked: a URL rebuilt from it lost "\n"
    ],
)
def test_a_path_no_route_serves_is_a_json_404_never_a_redirect(fleet: Fleet, path: str, message: str) -> None:
    answer = fleet.client.get(path, headers=fleet.auth("agent"), follow_redirects=False)
    assert (answer.status_code, answer.headers["content-type"], answer.json()) == (
        404, "application/json", {"code": "not_found", "message": message}
    )  # fmt: skip


def test_a_method_no_route_takes_is_a_405_naming_the_allowed_ones(fleet: Fleet) -> None:
    answer = fleet.client.delete("/health")
    message = "DELETE /health: allowed methods are GET, HEAD"
    assert (answer.status_code, answer.headers["allow"], answer.json()) == (
        405, "GET, HEAD", {"code": "method_not_allowed", "message": message}
    )  # fmt: skip
    login = fleet.client.put("/login")  # two routes share the path: both their methods are allowed
    assert (login.status_code, login.headers["allow"]) == (405, "GET, HEAD, POST")
    assert '<p class="error" role="alert">PUT /login: allowed methods are GET, HEAD, POST</p>' in login.text
    page = fleet.client.get("/no-such-page", headers=fleet.auth("reader"))
    assert (page.status_code, page.headers["content-type"]) == (404, "text/html; charset=utf-8")
    assert '<p class="error" role="alert">GET /no-such-page: not found</p>' in page.text


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "CONNECT", "DELETE", "PROPFIND"])
def test_any_method_on_an_api_route_names_that_routes_methods_alone(fleet: Fleet, method: str) -> None:
    """OPTIONS, TRACE, CONNECT and a method no route lists (WebDAV's PROPFIND) got the API
    catch-all's methods in `Allow` (DELETE, GET, ... PUT), and on a path with no route a 405 where
    DELETE got a 404."""
    answer = fleet.client.request(method, "/api/v1/summary", headers=fleet.auth("reader"))
    assert (answer.status_code, answer.headers["allow"]) == (405, "GET, HEAD")
    nowhere = fleet.client.request(method, "/api/v1/nonexistent", headers=fleet.auth("reader"))
    assert (nowhere.status_code, nowhere.json()["code"]) == (404, "not_found")


def test_every_role_a_token_can_be_given_is_one_the_server_grants_and_no_other() -> None:
    from pyagent.cli.server import token_add
    from pyagent.server.auth import GRANTS
    from pyagent.server.store.base import ROLES

    role = next(param for param in token_add.params if param.name == "role")
    assert (tuple(role.type.choices), tuple(GRANTS)) == (ROLES, ROLES)  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/api/v1/summary", "/", "/health"])
def test_two_host_headers_are_a_bad_request(fleet: Fleet, path: str) -> None:
    """RFC 9112 says 400; the dashboard's same-origin check read the first of them."""
    headers = [("host", "testserver"), ("host", "evil.example"), *fleet.auth("reader").items()]
    response = fleet.client.get(path, headers=headers)
    assert response.status_code == 400
    assert "the request has 2 Host headers; send one" in response.text
