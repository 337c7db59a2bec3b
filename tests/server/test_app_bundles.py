"""The server in-process, the Bundle API: ETags and 304, long polling, and publishing over
``PUT /api/v1/bundles/{name}`` (multipart or one bundle as the body, ordered, bounded)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from pyagent.server.app import create_app
from pyagent.server.bundles import prefer_wait
from pyagent.server.settings import ServerSettings
from pyagent.server.store import Store
from pyagent.server.store.base import BundleFile, NewRevision
from tests.server.inprocess import Fleet, held_after_first_read

NOT_GZIP = (  # after "bundle NAME"
    ": not a readable tar.gz: bad gzip stream (Error -3 while decompressing data: unknown compression method)"
)


def test_bundle_etag_and_304(fleet: Fleet) -> None:
    first = fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent"))
    assert (first.status_code, first.content, first.headers["etag"]) == (200, b"rego-r1", '"etag-r1"')
    # a plain request too: OPA's first never waits, and learns from any bundle answer that the service
    # long-polls (given application/gzip, it never long-polled this server)
    assert first.headers["content-type"] == "application/vnd.openpolicyagent.bundles"
    wasm = fleet.client.get("/bundles/pyagent/wasm", headers=fleet.auth("agent"))
    assert (wasm.content, wasm.headers["etag"]) == (b"wasm-r1", '"etag-r1w"')
    again = fleet.client.get(
        "/bundles/pyagent", headers={**fleet.auth("agent"), "If-None-Match": '"etag-r1"'}
    )
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", '"etag-r1"')
    stale = fleet.client.get("/bundles/pyagent", headers={**fleet.auth("agent"), "If-None-Match": '"old"'})
    assert (stale.status_code, stale.content) == (200, b"rego-r1")
    missing = fleet.client.get("/bundles/nope", headers=fleet.auth("agent"))
    assert (missing.status_code, missing.json()["code"]) == (404, "bundle_not_found")


def test_long_poll_times_out_with_304_and_says_it_long_polls(fleet: Fleet) -> None:
    headers = {**fleet.auth("agent"), "If-None-Match": '"etag-r1"', "Prefer": "wait=1"}
    started = time.monotonic()
    response = fleet.client.get("/bundles/pyagent", headers=headers)
    waited = time.monotonic() - started
    assert response.status_code == 304
    assert response.headers["content-type"] == "application/vnd.openpolicyagent.bundles"
    assert 0.9 <= waited < 5


R2_REGO = BundleFile("rego", '"etag-r2"', b"rego-r2")


def _poll_across_a_publish(
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    *,
    publish_after: float,
    build: BundleFile = R2_REGO,
) -> dict[str, Any]:
    """A long poll for r1's successor (``wait=30``), with r2's ``build`` published ``publish_after``
    seconds after the poll first read the store (so that it is held on r1): its status, body and how
    long it took."""
    held_on = '"etag-r1"' if build.target == "rego" else '"etag-r1w"'
    headers = {**fleet.auth("agent"), "If-None-Match": held_on, "Prefer": "wait=30"}
    answer: dict[str, Any] = {}
    held = held_after_first_read(fleet, monkeypatch)

    def poll() -> None:
        started = time.monotonic()
        path = "/bundles/pyagent" if build.target == "rego" else "/bundles/pyagent/wasm"
        response = fleet.client.get(path, headers=headers)
        answer.update(status=response.status_code, body=response.content, took=time.monotonic() - started)

    waiter = threading.Thread(target=poll)
    waiter.start()
    assert held.wait(10)
    time.sleep(publish_after)
    fleet.store.publish(NewRevision("pyagent", "r2", None, False, "test", [build]))
    waiter.join(timeout=10)
    return answer


def test_long_poll_is_answered_by_a_publish(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = _poll_across_a_publish(fleet, monkeypatch, publish_after=0.5)
    assert (answer["status"], answer["body"]) == (200, b"rego-r2")
    assert answer["took"] < 5


def test_a_long_poll_is_answered_by_the_missing_build_of_the_current_revision(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """r2 published as Rego alone, then its wasm build: the revision id stays, and the agents' held
    polls were woken only by the 30 s re-read (an attacker-side audit measured 28 s)."""
    fleet.store.publish(
        NewRevision("pyagent", "r2", None, False, "test", [BundleFile("rego", '"r2"', b"r2")])
    )
    wasm = BundleFile("wasm", '"etag-r2w"', b"wasm-r2")
    answer = _poll_across_a_publish(fleet, monkeypatch, publish_after=0.5, build=wasm)
    assert (answer["status"], answer["body"]) == (200, b"wasm-r2")
    assert answer["took"] < 5


def test_past_the_held_poll_limit_a_long_poll_is_answered_at_once(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held polls are bounded (half the open-file limit; one here): an agent token could hold 2,000
    for 300 s each, and as many as the process has files would leave it none for anyone else. The
    poll past the bound gets the bundle at once, as a service that does not long poll sends it: OPA and
    the agent then poll every min..max_delay_seconds until a bundle answer says "long poll" again (a
    304 is their cue to ask again at once; an error, in OPA, to download the bundle 100 ms later)."""
    monkeypatch.setattr("pyagent.server.bundles.held_poll_limit", lambda: 1)
    monkeypatch.setattr("pyagent.server.bundles.RECHECK_SECONDS", 0.5)
    headers = {**fleet.auth("agent"), "If-None-Match": '"etag-r1"', "Prefer": "wait=2"}
    started = time.monotonic()
    first: dict[str, Any] = {}
    holder = threading.Thread(
        target=lambda: first.update(r=fleet.client.get("/bundles/pyagent", headers=headers))
    )
    holder.start()
    while time.monotonic() - started < 5 and not _held_now(fleet):
        time.sleep(0.01)
    second = fleet.client.get("/bundles/pyagent", headers=headers)
    answered_after = time.monotonic() - started
    holder.join(10)
    assert (second.status_code, second.headers["content-type"], second.content) == (
        200, "application/gzip", b"rego-r1"
    )  # fmt: skip
    assert first["r"].status_code == 304
    assert answered_after < 1.5 <= time.monotonic() - started  # the second at once, the first held


def _held_now(fleet: Fleet) -> bool:
    held: int = fleet.client.app.state.ctx.held_polls  # type: ignore[attr-defined]
    return held == 1


def test_a_held_long_poll_reads_the_store_once_while_nothing_changes(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting costs nothing: the store is read when the poll comes, not once a second after it."""
    reads: list[str] = []
    head = fleet.store.bundle_head

    def counted(name: str, target: str) -> Any:
        reads.append(name)
        return head(name, target)

    monkeypatch.setattr(fleet.store, "bundle_head", counted)
    headers = {**fleet.auth("agent"), "If-None-Match": '"etag-r1"', "Prefer": "wait=3"}
    assert fleet.client.get("/bundles/pyagent", headers=headers).status_code == 304
    assert reads == ["pyagent"]


def test_a_missed_wake_up_is_made_good_by_reading_again(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notifier is a hint: a publish it never announced is found at the next re-read anyway."""
    from pyagent.server import bundles
    from pyagent.server.notify import Notifier

    monkeypatch.setattr(bundles, "RECHECK_SECONDS", 1.0)
    monkeypatch.setattr(Notifier, "wake", lambda self: None)
    answer = _poll_across_a_publish(fleet, monkeypatch, publish_after=0.3)
    assert (answer["status"], answer["body"]) == (200, b"rego-r2")
    assert 0.9 < answer["took"] < 5  # found at the re-read, a second after the poll began


@pytest.fixture(scope="module")
def rego_bundle(opa_bin: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import subprocess

    from tests.helpers.opa_server import POLICY_DIRS

    out = tmp_path_factory.mktemp("rego") / "rego.tar.gz"
    subprocess.run(
        [opa_bin, "build", "-t", "rego", "--revision", "api-1", "--ignore", "*_test.rego", "-o", str(out),
         *map(str, POLICY_DIRS)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out.read_bytes()


def test_admins_publish_over_the_api(fleet: Fleet, rego_bundle: bytes) -> None:
    files = {"rego": ("rego.tar.gz", rego_bundle, "application/gzip")}
    response = fleet.client.put("/api/v1/bundles/pyagent", files=files, headers=fleet.auth("admin"))
    assert response.status_code == 201, response.text
    assert response.json() == {
        "name": "pyagent", "revision": "api-1", "serial": None, "signed": False, "targets": ["rego"],
        "revision_id": 2, "note": "unsigned: no verification key is configured", "stored": True,
    }  # fmt: skip
    served = fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent"))
    assert served.content == rego_bundle
    again = fleet.client.put("/api/v1/bundles/pyagent", files=files, headers=fleet.auth("admin"))
    assert (again.status_code, again.json()["stored"], again.json()["revision_id"]) == (200, False, 2)
    assert again.json()["note"] == "already published: the current revision's rego build, byte for byte"
    assert [fleet.store.bundle_head("pyagent", "rego").revision_id] == [2]  # type: ignore[union-attr]
    rebuilt = {"rego": ("rego.tar.gz", _with_manifest(rego_bundle, "api-1", None), "application/gzip")}
    refused = fleet.client.put("/api/v1/bundles/pyagent", files=rebuilt, headers=fleet.auth("admin"))
    assert (refused.status_code, refused.json()["message"]) == (
        409, "bundle pyagent: revision 'api-1' is already the current one"
    )  # fmt: skip
    admin = fleet.auth("admin")
    for media, revision in [
        (None, "api-2"),
        ("application/octet-stream", "api-3"),
        ("application/x-gzip", "api-4"),
        ("application/x-www-form-urlencoded", "api-5"),  # curl --data-binary's
    ]:
        typed = {"Content-Type": media} if media else {}  # as HTTP clients send bytes by default
        body = _with_manifest(rego_bundle, revision, None)
        raw = fleet.client.put("/api/v1/bundles/pyagent", content=body, headers={**admin, **typed})
        assert (raw.status_code, raw.json()["revision"]) == (201, revision), raw.text
    text = fleet.client.put(
        "/api/v1/bundles/pyagent", content=rego_bundle, headers={**admin, "Content-Type": "text/plain"}
    )
    assert (text.status_code, text.json()["message"]) == (
        415,
        "content type 'text/plain': send the bundles as multipart/form-data files, or one bundle as "
        "application/gzip or application/vnd.openpolicyagent.bundles",
    )
    junk = {"rego": ("junk.tar.gz", b"\x1f\x8bjunk", "application/gzip")}
    bad = fleet.client.put("/api/v1/bundles/pyagent", files=junk, headers=fleet.auth("admin"))
    assert (bad.status_code, bad.json()["message"]) == (400, "bundle junk.tar.gz" + NOT_GZIP)
    name = fleet.client.put("/api/v1/bundles/..%2Fx", files=files, headers=fleet.auth("admin"))
    assert (name.status_code, name.json()) == (
        404, {"code": "not_found", "message": "PUT /api/v1/bundles/../x: not found"}
    )  # fmt: skip
    name = fleet.client.put("/api/v1/bundles/-x", files=files, headers=fleet.auth("admin"))
    assert (name.status_code, name.json()["message"]) == (
        400, "bundle name '-x': use 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )  # fmt: skip


def _with_manifest(raw: bytes, revision: str, serial: int | None, **more: Any) -> bytes:
    """``raw`` (an unsigned bundle) with its ``.manifest`` naming ``revision`` and build ``serial``
    (and ``more`` of its keys)."""
    import io
    import tarfile

    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as source,
        tarfile.open(fileobj=out, mode="w:gz") as copy,
    ):
        for member in source.getmembers():
            content = (source.extractfile(member) or io.BytesIO()).read()
            if member.name.lstrip("/") == ".manifest":
                manifest = {**json.loads(content), "revision": revision, **more}
                if serial is not None:
                    manifest["metadata"] = {"pyagent": {"serial": serial}}
                content = json.dumps(manifest).encode()
            member.size = len(content)
            copy.addfile(member, io.BytesIO(content))
    return out.getvalue()


def test_a_server_without_the_key_cannot_publish_over_a_verified_revision(
    fleet: Fleet, rego_bundle: bytes
) -> None:
    """A replica started without [server.verification], behind the same load balancer."""
    fleet.store.publish(
        NewRevision("pyagent", "signed-2", 2, True, "cli", [BundleFile("rego", '"s2"', b"x")])
    )
    files = {"rego": ("rego.tar.gz", rego_bundle, "application/gzip")}
    refused = fleet.client.put("/api/v1/bundles/pyagent", files=files, headers=fleet.auth("admin"))
    assert (refused.status_code, refused.json()["message"]) == (
        409, "bundle pyagent: revision 'signed-2' was verified by the server's key, and this publish "
        "verifies none; publish with the server's config, whose [server.verification] names the key "
        "(pyagent server publish --config FILE)",
    )  # fmt: skip
    head = fleet.store.bundle_head("pyagent", "rego")
    assert head is not None and head.revision == "signed-2"


@pytest.mark.parametrize("media", ["application/gzip", "application/vnd.openpolicyagent.bundles"])
def test_one_bundle_as_the_body_is_published_and_ordered_without_a_key(
    fleet: Fleet, rego_bundle: bytes, media: str
) -> None:
    """No verification key: the manifest's serial, else the revision, must still be newer (409)."""
    headers = {**fleet.auth("admin"), "Content-Type": media}

    sent: list[bytes] = []

    def put(revision: str, serial: int | None) -> Any:
        sent.append(_with_manifest(rego_bundle, revision, serial))
        return fleet.client.put("/api/v1/bundles/pyagent", content=sent[-1], headers=headers)

    created = put("s5", 5)
    assert (created.status_code, created.json()) == (201, {
        "name": "pyagent", "revision": "s5", "serial": 5, "signed": False, "targets": ["rego"],
        "revision_id": 2, "note": "unsigned: no verification key is configured", "stored": True,
    })  # fmt: skip
    served = fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent"))
    assert served.content == sent[0]  # as sent (a gzip header holds the second it was written)
    for revision, serial, message in [
        ("s4", 4, "bundle pyagent: serial 4 is not newer than the current serial 5 (revision s5)"),
        ("s5b", 5, "bundle pyagent: serial 5 is not newer than the current serial 5 (revision s5)"),
        ("r1", None, "bundle pyagent: revision 'r1' was published before; "
                     "it is not newer than the current revision 's5'"),
    ]:  # fmt: skip
        refused = put(revision, serial)
        assert (refused.status_code, refused.json()["message"]) == (409, message)
    assert put("s6", 6).status_code == 201
    head = fleet.store.bundle_head("pyagent", "rego")
    assert head is not None and (head.revision, head.serial) == ("s6", 6)
    for serial in (2**63, 2**70, -1):  # a database keeps 64 signed bits: past them was a 500
        refused = put("s7", serial)
        expected = (
            f"body: .manifest metadata.pyagent.serial {serial}: expected an integer from 0 to {2**63 - 1}"
        )
        assert (refused.status_code, refused.json()["message"]) == (400, expected)
    assert put("s7", 2**63 - 1).status_code == 201
    bad = fleet.client.put("/api/v1/bundles/pyagent", content=b"\x1f\x8bjunk", headers=headers)
    assert (bad.status_code, bad.json()["message"]) == (400, "bundle body" + NOT_GZIP)


@pytest.mark.parametrize(
    ("roots", "problem"),
    [
        (["pyagent", "pyagent/decision"], ".manifest: roots 'pyagent' and 'pyagent/decision' overlap"),
        (["other"], 'data.json: data at /pyagent: outside the bundle\'s roots ["other"]'),
    ],
)
def test_a_bundle_whose_roots_opa_would_refuse_is_not_published(
    fleet: Fleet, rego_bundle: bytes, roots: list[str], problem: str
) -> None:
    """Published, it would become the newest revision, which every OPA and agent then refuses."""
    headers = {**fleet.auth("admin"), "Content-Type": "application/gzip"}
    body = _with_manifest(rego_bundle, "bad-roots", 9, roots=roots)
    refused = fleet.client.put("/api/v1/bundles/pyagent", content=body, headers=headers)
    assert (refused.status_code, refused.json()["message"]) == (
        400,
        f"bundle body: rejected (outside-roots): {problem}",
    )
    assert fleet.store.bundles_version() == (1, 2)


def test_one_bundle_as_the_body_is_bounded_while_read(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """The body is read from a capped stream: past the bundle bound, 413 before it is all read."""
    monkeypatch.setattr("pyagent.server.api.MAX_BUNDLE_BYTES", 1024)
    headers = {**fleet.auth("admin"), "Content-Type": "application/gzip"}
    chunks = iter([b"\x1f\x8b" + b"\0" * 1022, b"\0" * 1024])  # streamed: no Content-Length
    response = fleet.client.put("/api/v1/bundles/pyagent", content=chunks, headers=headers)
    assert (response.status_code, response.json()["message"]) == (413, "body is over the limit of 1024 bytes")
    assert fleet.store.bundles_version() == (1, 2)


def test_a_publish_is_bounded_by_max_body_like_every_body(sqlite_store: Store, rego_bundle: bytes) -> None:
    """CONTRACT section 7: bodies are bounded by --max-body; a publish too, declared or streamed."""
    limit = len(rego_bundle) - 1
    publisher = Fleet(
        sqlite_store, TestClient(create_app(ServerSettings(max_body_bytes=limit), sqlite_store))
    )
    with publisher.client:
        headers = {**publisher.auth("admin"), "Content-Type": "application/gzip"}
        declared = publisher.client.put("/api/v1/bundles/pyagent", content=rego_bundle, headers=headers)
        assert (declared.status_code, declared.json()["message"]) == (
            413, f"body of {len(rego_bundle)} bytes is over the limit of {limit} bytes"
        )  # fmt: skip
        streamed = publisher.client.put(
            "/api/v1/bundles/pyagent", content=iter([rego_bundle]), headers=headers
        )
        assert (streamed.status_code, streamed.json()["message"]) == (
            413,
            f"body is over the limit of {limit} bytes",
        )
        files = {"rego": ("rego.tar.gz", rego_bundle, "application/gzip")}
        form = publisher.client.put("/api/v1/bundles/pyagent", files=files, headers=publisher.auth("admin"))
        assert form.status_code == 413 and form.json()["message"].endswith(f"over the limit of {limit} bytes")
        assert sqlite_store.bundles_version() == (0, 0)
    with TestClient(create_app(ServerSettings(max_body_bytes=limit + 1), sqlite_store)) as larger:
        headers = {**publisher.auth("admin"), "Content-Type": "application/gzip"}
        assert larger.put("/api/v1/bundles/pyagent", content=rego_bundle, headers=headers).status_code == 201


def _prefer(*values: str) -> Request:
    return Request({"type": "http", "headers": [(b"prefer", value.encode()) for value in values]})


@pytest.mark.parametrize(
    ("values", "seconds"),
    [
        (("wait=3",), 3), (("Wait=3",), 3), (("WAIT = 3",), 3), (('wait="3"',), 3),
        (("respond-async, wait=3",), 3), (("handling=lenient; x=1, wait=3; y",), 3),
        (("modes=snapshot,delta;wait=25",), 25), (("modes=snapshot,delta; Wait = 25",), 25),
        (("return=minimal", "wait=7"), 7), (("wait=3, wait=9",), 3),
        (("wait=99999999999999999999",), 300), (("wait=301",), 300), (("wait=0",), 0),
        ((), None), (("respond-async",), None), (("wait",), None), (("wait=",), None),
        (("wait=-1",), None), (("wait=1.5",), None), (("wait=\u0663",), None), (("waiting=3",), None),
        (("x=wait=3",), None), (('foo="a,wait=3"',), None), (('return=minimal; foo="x;wait=5"',), None),
        (('wait="3',), None), (('wait=3"',), None), (('foo="a\\"b", wait=4',), 4),
        (("wait=0000000000000",), 0), (("wait=0000000000007",), 7), (("respond-async,, wait=10",), 10),
        ((", wait=10",), 10), ((";wait=10;",), 10),
    ],
)  # fmt: skip
def test_prefer_wait_is_read_as_rfc_7240_writes_it(values: tuple[str, ...], seconds: int | None) -> None:
    """``Wait=3`` and ``wait = 3`` were no long poll (an answer at once), and a wait of twenty digits
    none either, where it is the longest the server holds; a ``wait`` inside another preference's
    quoted value is that value's."""
    assert prefer_wait(_prefer(*values), 300) == seconds


def test_the_publish_api_documents_a_retry_and_a_refusal() -> None:
    from pyagent.server.openapi import document

    responses = document()["paths"]["/api/v1/bundles/{name}"]["put"]["responses"]
    assert sorted(responses) == ["200", "201", "400", "401", "403", "409"]
    assert responses["200"]["description"] == "the current revision again, byte for byte: nothing stored"
