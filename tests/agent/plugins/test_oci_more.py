"""More of what OCI registries do, as OPA meets it: a tag that names an index (a multi-platform tag,
`oras manifest index create`) is pulled through its image manifest, on a real ``docker-registry``;
and what a registry says back never keeps the credentials it was sent (a fake registry that echoes
them: fault injection, no decision)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyagent.agent.http import ServiceClient, TransportError
from pyagent.agent.plugins.oci import (
    BUNDLE_LAYER,
    MAX_MANIFEST_BYTES,
    OCI_MANIFEST,
    OciPuller,
    PullBudget,
    RegistryError,
    parse_reference,
)
from pyagent.config.opa import Service
from tests.agent.plugins.conftest import Builds, bundle_status, run_agent
from tests.agent.plugins.oci_setup import REPOSITORY, oci_config
from tests.helpers.registry import require_oras, run_registry

Answer = Callable[[http.server.BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class _Quiet(http.server.ThreadingHTTPServer):
    """A test server whose clients hang up on purpose (a body over its limit, a deadline): its handler
    threads, which outlive the test, print no traceback into a later test's output."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def _serve(answer: Answer) -> http.server.ThreadingHTTPServer:
    """A loopback HTTP server answering each GET with ``answer(handler)``: (status, headers, body)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = answer(self)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = _Quiet(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def echoing_registry() -> Iterator[str]:
    """A registry that refuses every request, quoting the Authorization it was sent, as some do."""

    def refuse(handler: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        sent = str(handler.headers.get("Authorization"))
        raw = base64.b64decode(sent.partition(" ")[2]).decode()  # the token itself, as some say it back
        said = f"credentials {sent} refused (token {raw}; as given: {sent.partition(' ')[2]})"
        body = json.dumps({"errors": [{"code": "DENIED", "message": said}]}).encode()
        return 403, {"Content-Type": "application/json"}, body

    server = _serve(refuse)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_what_a_registry_says_back_keeps_no_credential(echoing_registry: str, tmp_path: Path) -> None:
    token = tmp_path / "registry.token"
    token.write_text("s3cret-registry-token\n")
    service = Service("registry", echoing_registry, timeout=5, token_path=str(token), oci=True)
    reference = parse_reference(f"127.0.0.1/{REPOSITORY}:stable", what="resource")
    puller = OciPuller(ServiceClient(service), reference, size_limit=1 << 20, label="pyagent")
    with pytest.raises(RegistryError) as refused:
        puller.pull(tmp_path.joinpath("sink").open("wb"), etag=None, manifest_timeout=5, blob_timeout=5)
    sent = base64.b64encode(b"s3cret-registry-token").decode()
    assert str(refused.value) == (
        f"GET {echoing_registry}/v2/{REPOSITORY}/manifests/stable: HTTP 403: DENIED: credentials Bearer *** "
        "refused (token ***; as given: ***)"
    )
    assert sent not in str(refused.value) and "s3cret" not in str(refused.value)


@pytest.mark.timeout(120)
def test_a_tag_that_names_an_index_is_pulled_through_its_image_manifest(
    tmp_path: Path, builds: Builds
) -> None:
    with run_registry(tmp_path) as registry:
        oras = require_oras()
        registry.push(oras, builds.wasm["r1"], f"{REPOSITORY}:single")
        done = subprocess.run(
            [str(oras), "manifest", "index", "create", "--plain-http", f"{registry.host}/{REPOSITORY}:multi",
             "single"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        reference = f"{registry.host}/{REPOSITORY}:multi"
        config = oci_config(tmp_path / "agent.toml", state=tmp_path / "state", url=registry.url,
                            reference=reference, public_key=builds.public_key)  # fmt: skip
        run = run_agent("--once", "--config", str(config))
        assert run.returncode == 0, run.stderr
        assert bundle_status(tmp_path / "state")["active_revision"] == "r1"


class _Storage:
    """A registry whose blob is sent to its storage on another origin (a signed URL), and that
    storage: what the storage was sent, and what it answers (fault injection, no decision)."""

    def __init__(self, blob: bytes) -> None:
        self.blob, self.status, self.authorizations = blob, 200, []  # type: list[str | None]
        self.digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        storage, registry = _serve(self._store), _serve(self._registry)
        self.servers = [storage, registry]
        self.storage_url = f"http://127.0.0.1:{storage.server_address[1]}"
        self.registry_url = f"http://127.0.0.1:{registry.server_address[1]}"

    def _store(self, handler: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        self.authorizations.append(handler.headers.get("Authorization"))
        return self.status, {}, self.blob if self.status == 200 else b"storage error"

    def _registry(self, handler: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        if "/manifests/" in handler.path:
            layer = {"mediaType": BUNDLE_LAYER, "digest": self.digest, "size": len(self.blob)}
            manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [layer]}
            return 200, {"Content-Type": OCI_MANIFEST}, json.dumps(manifest).encode()
        signed = f"{self.storage_url}/blob?X-Amz-Signature=SIGNATURE&sig=AZURESIG"
        return 307, {"Location": signed}, b""

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def test_a_blob_sent_to_storage_elsewhere_goes_without_credentials_and_its_signature_is_never_kept(
    tmp_path: Path,
) -> None:
    token = tmp_path / "registry.token"
    token.write_text("s3cret-registry-token\n")
    storage = _Storage(b"the bundle's bytes")
    try:
        service = Service("registry", storage.registry_url, timeout=5, token_path=str(token), oci=True)
        reference = parse_reference(f"127.0.0.1/{REPOSITORY}:stable", what="resource")
        puller = OciPuller(ServiceClient(service), reference, size_limit=1 << 20, label="pyagent")
        with (tmp_path / "download").open("wb") as sink:
            pulled = puller.pull(sink, etag=None, manifest_timeout=5, blob_timeout=5)
        assert (pulled.changed, pulled.layer_digest, (tmp_path / "download").read_bytes()) == (
            True, storage.digest, b"the bundle's bytes"
        )  # fmt: skip
        assert storage.authorizations == [None]  # the registry's credentials stay with the registry
        storage.status = 500
        with pytest.raises(RegistryError) as failed, (tmp_path / "again").open("wb") as sink:
            puller.pull(sink, etag=None, manifest_timeout=5, blob_timeout=5)
        assert str(failed.value) == f"GET {storage.storage_url}/blob: HTTP 500"
    finally:
        storage.close()


def test_a_url_a_registry_gives_that_does_not_parse_is_its_error(tmp_path: Path) -> None:
    """A redirect's ``Location`` and a token realm come from the registry: one that is not a URL is a
    registry error naming it (reported, backed off), never the URL parser's exception."""
    answers = {
        "/v2/policies/pyagent/manifests/moved": (302, {"Location": "http://[bad/x"}, b""),
        "/v2/policies/pyagent/manifests/token": (
            401,
            {"WWW-Authenticate": 'Bearer realm="http://[x/token"'},
            b"",
        ),
        "/v2/policies/pyagent/manifests/port": (307, {"Location": "http://127.0.0.1:99999/x"}, b""),
    }
    server = _serve(lambda handler: answers[handler.path])
    registry = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        service = Service("registry", registry, timeout=5, oci=True)
        messages = []
        for tag in ("moved", "token", "port"):
            reference = parse_reference(f"127.0.0.1/{REPOSITORY}:{tag}", what="resource")
            puller = OciPuller(ServiceClient(service), reference, size_limit=1 << 20, label="pyagent")
            with pytest.raises(RegistryError) as refused, (tmp_path / tag).open("wb") as sink:
                puller.pull(sink, etag=None, manifest_timeout=5, blob_timeout=5)
            messages.append(str(refused.value))
    finally:
        server.shutdown()
        server.server_close()
    where = f"GET {registry}/v2/{REPOSITORY}/manifests"
    assert messages == [
        f"{where}/moved: HTTP 302 redirect to 'http://[bad/x', which is not a URL (Invalid IPv6 URL)",
        "pyagent: the registry names as its token service 'http://[x/token', which is not a URL "
        "(Invalid IPv6 URL)",
        f"{where}/port: HTTP 307 redirect to 'http://127.0.0.1:99999/x', which is not a URL "
        "(Port out of range 0-65535)",
    ]


def test_a_manifest_over_its_limit_is_the_registrys_error_not_a_refused_bundle(tmp_path: Path) -> None:
    manifest = json.dumps({"schemaVersion": 2, "padding": "x" * MAX_MANIFEST_BYTES}).encode()
    server = _serve(lambda handler: (200, {"Content-Type": OCI_MANIFEST}, manifest))
    registry = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        service = Service("registry", registry, timeout=5, oci=True)
        reference = parse_reference(f"127.0.0.1/{REPOSITORY}:stable", what="resource")
        puller = OciPuller(ServiceClient(service), reference, size_limit=1 << 30, label="pyagent")
        with pytest.raises(RegistryError) as failed, (tmp_path / "sink").open("wb") as sink:
            puller.pull(sink, etag=None, manifest_timeout=5, blob_timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert str(failed.value) == (
        f"GET {registry}/v2/{REPOSITORY}/manifests/stable: the manifest: the answer is {len(manifest)} "
        f"bytes, over the limit of {MAX_MANIFEST_BYTES}"
    )


def test_a_chain_of_slow_redirects_is_bounded_by_the_part_s_time_in_all(tmp_path: Path) -> None:
    """Each hop of a same-origin redirect chain had the whole manifest timeout: redirects whose bodies
    come a byte every 0.2 s took 0.8 s each, within a second, and the chain went on to its end (four
    hops, the last a 404). The manifest's second, and the header timeout for each request beyond
    the first (0.2 s each, 1 s in all), bound the whole chain: the fourth hop is never asked."""
    chain = {
        f"/v2/{REPOSITORY}/manifests/{tag}": after for tag, after in (("a", "b"), ("b", "c"), ("c", "d"))
    }
    asked: list[str] = []

    class Dripping(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path.rsplit("/", 1)[1])
            after = chain.get(self.path)
            self.send_response(307 if after else 404)
            if after:
                self.send_header("Location", f"/v2/{REPOSITORY}/manifests/{after}")
            self.send_header("Content-Length", "4")
            self.end_headers()
            for byte in b"slow":
                time.sleep(0.2)
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = _Quiet(("127.0.0.1", 0), Dripping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    registry = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        service = Service("registry", registry, timeout=0.2, oci=True)
        reference = parse_reference(f"127.0.0.1/{REPOSITORY}:a", what="resource")
        puller = OciPuller(ServiceClient(service), reference, size_limit=1 << 20, label="pyagent")
        with pytest.raises((RegistryError, TransportError)) as failed, (tmp_path / "sink").open("wb") as sink:
            puller.pull(sink, etag=None, manifest_timeout=1, blob_timeout=1)
    finally:
        server.shutdown()
        server.server_close()
    assert asked[:2] == ["a", "b"] and "d" not in asked
    assert "HTTP 404" not in str(failed.value)


def test_a_part_whose_time_is_spent_asks_nothing_more() -> None:
    budget = PullBudget.of("the blob", 0.0)
    with pytest.raises(RegistryError) as spent:
        budget.left("GET http://registry/v2/x/blobs/sha256:0")
    assert str(spent.value) == (
        "GET http://registry/v2/x/blobs/sha256:0: the blob not pulled within 0 s "
        "(redirects and token included)"
    )
