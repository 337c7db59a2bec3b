"""Bundles from a real OCI registry (Debian's ``docker-registry``), pushed with the real ``oras`` in OPA's
media types, pulled by ``pyagent agent run --once`` with ``services.NAME.type = "oci"`` (and by a real
``opa run`` with the same tables): exact revisions, no second download of an unchanged tag, a new push
picked up, a tampered or replayed bundle refused, a registry that lies about a blob refused, an
oversize bundle refused, a blob the registry sends to another origin (its storage) followed without the
registry's credentials, and held to its digest as any other."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pyagent.agent.plugins.oci import parse_reference
from pyagent.config.opa import opa_tables
from pyagent.errors import InvalidInputError
from tests.agent.plugins.conftest import Builds, bundle_status, run_agent, spool_bodies, wait_for
from tests.agent.plugins.oci_setup import REPOSITORY, oci_config
from tests.helpers.opa_server import REPO, free_port
from tests.helpers.registry import RunningRegistry, lying_proxy, require_oras, run_registry

#: The service's bearer token as OPA sends it to an OCI registry: base64-encoded (rest/auth.go).
REGISTRY_AUTH = "Bearer " + base64.b64encode(b"s3cret-registry-token").decode()


def layer_digest(bundle: Path) -> str:
    return "sha256:" + hashlib.sha256(bundle.read_bytes()).hexdigest()


def push(
    registry: RunningRegistry, oras: Path, bundle: Path, tag: str = "stable", annotation: str | None = None
) -> str:
    return registry.push(oras, bundle, f"{REPOSITORY}:{tag}", annotation=annotation)


def manifest_gets(registry: RunningRegistry) -> list[int]:
    return [status for method, path, status in registry.requests()
            if method == "GET" and path == f"/v2/{REPOSITORY}/manifests/stable"]  # fmt: skip


@pytest.mark.timeout(180)
def test_pull_activate_unchanged_and_new_revisions(tmp_path: Path, builds: Builds) -> None:
    oras = require_oras()
    state = tmp_path / "state"
    with run_registry(tmp_path) as registry:
        r1 = push(registry, oras, builds.wasm["r1"])
        config = oci_config(tmp_path / "agent.toml", state=state, url=registry.url,
                            reference=f"{registry.host}/{REPOSITORY}:stable",
                            public_key=builds.public_key)  # fmt: skip
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        status = bundle_status(state)
        # as OPA: the ETag is the bundle layer's digest; the manifest's is kept for If-None-Match
        etag = layer_digest(builds.wasm["r1"])
        assert (status["active_revision"], status["active_serial"], status["etag"]) == ("r1", 1, etag)
        assert (status["manifest"], status["code"], status["http_code"]) == (r1, None, 200)
        active = state / "bundles" / "pyagent" / "last-good-bundle.tar.gz"
        assert active.read_bytes() == builds.wasm["r1"].read_bytes()
        assert spool_bodies(state)[-1]["bundles"] == {"pyagent": {"revision": "r1"}}
        assert registry.blob_gets(layer_digest(builds.wasm["r1"])) == 1
        assert manifest_gets(registry) == [200]

        # the same tag, unchanged: the manifest is asked with If-None-Match (304), the blob is not
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        status = bundle_status(state)
        assert (status["active_revision"], status["etag"], status["http_code"]) == ("r1", etag, 304)
        assert registry.blob_gets(layer_digest(builds.wasm["r1"])) == 1
        assert manifest_gets(registry) == [200, 304]

        # the same bundle pushed again (a new manifest, the same layer): not downloaded nor activated again
        activated = status["last_successful_activation"]
        again = push(registry, oras, builds.wasm["r1"], annotation="pushed=again")
        assert again != r1
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        status = bundle_status(state)
        assert (status["active_revision"], status["etag"], status["manifest"]) == ("r1", etag, again)
        assert (status["http_code"], status["last_successful_activation"]) == (200, activated)
        assert registry.blob_gets(layer_digest(builds.wasm["r1"])) == 1
        assert manifest_gets(registry) == [200, 304, 200]

        r2 = push(registry, oras, builds.wasm["r2"])  # a new revision to the same tag
        assert r2 != r1
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        status = bundle_status(state)
        assert (status["active_revision"], status["active_serial"]) == ("r2", 2)
        assert (status["etag"], status["manifest"]) == (layer_digest(builds.wasm["r2"]), r2)
        assert active.read_bytes() == builds.wasm["r2"].read_bytes()
        assert spool_bodies(state)[-1]["bundles"] == {"pyagent": {"revision": "r2"}}
        assert registry.blob_gets(layer_digest(builds.wasm["r2"])) == 1
        assert manifest_gets(registry) == [200, 304, 200, 200]
        assert not list((state / "bundles" / "pyagent").glob(".download-*"))


@pytest.mark.timeout(180)
def test_tampered_and_replayed_bundles_in_the_registry_are_refused(tmp_path: Path, builds: Builds) -> None:
    oras = require_oras()
    state = tmp_path / "state"
    with run_registry(tmp_path) as registry:
        push(registry, oras, builds.wasm["r2"])
        config = oci_config(tmp_path / "agent.toml", state=state, url=registry.url,
                            reference=f"{registry.host}/{REPOSITORY}:stable",
                            public_key=builds.public_key)  # fmt: skip
        assert run_agent("--once", "--config", str(config)).returncode == 0
        assert bundle_status(state)["active_revision"] == "r2"
        good = (state / "bundles" / "pyagent" / "last-good-bundle.tar.gz").read_bytes()
        digest = "[0-9a-f]{16}[.][.][.]"  # (a file's SHA-256, shortened)
        cases = [
            (builds.tampered, "tampered", rf"data\.json: digest mismatch \(signed {digest}, got {digest}\)"),
            (builds.wasm["r1"], "rollback", re.escape(
                "build serial 1 is older than the last accepted 2 (revision r2): "
                "replay of an old bundle refused")),
        ]  # fmt: skip
        for index, (bundle, kind, reason) in enumerate(cases, start=1):
            pushed = push(registry, oras, bundle)
            done = run_agent("--once", "--config", str(config))
            assert done.returncode == 0, done.stderr  # decided, with the last good bundle
            label = f"bundle pyagent ({registry.host}/{REPOSITORY}:stable)"
            refusal = f"bundle pyagent: refused, the active bundle stays: {label}: rejected ({kind})"
            assert refusal in done.stderr
            status = bundle_status(state)
            assert (status["active_revision"], status["active_serial"]) == ("r2", 2)
            assert (status["etag"], status["manifest"] != pushed) == (layer_digest(builds.wasm["r2"]), True)
            assert status["code"] == "bundle_error"
            assert re.fullmatch(rf"{re.escape(label)}: rejected \({kind}\): {reason}", status["message"])
            assert [r["kind"] for r in status["refusals"]] == [c[1] for c in cases[:index]]
            assert (state / "bundles" / "pyagent" / "last-good-bundle.tar.gz").read_bytes() == good
            assert spool_bodies(state)[-1]["bundles"] == {"pyagent": {"revision": "r2"}}

        push(registry, oras, builds.wasm["r3"])  # a good, newer one: taken, the error clears
        assert run_agent("--once", "--config", str(config)).returncode == 0
        status = bundle_status(state)
        assert (status["active_revision"], status["code"], status["message"]) == ("r3", None, None)


@pytest.mark.timeout(180)
def test_a_registry_that_lies_is_refused_and_a_blob_sent_elsewhere_is_followed(
    tmp_path: Path, builds: Builds
) -> None:
    """Through a proxy in front of the registry: the bearer token reaches the registry on every request;
    other bytes for the bundle's blob and a blob longer than its manifest says are each refused, and the
    agent stays on its last good bundle; a blob the registry sends to another origin (its storage, as
    ghcr.io, Docker Hub and ECR do) is fetched there, as OPA fetches it."""
    oras = require_oras()
    state = tmp_path / "state"
    token = tmp_path / "registry.token"
    token.write_text("s3cret-registry-token\n")
    with run_registry(tmp_path) as registry, lying_proxy(registry.url) as proxy:
        push(registry, oras, builds.wasm["r1"])
        reference = f"{registry.host}/{REPOSITORY}:stable"
        size = builds.wasm["r2"].stat().st_size
        with tarfile.open(builds.wasm["r2"], "r:gz") as archive:  # size_limit_bytes bounds each file too
            limit = max(member.size for member in archive.getmembers()) + 4096
        config = oci_config(tmp_path / "agent.toml", state=state, url=proxy.url, reference=reference,
                            public_key=builds.public_key, token=token, size_limit=limit)  # fmt: skip
        assert run_agent("--once", "--config", str(config)).returncode == 0
        assert bundle_status(state)["active_revision"] == "r1"
        assert proxy.seen and all(auth == REGISTRY_AUTH for _, auth in proxy.seen)

        push(registry, oras, builds.wasm["r2"])
        r2 = layer_digest(builds.wasm["r2"])
        other = builds.wasm["r3"].read_bytes()[: size - 1]  # other bytes, no longer than the manifest says
        proxy.swap[r2] = other
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        status = bundle_status(state)
        got = "sha256:" + hashlib.sha256(other).hexdigest()
        assert status["active_revision"] == "r1"
        assert status["refusals"][-1]["kind"] == "digest-mismatch"
        assert f"the registry sent {len(other)} bytes with digest {got} for blob {r2}" in status["message"]
        assert (state / "bundles" / "pyagent" / "last-good-bundle.tar.gz").read_bytes() == (
            builds.wasm["r1"].read_bytes()
        )

        proxy.swap[r2] = builds.wasm["r2"].read_bytes() + b"\0" * (limit - size + 8192)  # over the limit
        assert run_agent("--once", "--config", str(config)).returncode == 0
        status = bundle_status(state)
        assert status["active_revision"] == "r1" and status["refusals"][-1]["kind"] == "digest-mismatch"
        assert f"the blob is longer than the {size} bytes the manifest says" in status["message"]

        del proxy.swap[r2]
        proxy.redirect_blobs_to = registry.url  # the same registry, but another origin than the service's
        assert run_agent("--once", "--config", str(config)).returncode == 0
        status = bundle_status(state)
        assert (status["active_revision"], status["code"]) == ("r2", None)
        assert registry.blob_gets(r2) == 3  # the lie, the oversize one, and the one fetched where it was sent


@pytest.mark.timeout(120)
def test_a_registry_token_is_fetched_from_the_services_own_origin_only(
    tmp_path: Path, builds: Builds
) -> None:
    """The registry token protocol: a 401 ``Bearer realm=...`` challenge, the realm asked with the
    configured credentials, the issued token sent to the registry; a realm on another origin is refused
    and never sees the configured token."""
    oras = require_oras()
    state = tmp_path / "state"
    token = tmp_path / "registry.token"
    token.write_text("s3cret-registry-token\n")
    with run_registry(tmp_path) as registry, lying_proxy(registry.url) as proxy:
        push(registry, oras, builds.wasm["r1"])
        proxy.issue_token = "issued-token"
        proxy.token_realm = f"{registry.url}/token"  # another origin: the registry itself
        config = oci_config(tmp_path / "agent.toml", state=state, url=proxy.url, token=token,
                            reference=f"{registry.host}/{REPOSITORY}:stable",
                            public_key=builds.public_key)  # fmt: skip
        assert run_agent("--once", "--config", str(config)).returncode == 3
        status = bundle_status(state)
        assert status["active_revision"] is None and status["code"] == "bundle_error"
        refusal = (f"the registry asks for a token from '{registry.url}/token', not on the service's origin "
                   f"({proxy.url}); the service's credentials are not sent there")  # fmt: skip
        assert refusal in status["message"]
        assert not [path for _, path, _ in registry.requests() if path.startswith("/token")]

        proxy.token_realm = None  # the proxy's own /token
        proxy.seen.clear()
        assert run_agent("--once", "--config", str(config)).returncode == 0
        status = bundle_status(state)
        assert (status["active_revision"], status["code"]) == ("r1", None)
        manifest = f"/v2/{REPOSITORY}/manifests/stable"
        assert [(path, auth) for path, auth in proxy.seen if not path.startswith("/v2/")] == [
            ("/token?service=registry.test&scope=repository%3Ax%3Apull", REGISTRY_AUTH)
        ]
        assert proxy.seen[0] == (manifest, REGISTRY_AUTH)  # answered with the challenge
        after = proxy.seen[2:]
        blob = f"/v2/{REPOSITORY}/blobs/{layer_digest(builds.wasm['r1'])}"
        assert [path for path, _ in after] == [manifest, blob]
        assert all(auth == "Bearer issued-token" for _, auth in after)

    # no credentials configured: a token service on another origin (Docker Hub's) is asked anonymously,
    # as OPA asks it, and the token it issues goes to the registry only
    with run_registry(tmp_path / "anonymous") as registry, lying_proxy(registry.url) as proxy, \
            lying_proxy(registry.url) as token_service:  # fmt: skip
        push(registry, oras, builds.wasm["r1"])
        proxy.issue_token = token_service.issue_token = "anonymous-token"
        proxy.token_realm = f"{token_service.url}/token"
        config = oci_config(tmp_path / "anonymous.toml", state=tmp_path / "anonymous-state", url=proxy.url,
                            reference=f"{registry.host}/{REPOSITORY}:stable",
                            public_key=builds.public_key)  # fmt: skip
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert bundle_status(tmp_path / "anonymous-state")["active_revision"] == "r1"
        assert token_service.seen == [("/token?service=registry.test&scope=repository%3Ax%3Apull", None)]
        assert [auth for _, auth in proxy.seen] == [None, "Bearer anonymous-token", "Bearer anonymous-token"]


@pytest.mark.timeout(120)
def test_a_bundle_layer_over_size_limit_bytes_is_refused_before_it_is_fetched(
    tmp_path: Path, builds: Builds
) -> None:
    oras = require_oras()
    state = tmp_path / "state"
    with run_registry(tmp_path) as registry:
        push(registry, oras, builds.wasm["r1"])
        config = oci_config(tmp_path / "agent.toml", state=state, url=registry.url, size_limit=4096,
                            reference=f"{registry.host}/{REPOSITORY}:stable",
                            public_key=builds.public_key)  # fmt: skip
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 3, done.stderr  # no bundle was ever active: no decision
        size = builds.wasm["r1"].stat().st_size
        status = bundle_status(state)
        assert status["active_revision"] is None
        assert status["refusals"][-1]["kind"] == "unreadable"
        assert f"the bundle layer is {size} bytes, over the limit of 4096" in status["message"]
        assert registry.blob_gets(layer_digest(builds.wasm["r1"])) == 0
        assert not list((state / "bundles" / "pyagent").glob(".download-*"))


@pytest.mark.timeout(180)
def test_a_real_opa_pulls_the_same_registry_with_the_same_tables(
    tmp_path: Path, builds: Builds, opa_bin: str
) -> None:
    """Interop: ``opa run`` with ``type: oci`` takes the signed rego bundle that oras pushed."""
    oras = require_oras()
    with run_registry(tmp_path) as registry:
        push(registry, oras, builds.rego["r1"], tag="rego")
        reference = f"{registry.host}/{REPOSITORY}:rego"
        config = {
            "services": {"registry": {"url": registry.url, "type": "oci"}},
            "bundles": {"pyagent": {"service": "registry", "resource": reference,
                                    "polling": {"min_delay_seconds": 1, "max_delay_seconds": 2},
                                    "signing": {"keyid": "signer"}}},
            "keys": {"signer": {"key": builds.public_key.read_text(), "algorithm": "RS256"}},
        }  # fmt: skip
        (tmp_path / "opa.yaml").write_text(json.dumps(config))
        assert opa_tables(config, "opa.yaml").services["registry"].oci  # the agent reads the same tables
        port = free_port()
        log = tmp_path / "opa.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [opa_bin, "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "debug",
                 "-c", str(tmp_path / "opa.yaml")],
                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/v1/data/system/bundles/pyagent/manifest/revision"
            assert wait_for("opa on r1", lambda: _opa_revision(url) == "r1", 30, log)
            push(registry, oras, builds.rego["r2"], tag="rego")
            assert wait_for("opa on r2", lambda: _opa_revision(url) == "r2", 30, log)
            time.sleep(0.2)
            example = REPO / "examples" / "reports" / "eu-commission-personal-enrolled-tiktok.json"
            report = json.loads(example.read_text())
            body = json.dumps({"input": {"at": "2023-03-16T09:30:00Z", "report": report}}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/data/pyagent/decision?provenance=true", data=body, method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
            result = answer["result"]  # r2 decides, and says so
            rules = [v["rule"] for v in result["violations"]]
            assert (rules, result["allow"]) == (["eu-commission/tiktok"], False)
            assert answer["provenance"]["bundles"]["pyagent"] == {"revision": "r2"}
        finally:
            process.terminate()
            process.wait(timeout=10)


def _get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def _opa_revision(url: str) -> str | None:
    result = _get(url).get("result")
    return result if isinstance(result, str) else None


# -- the configuration ---------------------------------------------------------------------------------


def test_references_are_read_as_opa_reads_them() -> None:
    digest = "sha256:" + "a" * 64
    ref = parse_reference("127.0.0.1:5000/policies/pyagent:stable", what="r")
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (
        "127.0.0.1:5000",
        "policies/pyagent",
        "stable",
        None,
    )
    ref = parse_reference(f"ghcr.io/org/repo@{digest}", what="r")
    assert (ref.host, ref.repository, ref.tag, ref.digest, ref.version) == (
        "ghcr.io",
        "org/repo",
        None,
        digest,
        digest,
    )
    ref = parse_reference(f"ghcr.io/org/repo:1.0@{digest}", what="r")
    assert (ref.tag, ref.version) == ("1.0", digest)
    for bad, why in [
        ("ghcr.io/org/repo", "names no tag and no digest"),
        ("repo:tag", "is not an OCI reference"),
        ("ghcr.io/Org/repo:1", "'Org/repo' is not a valid repository name"),
        ("ghcr.io/org/repo:-x", "'-x' is not a valid tag"),
        ("ghcr.io/org/repo@sha256:abc", "the digest must be sha256:<64 hex digits>"),
        ("ghcr.io/org/repo@md5:" + "a" * 32, "the digest must be sha256:<64 hex digits>"),
    ]:
        with pytest.raises(InvalidInputError, match="resource x") as err:
            parse_reference(bad, what="resource x")
        assert why in str(err.value), (bad, str(err.value))


def test_oci_services_in_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    service = {"url": "https://registry.example.com", "type": "oci"}
    bundle = {"service": "registry", "resource": "registry.example.com/policies/pyagent:1"}
    tables = opa_tables({"services": {"registry": service}, "bundles": {"pyagent": bundle}}, "c.yaml")
    assert tables.services["registry"].oci and tables.bundles["pyagent"].resource == bundle["resource"]
    http_only = opa_tables({"services": {"s": {"url": "http://h"}}}, "c.yaml")
    assert not http_only.services["s"].oci

    def refused(document: dict[str, Any]) -> str:
        with pytest.raises(InvalidInputError) as err:
            opa_tables(document, "c.yaml")
        return str(err.value)

    assert refused({"services": {"registry": service | {"type": "s3"}}}) == (
        'services.registry.type in c.yaml must be "oci" (an OCI registry) or absent (an HTTP service), '
        "got 's3'"
    )
    assert refused({"services": {"registry": service}, "bundles": {"pyagent": {"service": "registry"}}}) == (
        "bundles.pyagent.resource in c.yaml is required for an OCI registry: a reference such as "
        "registry.example.com/policies/pyagent:TAG"
    )
    assert refused(  # the default resource of an HTTP service is no reference
        {"services": {"registry": service}, "bundles": {"pyagent": bundle | {"resource": "bundles/x/wasm"}}}
    ) == (
        "bundles.pyagent.resource in c.yaml: 'bundles/x/wasm' names no tag and no digest "
        "(as OPA, one is required)"
    )
    long_poll = bundle | {"polling": {"long_polling_timeout_seconds": 30}}
    tables = opa_tables({"services": {"registry": service}, "bundles": {"pyagent": long_poll}}, "lp.yaml")
    assert tables.bundles["pyagent"].polling.long_polling_timeout is None  # as OPA: ignored, and said so
    assert capsys.readouterr().err == (
        "pyagent: lp.yaml: bundles.pyagent.polling.long_polling_timeout_seconds is not used with an OCI "
        "registry, which does not long poll; ignored\n"
    )
    assert refused({"services": {"registry": service}, "decision_logs": {"service": "registry"}}) == (
        "decision_logs.service in c.yaml: service 'registry' is an OCI registry (type = \"oci\"), "
        "which serves bundles only"
    )
    assert "serves bundles only" in refused({"services": {"registry": service}, "status": {}})
