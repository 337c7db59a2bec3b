"""A bundle in OPA's status message, field for field as OPA's ``plugins/bundle`` Status gives it."""

from __future__ import annotations

import errno
import io
import os
import tarfile
from email.message import Message
from pathlib import Path

import pytest

from pyagent.agent.plugins.bundledir import BundleStatus
from tests.agent.plugins.conftest import Builds, started_plugin
from tests.helpers.fault_server import Fault, fault_server

AT = "2023-03-16T09:30:00Z"


def test_an_active_bundle_is_a_snapshot_with_its_size_and_no_http_code() -> None:
    status = BundleStatus(
        "pyagent",
        etag='"e1"',
        active_revision="r1",
        active_serial=1,
        last_request=AT,
        last_successful_request=AT,
        last_successful_download=AT,
        last_successful_activation=AT,
        http_code=200,
        size=146_840,
    )
    assert status.opa_json() == {
        "name": "pyagent",
        "active_revision": "r1",
        "last_request": AT,
        "last_successful_request": AT,
        "last_successful_download": AT,
        "last_successful_activation": AT,
        "type": "snapshot",
        "size": 146_840,
    }


def test_an_http_error_gives_its_code_other_errors_none() -> None:
    failing = BundleStatus("pyagent", last_request=AT, http_code=503, code="bundle_error", message="HTTP 503")
    assert failing.opa_json() == {
        "name": "pyagent",
        "last_request": AT,
        "code": "bundle_error",
        "message": "HTTP 503",
        "errors": [{"code": "bundle_error", "message": "HTTP 503"}],  # OPA's type: objects, not strings
        "http_code": 503,
    }
    refused = BundleStatus("pyagent", last_request=AT, http_code=200, code="bundle_error", message="bad sig")
    assert "http_code" not in refused.opa_json()


def test_activation_sets_the_size_and_forgetting_the_bundle_clears_it(tmp_path: Path, builds: Builds) -> None:
    raw = builds.unsigned.read_bytes()
    answer = Fault(body=raw, content_type="application/gzip", headers=(("ETag", '"u9"'),))
    with fault_server(answer) as url:
        plugin = started_plugin(url, tmp_path)
        plugin.step(wait=False)
    shown = plugin.status.opa_json()
    assert (shown["active_revision"], shown["type"], shown["size"]) == ("u9", "snapshot", len(raw))
    assert "http_code" not in shown and "code" not in shown
    plugin.forget_active("it no longer verifies", mark=plugin.active_mark())
    shown = plugin.status.opa_json()
    assert not {"active_revision", "type", "size"} & set(shown)
    assert (shown["code"], shown["message"]) == (
        "bundle_error",
        "the active bundle does not load: it no longer verifies",
    )


def test_a_bundle_read_whole_that_does_not_load_is_a_successful_download_as_in_opa(
    tmp_path: Path, builds: Builds
) -> None:
    """OPA's bundle plug-in sets ``last_successful_request`` and ``last_successful_download`` once a
    bundle is read (and verified), before activating it: an activation error leaves them set. A Rego
    build is such a bundle for the embedded engine: read whole, then refused as it has no policy.wasm
    (unsigned: a signed one is refused before, with no key configured)."""
    raw = _unsigned(builds.rego["r1"])
    answer = Fault(body=raw, content_type="application/gzip", headers=(("ETag", '"r1"'),))
    with fault_server(answer) as url:
        plugin = started_plugin(url, tmp_path)
        plugin.step(wait=False)
    shown = plugin.status.opa_json()
    assert plugin.active_path() is None and "active_revision" not in shown
    assert shown["last_successful_request"] == shown["last_successful_download"] == shown["last_request"]
    assert "last_successful_activation" not in shown
    assert shown["code"] == "bundle_error" and "this is the Rego build, which OPA reads" in shown["message"]
    assert [r["kind"] for r in plugin.status.refusals] == ["unreadable"]


def _unsigned(signed: Path) -> bytes:
    """The bundle ``signed`` without its ``/.signatures.json``."""
    out = io.BytesIO()
    with tarfile.open(signed, "r:gz") as old, tarfile.open(fileobj=out, mode="w:gz") as new:
        for member in old:
            if member.name.lstrip("/") != ".signatures.json":
                new.addfile(member, old.extractfile(member) if member.isfile() else None)
    return out.getvalue()


def test_a_bundle_cut_short_is_neither_a_successful_request_nor_a_download(
    tmp_path: Path, builds: Builds
) -> None:
    """A download that does not read as a bundle is OPA's download error: nothing successful is set."""
    raw = builds.unsigned.read_bytes()
    answer = Fault(body=raw[: len(raw) // 2], content_type="application/gzip", headers=(("ETag", '"u9"'),))
    with fault_server(answer) as url:
        plugin = started_plugin(url, tmp_path)
        plugin.step(wait=False)
    shown = plugin.status.opa_json()
    assert plugin.active_path() is None
    assert {"last_successful_request", "last_successful_download", "last_successful_activation"}.isdisjoint(
        shown
    )
    assert shown["last_request"] is not None and shown["code"] == "bundle_error"
    assert [r["kind"] for r in plugin.status.refusals] == ["unreadable"]


def test_a_bundle_that_cannot_be_kept_is_an_error_in_its_status(
    tmp_path: Path, builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the verified bundle is written: downloaded (as OPA), not active, and the error
    is in the status, never a status that reads as a success."""
    raw = builds.unsigned.read_bytes()
    answer = Fault(body=raw, content_type="application/gzip", headers=(("ETag", '"u9"'),))
    with fault_server(answer) as url:
        plugin = started_plugin(url, tmp_path)

        def full_disk(_raw: bytes) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(plugin.dir, "activate_unsigned", full_disk)
        plugin.step(wait=False)
    shown = plugin.status.opa_json()
    assert plugin.active_path() is None and "active_revision" not in shown
    assert shown["last_successful_download"] == shown["last_request"]
    assert (shown["code"], shown["message"]) == (
        "bundle_error",
        f"bundle pyagent: cannot keep it: {os.strerror(errno.ENOSPC)}",
    )


def test_an_error_without_an_answer_carries_no_http_code_of_an_earlier_one(tmp_path: Path) -> None:
    """As OPA clears it: a 503, then an answer cut short (no HTTP status to blame) reports none."""
    unavailable = Fault(status=503, body=b"busy", content_type="text/plain")
    cut_short = Fault(body=b"\x1f\x8b", declared_length=1000, content_type="application/gzip")
    with fault_server(unavailable, cut_short) as url:
        plugin = started_plugin(url, tmp_path)
        plugin.step(wait=False)
        assert plugin.status.opa_json()["http_code"] == 503
        plugin.step(wait=False)
    shown = plugin.status.opa_json()
    assert shown["code"] == "bundle_error" and "http_code" not in shown and plugin.status.http_code is None


def test_a_304_with_another_etag_renames_the_active_bundle_as_in_opa(tmp_path: Path, builds: Builds) -> None:
    raw = builds.unsigned.read_bytes()
    first = Fault(body=raw, content_type="application/gzip", headers=(("ETag", '"u9"'),))
    renamed = Fault(status=304, body=b"", content_type=None, headers=(("ETag", '"u9-moved"'),))
    seen: list[Message] = []
    with fault_server(first, renamed, seen=seen) as url:
        plugin = started_plugin(url, tmp_path)
        for _ in range(3):
            plugin.step(wait=False)
    assert [m.get("If-None-Match") for m in seen] == [None, '"u9"', '"u9-moved"']
    assert (plugin.status.etag, plugin.status.active_revision) == ('"u9-moved"', "u9")


def test_a_persisted_bundle_without_a_revision_is_active_after_a_restart(
    tmp_path: Path, builds: Builds
) -> None:
    """``opa build`` without ``--revision`` writes none: "" is still the active bundle's revision."""
    import io
    import json
    import tarfile

    out = io.BytesIO()
    with tarfile.open(builds.unsigned, "r:gz") as source, tarfile.open(fileobj=out, mode="w:gz") as copy:
        for member in source.getmembers():
            content = (source.extractfile(member) or io.BytesIO()).read()
            if member.name.lstrip("/") == ".manifest":
                content = json.dumps({**json.loads(content), "revision": ""}).encode()
            member.size = len(content)
            copy.addfile(member, io.BytesIO(content))
    answer = Fault(body=out.getvalue(), content_type="application/gzip", headers=(("ETag", '"none"'),))
    with fault_server(answer) as url:
        plugin = started_plugin(url, tmp_path, persist=True)
        plugin.step(wait=False)
    assert plugin.active_path() is not None and plugin.status.active_revision == ""
    again = started_plugin("http://127.0.0.1:9", tmp_path, persist=True)  # restarted, the server gone
    assert again.active_path() == plugin.active_path()
    assert again.status.opa_json()["active_revision"] == ""


def test_while_an_attempt_is_in_flight_the_last_outcome_is_reported_whole(tmp_path: Path) -> None:
    """A status message sent during a slow attempt still gives the last failure's HTTP code with its
    message (OPA sets them together), and the new outcome replaces both."""
    import threading
    import time

    unavailable = Fault(status=503, body=b"busy", content_type="text/plain")
    slow_cut_short = Fault(body=b"\x1f\x8b", declared_length=1000, delay=1.0, content_type="application/gzip")
    with fault_server(unavailable, slow_cut_short) as url:
        plugin = started_plugin(url, tmp_path)
        plugin.step(wait=False)
        second = threading.Thread(target=plugin.step, kwargs={"wait": False})
        second.start()
        time.sleep(0.4)
        during = plugin.status.opa_json()
        second.join(timeout=10)
    assert (during["code"], during["http_code"]) == ("bundle_error", 503)
    after = plugin.status.opa_json()
    assert after["code"] == "bundle_error" and "http_code" not in after


def test_plugin_states_are_opas_a_failure_changes_none(tmp_path: Path, builds: Builds) -> None:
    """As the pinned `opa run` reports them: the bundle plug-in is NOT_READY until a bundle is active and
    OK from then on, a refused bundle or a failed upload changing no state (it reported ERROR, which
    OPA's /health?plugins calls unhealthy); the failure is told in the plug-in's message."""
    from pyagent.agent.http import ServiceClient
    from pyagent.agent.plugins.status import StatusPlugin
    from pyagent.config.opa import Service

    good = Fault(
        body=builds.unsigned.read_bytes(), content_type="application/gzip", headers=(("ETag", '"u9"'),)
    )
    refused = Fault(body=b"not gzip", content_type="application/gzip", headers=(("ETag", '"x"'),))
    seen = []
    with fault_server(Fault(status=503, body=b"busy", content_type=None), good, refused) as url:
        plugin = started_plugin(url, tmp_path)
        status = StatusPlugin(
            ServiceClient(Service("s", url)), {}, lambda: "d-1", bundles=[plugin], logs=None
        )
        for _ in range(3):
            plugin.step(wait=False)
            seen.append((status.message()["plugins"], plugin.status.message))
    (failed, failure), (active, _), (kept, refusal) = seen
    assert failed == {
        "status": {"state": "OK"},
        "bundle": {"state": "NOT_READY", "message": f"pyagent: {failure}"},
    }
    assert failure is not None and "HTTP 503" in failure
    assert active == {"status": {"state": "OK"}, "bundle": {"state": "OK"}}
    assert kept == {"status": {"state": "OK"}, "bundle": {"state": "OK", "message": f"pyagent: {refusal}"}}
    assert plugin.status.active_revision == "u9" and refusal is not None


def test_a_status_message_refused_is_said_each_time_as_opa_logs_it(tmp_path: Path) -> None:
    """A 401 after a token rotation: every status message was refused, and the agent said nothing (OPA
    logs "status update failed" each time); a success afterwards says nothing more."""
    from pyagent.agent.http import ServiceClient
    from pyagent.agent.plugins.status import StatusPlugin
    from pyagent.config.opa import Service

    told: list[tuple[str, str, dict[str, object]]] = []
    refused = Fault(status=401, body=b'{"code": "unauthorized", "message": "token rotated"}')
    ok = Fault(status=204, body=b"", content_type=None)
    with fault_server(*[refused] * 5, ok, refused, ok) as url:
        status = StatusPlugin(
            ServiceClient(Service("s", url)), {}, lambda: "d-1", bundles=[], logs=None, period=60.0,
            notify=lambda *event: told.append(event),
        )  # fmt: skip
        delays = [status.step() for _ in range(8)]
    error = f"{url}/status: HTTP 401: token rotated"
    assert [(name, text) for name, text, _ in told] == [("status_failed", f"status: {error}")] * 6
    # tried again after 5 s, then twice as long after each failure in a row, up to the period, each
    # scaled by a random factor in [0.5, 1] (it was every 5 s, in step: a fleet's agents adding to the
    # load of a server refusing them); a success starts over
    bounds = [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 5.0]
    assert all(bound / 2 <= delay <= bound for delay, bound in zip(delays, bounds, strict=False)), delays
    assert (delays[-1], status.state.last_error) == (60.0, None)
