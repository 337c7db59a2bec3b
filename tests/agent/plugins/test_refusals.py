"""Bundles served by a plain nginx: a tampered, an unsigned and a replayed (older) bundle are each
refused with their reason; the agent keeps deciding with the last good one, and the refusal is in its
status (``agent status``) and in the server's view of the device."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyagent.agent.plugins.bundle import bundle_limits
from pyagent.engines.wasm.bundle import DEFAULT_LIMITS, BundleLimits
from tests.agent.conftest import run_pyagent
from tests.agent.plugins.conftest import (
    Builds,
    agent_config,
    bundle_status,
    control_plane,
    run_agent,
    serve,
    spool_bodies,
    started_plugin,
)
from tests.helpers.fault_server import Fault, fault_server
from tests.helpers.nginx import run_nginx


@pytest.mark.timeout(120)
def test_tampered_unsigned_and_replayed_bundles_are_refused(tmp_path: Path, builds: Builds) -> None:
    state, root = tmp_path / "state", tmp_path / "www"
    serve(root, builds.wasm["r2"], mtime=1_700_000_000)
    with control_plane(tmp_path) as plane, run_nginx(tmp_path, static_root=root) as nginx:
        plane.publish(builds.rego["r1"], builds.wasm["r1"])  # the server knows bundle "pyagent"
        config = agent_config(
            tmp_path / "agent.toml",
            state_dir=state,
            server_url=plane.server.url,
            token=plane.agent_token,
            bundle_url=nginx.url,
            public_key=builds.public_key,
        )
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert bundle_status(state)["active_revision"] == "r2"
        good = (state / "bundles" / "pyagent" / "last-good-bundle.tar.gz").read_bytes()

        digest = "[0-9a-f]{16}[.][.][.]"  # (a file's SHA-256, shortened)
        cases = [
            (builds.tampered, "tampered", rf"data\.json: digest mismatch \(signed {digest}, got {digest}\)"),
            (builds.unsigned, "unsigned", re.escape(
                "no /.signatures.json, and a verification key is configured: unsigned bundles are refused")),
            (builds.wasm["r1"], "rollback", re.escape(
                "build serial 1 is older than the last accepted 2 (revision r2): "
                "replay of an old bundle refused")),
        ]  # fmt: skip
        label = f"bundle pyagent ({nginx.url}/bundles/pyagent.tar.gz)"
        for index, (bundle, kind, reason) in enumerate(cases, start=1):
            serve(root, bundle, mtime=1_700_000_000 + index)
            done = run_agent("--once", "--config", str(config))
            assert done.returncode == 0, done.stderr  # decided, with the last good bundle
            assert (
                f"bundle pyagent: refused, the active bundle stays: bundle pyagent ({nginx.url}"
                in done.stderr
            )
            status = bundle_status(state)
            assert (status["active_revision"], status["active_serial"]) == ("r2", 2)
            assert status["code"] == "bundle_error"
            assert re.fullmatch(rf"{re.escape(label)}: rejected \({kind}\): {reason}", status["message"])
            assert [r["kind"] for r in status["refusals"]] == [c[1] for c in cases[:index]]
            assert (state / "bundles" / "pyagent" / "last-good-bundle.tar.gz").read_bytes() == good
            assert spool_bodies(state)[-1]["bundles"] == {"pyagent": {"revision": "r2"}}

            device = plane.device()
            assert device is not None and device["bundles"] == {"pyagent": {"revision": "r2"}}
            errors = device["status"]["errors"]
            assert errors == [
                {
                    "bundle": "pyagent",
                    "code": "bundle_error",
                    "message": status["message"],
                    "errors": [{"code": "bundle_error", "message": status["message"]}],
                },
            ]  # fmt: skip  (the plug-in stays OK, as OPA's: no second entry for the same refusal)
            assert device["status"]["bundles"]["pyagent"]["active_revision"] == "r2"

            shown = json.loads(
                run_pyagent("agent", "status", "--config", str(config), "--format", "json").stdout
            )
            assert shown["bundles"][0]["active_revision"] == "r2"
            assert shown["bundles"][0]["last_refusal"]["kind"] == kind
            assert shown["bundles"][0]["last_refusal"]["reason"] == status["message"]
        text = run_pyagent("agent", "status", "--config", str(config))
        assert "bundle pyagent: r2 (activated" in text.stderr
        assert "last refusal: " in text.stderr and "rollback: bundle pyagent" in text.stderr

        serve(root, builds.wasm["r3"], mtime=1_700_000_100)  # a good, newer bundle: errors clear
        assert run_agent("--once", "--config", str(config)).returncode == 0
        status = bundle_status(state)
        assert (status["active_revision"], status["code"], status["message"]) == ("r3", None, None)
        device = plane.device()
        assert device is not None and device["status"]["errors"] == []
        assert device["bundles"] == {"pyagent": {"revision": "r3"}}


def test_a_bundle_over_size_limit_bytes_is_refused_while_streaming(tmp_path: Path, builds: Builds) -> None:
    state, root = tmp_path / "state", tmp_path / "www"
    serve(root, builds.wasm["r1"], mtime=1_700_000_000)
    with control_plane(tmp_path) as plane, run_nginx(tmp_path, static_root=root) as nginx:
        config = plane.agent_with_r1(tmp_path, builds, state, bundle_url=nginx.url)
        text = config.read_text().replace("persist = true", "persist = true\nsize_limit_bytes = 4096")
        config.write_text(text)
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 3, done.stderr  # no bundle was ever active: no decision
        size = builds.wasm["r1"].stat().st_size
        status = bundle_status(state)
        assert status["active_revision"] is None
        assert f"the answer is {size} bytes, over the limit of 4096" in status["message"]
        assert "no active policy bundle: bundle pyagent: " in spool_bodies(state)[0]["error"]
        assert not list((state / "bundles" / "pyagent").glob(".download-*"))


@pytest.mark.timeout(120)
def test_keys_without_a_signing_block_verify_a_signature_when_there_is_one(
    tmp_path: Path, builds: Builds
) -> None:
    """As OPA (``WithOptionalSignature``): ``[keys]`` but no ``signing``: a signed bundle is verified
    (a tampered one refused, the serial kept), an unsigned one is taken."""
    state, root = tmp_path / "state", tmp_path / "www"
    with control_plane(tmp_path) as plane, run_nginx(tmp_path, static_root=root) as nginx:
        plane.publish(builds.rego["r1"], builds.wasm["r1"])
        config = agent_config(
            tmp_path / "agent.toml", state_dir=state, server_url=plane.server.url, token=plane.agent_token,
            bundle_url=nginx.url, public_key=builds.public_key, signing=False,
        )  # fmt: skip
        serve(root, builds.tampered, mtime=1_700_000_000)
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 3, done.stderr  # no bundle could be activated: no decision
        status = bundle_status(state)
        assert status["active_revision"] is None and "data.json: digest mismatch" in status["message"]
        assert status["last_successful_download"] is None  # a refused bundle is no successful download

        serve(root, builds.wasm["r2"], mtime=1_700_000_001)
        assert run_agent("--once", "--config", str(config)).returncode == 0
        status = bundle_status(state)
        assert (status["active_revision"], status["active_serial"]) == ("r2", 2)
        assert (
            status["last_successful_download"] == status["last_successful_request"] == status["last_request"]
        )

        serve(root, builds.unsigned, mtime=1_700_000_002)
        assert run_agent("--once", "--config", str(config)).returncode == 0
        assert (bundle_status(state)["active_revision"], bundle_status(state)["active_serial"]) == (
            "u9",
            None,
        )


@contextlib.contextmanager
def r2_persisted(tmp_path: Path, builds: Builds) -> Iterator[tuple[Path, Path, Any]]:
    """(state dir, config, nginx) of an agent that ran once and keeps r2 (serial 2), served by nginx."""
    state, root = tmp_path / "state", tmp_path / "www"
    serve(root, builds.wasm["r2"], mtime=1_700_000_000)
    with control_plane(tmp_path) as plane, run_nginx(tmp_path, static_root=root) as nginx:
        plane.publish(builds.rego["r1"], builds.wasm["r1"])
        config = agent_config(
            tmp_path / "agent.toml", state_dir=state, server_url=plane.server.url, token=plane.agent_token,
            bundle_url=nginx.url, public_key=builds.public_key,
        )  # fmt: skip
        assert run_agent("--once", "--config", str(config)).returncode == 0
        yield state, config, nginx


@pytest.mark.timeout(120)
def test_a_corrupted_persisted_bundle_is_downloaded_afresh(tmp_path: Path, builds: Builds) -> None:
    """The active bundle on disk no longer loads: the agent must not keep asking with its ETag (a 304
    forever) but download it again, as OPA does, in the run that needs it (a one-off run asked with the
    ETag first, got its 304, then found the file cut: no decision, exit 3, though the server had it)."""
    with r2_persisted(tmp_path, builds) as (state, config, nginx):
        active = state / "bundles" / "pyagent" / "last-good-bundle.tar.gz"
        good = active.read_bytes()
        active.write_bytes(good[: len(good) // 2])  # cut on disk; nginx still has it, ETag unchanged
        again = run_agent("--once", "--config", str(config))
        assert again.returncode == 0, again.stderr
        assert active.read_bytes() == good and bundle_status(state)["active_revision"] == "r2"
        assert "pyagent: agent: bundle pyagent: the active bundle does not load: bundle " in again.stderr
        asked = (nginx.conf_path.parent / "access.log").read_text().splitlines()
        assert asked == ["GET /bundles/pyagent.tar.gz HTTP/1.1 200 -"] * 2  # afresh: no If-None-Match
        assert run_agent("--once", "--config", str(config)).returncode == 0  # and it loads from disk
        overlay = tmp_path / "overlay.json"
        overlay.write_text('{"pyagent": {"bans": {"tiktok": {"apps": "every one"}}}}')
        conflict = run_agent("--once", "--config", str(config), "--data", str(overlay))
        assert conflict.returncode == 2  # recorded as the run's result (the preload left it to the run)
        assert f"pyagent: agent: seq 4 recorded: invalid: {overlay}:1: merge conflict at" in conflict.stderr


@pytest.mark.timeout(120)
def test_an_older_bundle_put_in_place_of_the_persisted_one_is_a_refusal_in_the_status(
    tmp_path: Path, builds: Builds
) -> None:
    """The run refused it (rollback), but only its stderr said so: the status kept no refusal, and the
    error the next download left was all ``agent status`` showed (agent audit)."""
    with r2_persisted(tmp_path, builds) as (state, config, _):
        active = state / "bundles" / "pyagent" / "last-good-bundle.tar.gz"
        active.write_bytes(builds.wasm["r1"].read_bytes())  # serial 1 where serial 2 was accepted
        again = run_agent("--once", "--config", str(config))
        assert again.returncode == 0, again.stderr  # r2 downloaded afresh
        status = bundle_status(state)
    assert status["active_revision"] == "r2"
    [refusal] = status["refusals"]
    assert (refusal["kind"], refusal["reason"]) == ("rollback", (
        f"bundle {active}: rejected (rollback): build serial 1 is older than the last accepted 2 (revision "
        "r2): replay of an old bundle refused"
    ))  # fmt: skip
    shown = run_pyagent("agent", "status", "--config", str(config))
    assert f"  last refusal: {refusal['at']} rollback: {refusal['reason']}\n" in shown.stderr


@pytest.mark.timeout(120)
def test_a_corrupt_bundle_state_file_is_in_the_status_not_only_in_the_runs(
    tmp_path: Path, builds: Builds
) -> None:
    """Every run was no decision ("bundle state ... corrupt"), while ``agent status`` showed the bundle
    active and no error (agent audit)."""
    with r2_persisted(tmp_path, builds) as (state, config, _):
        kept = state / "bundles" / "pyagent" / "bundle-state.json"
        kept.write_text("{not json")
        again = run_agent("--once", "--config", str(config))
        shown = run_pyagent("agent", "status", "--config", str(config))
    assert again.returncode == 3, again.stderr
    lines = shown.stderr.splitlines()
    # kept active: the bundle is whole, and the state file may be restored
    assert lines[0].startswith("bundle pyagent: r2 (activated ")
    assert lines[1] == (
        f"  last attempt failed: the active bundle cannot be loaded: bundle state {kept}: corrupt (Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1)); refusing to guess the last "
        "serial (restore it, or remove it deliberately to trust the next bundle)"
    )


def test_size_limit_bytes_bounds_each_file_decompressed_as_in_opa(tmp_path: Path, builds: Builds) -> None:
    """OPA reads ``size_limit_bytes`` as a limit per file: a download under it whose policy.wasm is
    over it once decompressed is refused (the real OPA refuses it with the same config)."""
    raw = builds.unsigned.read_bytes()
    with tarfile.open(builds.unsigned, "r:gz") as archive:
        wasm_size = archive.getmember("/policy.wasm").size
    limit = (len(raw) + wasm_size) // 2
    assert len(raw) < limit < wasm_size
    answer = Fault(body=raw, content_type="application/gzip", headers=(("ETag", '"u9"'),))
    with fault_server(answer) as url:
        plugin = started_plugin(url, tmp_path, size_limit_bytes=limit)
        plugin.step(wait=False)
    assert plugin.active_path() is None
    [refusal] = plugin.status.refusals
    assert refusal["kind"] == "unreadable"
    assert refusal["reason"].endswith(f"member policy.wasm: {wasm_size} bytes, over {limit}")


def test_a_download_is_bounded_by_what_the_engine_reads_whatever_size_limit_bytes_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``size_limit_bytes`` at OPA's 1 GiB, a junk layer of 400 MB was read whole into memory
    before its first tar header was checked, and a valid bundle over the engine's own bound on an
    archive activated, then was refused when read again after a restart. The download now streams no
    further than that bound (here made 4 KiB)."""
    assert bundle_limits(1 << 30).max_archive_bytes == DEFAULT_LIMITS.max_archive_bytes == 64 << 20
    monkeypatch.setattr("pyagent.agent.plugins.bundle.DEFAULT_LIMITS", BundleLimits(max_archive_bytes=4096))
    junk = gzip.compress(os.urandom(6000), compresslevel=0)
    answer = Fault(body=junk, content_type="application/gzip", headers=(("ETag", '"junk"'),))
    with fault_server(answer) as url:
        plugin = started_plugin(url, tmp_path, size_limit_bytes=1 << 30)
        plugin.step(wait=False)
    assert plugin.active_path() is None
    [refusal] = plugin.status.refusals
    said = f"GET {url}/bundles/pyagent: the answer is {len(junk)} bytes, over the limit of 4096"
    assert (refusal["kind"], refusal["reason"]) == ("unreadable", said)


def test_the_download_s_time_is_that_of_what_it_may_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With size_limit_bytes at 1 GiB the deadline was a 1 GiB body's at the slowest rate (68 min),
    for a download that stops at 64 MiB (4 min)."""
    asked: list[int] = []

    def deadline(header_timeout: float, long_poll: int | None, size_limit: int) -> float:
        asked.append(size_limit)
        return 5.0

    monkeypatch.setattr("pyagent.agent.plugins.bundle.download_deadline", deadline)
    with fault_server(Fault(status=404, body=b"no")) as url:
        started_plugin(url, tmp_path, size_limit_bytes=1 << 30).step(wait=False)
    assert asked == [64 << 20]


def test_an_answer_cut_in_its_headers_is_a_failed_download_not_a_refused_bundle(tmp_path: Path) -> None:
    """A soak audit found it counted as a refusal ("not a readable tar.gz: empty file"): a false alarm
    of a bad bundle, where the service's answer was cut short."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b'HTTP/1.1 200 OK\r\nserver: x\r\netag: "5a30"\r\ncache-con')
        connection.close()

    threading.Thread(target=answer, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        plugin = started_plugin(url, tmp_path)
        plugin.step(wait=False)
    finally:
        listener.close()
    assert (plugin.active_path(), plugin.status.refusals) == (None, [])
    assert (plugin.status.code, plugin.status.message) == (
        "bundle_error", f"GET {url}/bundles/pyagent: HTTP 200 with no body (cut short)"
    )  # fmt: skip


@pytest.mark.timeout(60)
def test_a_signed_bundle_with_no_key_configured_is_refused_as_opa_refuses_it(
    tmp_path: Path, builds: Builds, opa_bin: str
) -> None:
    """With no [keys], an unsigned bundle is taken (as OPA takes it) and a signed one is refused: its
    signature could not be checked, and an OPA with the same config refuses it too. Before, the agent
    activated it, and `agent status` showed it as if nothing were wrong."""
    import subprocess

    from pyagent.bundles.errors import NO_KEY_CONFIGURED

    opa = subprocess.run(
        [opa_bin, "run", "--server", "--addr", "127.0.0.1:0", "--bundle", str(builds.rego["r1"])],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (opa.returncode, opa.stdout + opa.stderr) == (
        1, f"error: load error: bundle {builds.rego['r1']}: verification key not provided\n"
    )  # fmt: skip
    root = tmp_path / "www"
    with run_nginx(tmp_path, static_root=root) as nginx:
        served = root / "bundles" / "pyagent"
        served.parent.mkdir(parents=True)
        served.write_bytes(builds.wasm["r1"].read_bytes())
        plugin = started_plugin(nginx.url, tmp_path / "state")
        plugin.step(wait=False)
        assert (plugin.active_path(), plugin.status.active_revision) == (None, None)
        [refusal] = plugin.status.refusals
        said = f"bundle pyagent ({nginx.url}/bundles/pyagent): rejected (unverifiable): {NO_KEY_CONFIGURED}"
        assert (refusal["kind"], plugin.status.message) == ("unverifiable", said)
        served.write_bytes(builds.unsigned.read_bytes())
        os.utime(served, (1_700_000_000, 1_700_000_000))  # (nginx's ETag: mtime and size)
        plugin.step(wait=False)
        assert (plugin.status.active_revision, plugin.status.code) == ("u9", None)
