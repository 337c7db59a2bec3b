"""Long polling as OPA keeps it (``download.go``): only a bundle's answer (200) says whether the service
long polls; a 304 or an error says nothing of it. The fault-injecting HTTP server (never deciding)
answers a sequence and records each request's ``Prefer`` header."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

from pyagent.agent.plugins.bundle import LONG_POLL_TYPE
from pyagent.agent.plugins.status import bundle_state
from pyagent.config.opa import Polling
from tests.agent.plugins.conftest import Builds, started_plugin
from tests.helpers.fault_server import Fault, fault_server


def test_one_error_or_a_bare_304_does_not_end_long_polling(tmp_path: Path) -> None:
    bare_304 = Fault(status=304, body=b"", content_type=None)
    answers = [
        # a long-poll answer (refused as a bundle, but it says the service long polls)
        Fault(body=b"not gzip", content_type=LONG_POLL_TYPE, headers=(("ETag", '"e1"'),)),
        Fault(status=500, body=b"busy", content_type=None),
        bare_304,
        Fault(body=b"not gzip", content_type="application/gzip", headers=(("ETag", '"e2"'),)),  # no long poll
        bare_304,
    ]
    requests: list[Message] = []
    with fault_server(*answers, seen=requests) as url:
        plugin = started_plugin(url, tmp_path, polling=Polling(1, 2, long_polling_timeout=5))
        states, codes = [], []
        for _ in range(5):
            plugin.step()
            states.append(bundle_state(plugin))
            codes.append(plugin.status.code)
    assert [headers.get("Prefer") for headers in requests] == ["wait=5", "wait=5", "wait=5", "wait=5", None]
    # an answer that is no bundle and a 500 are errors, and a 304 to a request without If-None-Match
    # (no bundle is active) too; and, as OPA's, the plug-in stays NOT_READY throughout (no bundle was
    # ever active): an error is no plug-in state of its own
    assert codes == ["bundle_error"] * 5
    assert states == ["NOT_READY"] * 5


def test_a_static_server_s_first_bundle_ends_long_polling(tmp_path: Path, builds: Builds) -> None:
    """As OPA: the first 200, though not a long poll, says the service does not long poll (nginx's
    ``application/octet-stream``); every later request went on asking ``Prefer: wait``."""
    bundle = builds.unsigned.read_bytes()
    answers = [
        Fault(body=bundle, content_type="application/octet-stream", headers=(("ETag", '"e1"'),)),
        Fault(status=304, body=b"", content_type=None),
        Fault(status=304, body=b"", content_type=None),
    ]
    requests: list[Message] = []
    with fault_server(*answers, seen=requests) as url:
        plugin = started_plugin(url, tmp_path, polling=Polling(60, 120, long_polling_timeout=300))
        plugin.step(wait=False)
        delays = [plugin.step(), plugin.step()]
    # the first request asks as OPA's does, with no ETag to hold it on
    assert [headers.get("Prefer") for headers in requests] == ["wait=300", None, None]
    assert all(60 <= delay <= 120 for delay in delays), delays


def test_a_service_that_answers_long_polls_at_once_is_polled_as_configured(
    tmp_path: Path, builds: Builds
) -> None:
    """A service whose bundle says it long polls, then answers ``Prefer: wait`` with an immediate 304:
    the next attempt is in min..max_delay_seconds, not at once; a long poll the service held (1.2 s
    here) is renewed at once."""
    answers = [
        Fault(  # not asked to wait
            body=builds.unsigned.read_bytes(), content_type=LONG_POLL_TYPE, headers=(("ETag", '"e1"'),)
        ),
        Fault(status=304, body=b"", content_type=None),
        Fault(status=304, body=b"", content_type=None, delay=1.2),
    ]
    requests: list[Message] = []
    with fault_server(*answers, seen=requests) as url:
        plugin = started_plugin(url, tmp_path, polling=Polling(60, 120, long_polling_timeout=300))
        plugin.step(wait=False)
        at_once = plugin.step()
        asked = datetime.now(UTC)
        held = plugin.step()
    assert [headers.get("Prefer") for headers in requests] == ["wait=300", "wait=300", "wait=300"]
    assert 60 <= at_once <= 120
    assert held == 0.0
    # as OPA records it: the request's time is when its answer came, not when the long poll began
    assert plugin.status.last_request is not None
    answered = datetime.fromisoformat(plugin.status.last_request)
    assert answered - asked >= timedelta(seconds=1.1)
    assert plugin.status.last_successful_request == plugin.status.last_request


def test_a_long_poll_answered_at_once_with_the_active_bundle_is_no_change(
    tmp_path: Path, builds: Builds
) -> None:
    """A service that ignores If-None-Match and answers every long poll at once with the same bundle:
    it was downloaded, verified, compiled and activated again at once, in a loop (895 times in 10 s,
    92 % of a core); now it is no change, and the next request waits as configured."""
    same = Fault(body=builds.unsigned.read_bytes(), content_type=LONG_POLL_TYPE, headers=(("ETag", '"u9"'),))
    told: list[str] = []
    with fault_server(same) as url:
        plugin = started_plugin(url, tmp_path, polling=Polling(7, 9, long_polling_timeout=30))
        plugin.notify = lambda event, text, fields: told.append(event)
        delays = [plugin.step() for _ in range(3)]
    assert told == ["bundle_activated"]  # once, not at every answer
    assert delays[0] == 0.0 and all(7 <= delay <= 9 for delay in delays[1:]), delays
    assert (plugin.status.active_revision, plugin.status.code) == ("u9", None)
