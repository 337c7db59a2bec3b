"""An ETag from the bundle service is sent back in every later If-None-Match: one that no service can
take back (a control character, a line break, 60 KB) got a 400 from every later request, so one forged
answer, with no signing key, stopped an agent from ever getting a new policy, across restarts (an
attacker-side audit). Such an ETag is not kept; a 400 to a conditional request drops the one kept; an
ETag kept by an earlier version is dropped as the status loads."""

from __future__ import annotations

import json
from email.message import Message
from pathlib import Path

import pytest

from pyagent.agent.plugins.bundledir import usable_etag
from tests.agent.plugins.conftest import started_plugin
from tests.helpers.fault_server import Fault, fault_server


@pytest.mark.parametrize(
    ("etag", "kept"),
    [
        ('"r1"', '"r1"'),
        ('W/"r1"', 'W/"r1"'),
        ('"r\x1b"', None),
        ('"r\x00"', None),
        ('"r\x7f"', None),
        ('"r 1"', None),
        ('"r\u00e9"', None),
        ('"' + "e" * 300 + '"', None),
        ("", None),
    ],
    ids=["quoted", "weak", "escape", "nul", "del", "space", "non-ascii", "300-chars", "empty"],
)
def test_an_etag_is_kept_only_when_a_service_can_take_it_back(etag: str, kept: str | None) -> None:
    assert usable_etag(etag) == kept


def test_a_forged_etag_is_not_kept_and_a_400_drops_the_one_kept(tmp_path: Path, policy_bundle: Path) -> None:
    bundle = policy_bundle.read_bytes()
    answers = [
        Fault(body=bundle, content_type="application/gzip", headers=(("ETag", '"r1"'),)),
        Fault(status=304, body=b"", content_type=None, headers=(("ETag", '"r\x1b"'),)),  # forged
        Fault(status=304, body=b"", content_type=None),
        Fault(status=400, body=b"Invalid HTTP request received.", content_type="text/plain"),
        Fault(body=bundle, content_type="application/gzip", headers=(("ETag", '"r1"'),)),
    ]
    requests: list[Message] = []
    with fault_server(*answers, seen=requests) as url:
        plugin = started_plugin(url, tmp_path)
        for _ in answers:
            plugin.step(wait=False)
    sent = [headers.get("If-None-Match") for headers in requests]
    assert sent == [None, '"r1"', '"r1"', '"r1"', None]  # the forged one never sent; after the 400, none
    assert (plugin.status.etag, plugin.status.code) == ('"r1"', None)


def test_an_unusable_etag_kept_by_an_earlier_version_is_dropped_as_the_status_loads(
    tmp_path: Path, policy_bundle: Path
) -> None:
    with fault_server(Fault(body=policy_bundle.read_bytes(), content_type="application/gzip")) as url:
        plugin = started_plugin(url, tmp_path, persist=True)
        plugin.step(wait=False)
    status_file = tmp_path / "bundles" / "pyagent" / "status.json"
    saved = json.loads(status_file.read_text())
    status_file.write_text(json.dumps({**saved, "etag": '"r\x1b"'}))
    with fault_server(Fault(status=304, body=b"", content_type=None)) as url:
        assert started_plugin(url, tmp_path, persist=True).status.etag is None


def test_a_304_to_a_request_without_if_none_match_is_an_error_said(
    tmp_path: Path, policy_bundle: Path
) -> None:
    """A service that says "not modified" to an agent that holds no bundle: the agent still has no policy
    (as OPA has none), and its status and `agent status` say why (they said nothing wrong)."""
    bundle = policy_bundle.read_bytes()
    answers = [
        Fault(status=304, body=b"", content_type=None, headers=(("ETag", '"r1"'),)),
        Fault(body=bundle, content_type="application/gzip", headers=(("ETag", '"r1"'),)),
    ]
    with fault_server(*answers) as url:
        plugin = started_plugin(url, tmp_path)
        plugin.step(wait=False)
        told = (plugin.active_path(), plugin.status.code, plugin.status.message, plugin.status.etag)
        plugin.step(wait=False)
    said = f"GET {url}/bundles/pyagent: HTTP 304 to a request without If-None-Match"
    assert told == (None, "bundle_error", said, None)
    assert (plugin.status.code, plugin.status.etag, plugin.active_path() is not None) == (None, '"r1"', True)
