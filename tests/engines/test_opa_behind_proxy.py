"""The `opa` engine asking an OPA that a reverse proxy (a real nginx) serves under a path prefix, as an
ingress publishes it (``https://gateway/opa/v1/data/...``): the prefix is kept, OPA's own paths are no
prefix, and a prefix a proxy would resolve elsewhere (dot segments, escaped or not) is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from pyagent.engines.opa_server import parse_url
from pyagent.errors import InvalidInputError
from tests.helpers import domain
from tests.helpers.nginx import RunningNginx, run_nginx
from tests.helpers.opa_server import RunningOpa

AT = "2023-03-16T09:30:00Z"
BANNED = domain.make_report("eu-commission", "android", "corporate", True, ["com.zhiliaoapp.musically"])


@pytest.fixture(scope="module")
def gateway(opa_server: RunningOpa, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNginx]:
    upstream = urlsplit(opa_server.url).netloc
    with run_nginx(tmp_path_factory.mktemp("gateway"), upstreams=[upstream], under="/policy/opa") as nginx:
        yield nginx


def _check(url: str, report: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["check", str(report), "--at", AT, "--engine", "opa", "--opa-url", url, "--format", "json"]
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("written", ["/policy/opa", "/policy/opa/", "/policy/%6Fpa"])
def test_an_opa_under_a_prefix_decides_as_asked_directly(
    gateway: RunningNginx, opa_server: RunningOpa, tmp_path: Path, written: str
) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(BANNED))
    code, out, err = _check(gateway.url + written, report)
    assert (code, err) == (1, "pyagent: NON-COMPLIANT: device-under-test (eu-commission): 1 violation\n")
    through_proxy = json.loads(out)
    direct_code, direct_out, _ = _check(opa_server.url, report)
    direct = json.loads(direct_out)
    assert direct_code == 1
    assert [v["rule"] for v in through_proxy["violations"]] == ["eu-commission/tiktok"]
    for varying in ("decision_id",):
        through_proxy.pop(varying), direct.pop(varying)
    assert through_proxy == direct
    asked = (gateway.conf_path.parent / "access.log").read_text().splitlines()[-1]
    assert asked.startswith(
        f"POST {written.rstrip('/')}/v1/data/pyagent/decision?provenance=true HTTP/1.1 200 "
    )


def test_without_its_prefix_the_proxy_has_no_opa_and_no_decision(
    gateway: RunningNginx, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(BANNED))
    code, out, err = _check(gateway.url, report)
    assert (code, out) == (3, "")
    assert err.startswith(f"pyagent: error: OPA at {gateway.url}: HTTP 404")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        *[(url, f"--opa-url: {url!r} has a path that is no plain /prefix") for url in (
            "http://gw:8181/opa/%2e%2e/admin", "http://gw:8181/opa/../admin", "http://gw:8181/./opa",
            "http://gw:8181//opa", "http://gw:8181/a%2Fb", 'http://gw:8181/a"b', "http://gw:8181/opa/..;/admin",
            "http://gw:8181/opa/.;x", "http://gw:8181/opa/%2E%2E%3B/admin", "http://gw:8181/a%00b",
            "http://gw:8181/a%0Ab",
        )],
        ("http://gw:8181/v1/data/pyagent/decision",
         "--opa-url: 'http://gw:8181/v1/data/pyagent/decision': give OPA's base URL (scheme://host[:port], "
         "or the prefix a proxy serves it under), not a path of its API"),
        ("http://gw:8181/opa/%76%31/data",
         "--opa-url: 'http://gw:8181/opa/%76%31/data': give OPA's base URL (scheme://host[:port], "
         "or the prefix a proxy serves it under), not a path of its API"),
        ("http://gw:8181/opa/v1",
         "--opa-url: 'http://gw:8181/opa/v1': give OPA's base URL (scheme://host[:port], "
         "or the prefix a proxy serves it under), not a path of its API"),
        ("http://gw:8181/opa?x=1", "--opa-url: 'http://gw:8181/opa?x=1' must not have a query or fragment"),
        ("http://gw:8181/opa#top", "--opa-url: 'http://gw:8181/opa#top' must not have a query or fragment"),
    ],
)  # fmt: skip
def test_a_prefix_is_a_plain_path_of_the_proxy(url: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_url(url)
    assert str(refused.value) == message


def test_the_prefix_is_kept_without_its_trailing_slash() -> None:
    urls = (
        "http://gw",
        "http://gw/",
        "http://gw/a/b/",
        "https://gw/a",
        "https://gw/api/v1/opa",
        "http://gw/a;v=1",
    )
    assert [parse_url(url).base_path for url in urls] == ["", "", "/a/b", "/a", "/api/v1/opa", "/a;v=1"]


def test_an_ipv6_opa_is_named_with_its_brackets(tmp_path: Path) -> None:
    """The host lost its brackets in messages: "OPA at http:///opa: cannot connect"."""
    endpoint = parse_url("http://[::1]:9/opa")
    assert (endpoint.host, endpoint.port, endpoint.origin, endpoint.base_path) == (
        "::1",
        9,
        "http://[::1]:9",
        "/opa",
    )
    report = tmp_path / "report.json"
    report.write_text(json.dumps(BANNED))
    code, out, err = _check("http://[::1]:9/opa", report)
    assert (code, out) == (3, "")
    assert err.startswith("pyagent: error: OPA at http://[::1]:9/opa: ")
