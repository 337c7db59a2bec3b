"""The `opa` engine under faults, with real OPA processes: retries with backoff on connection errors,
5xx, resets and cut bodies; a total deadline; SIGKILL and SIGSTOP; a bundle not yet active; and the
opt-in fallback to the embedded engine with its policy-age limit. Never allow without a decision."""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyagent.decide import decide
from pyagent.engines.base import EngineError, EngineSettings
from pyagent.engines.select import build_engine
from pyagent.errors import NoDecisionError
from tests.helpers import domain
from tests.helpers.fault_proxy import ProxyFault, fault_proxy
from tests.helpers.opa_server import RunningOpa, free_port, run_opa_server

AT = "2023-03-16T09:30:00Z"
TIKTOK_PHONE = domain.make_report("eu-commission", "android", "corporate", True, ["com.zhiliaoapp.musically"])


@pytest.fixture
def own_opa(opa_bin: str, tmp_path: Path) -> Iterator[RunningOpa]:
    """A server of this test's own, which it may kill or pause."""
    with run_opa_server(opa_bin, tmp_path) as server:
        yield server
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)


def opa_settings(url: str, **overrides: object) -> EngineSettings:
    """Bounds generous for a loaded machine where the test needs an answer (a slow hop must not add a
    retry to the exact counts asserted); the tests about timeouts give their own short ones."""
    base: dict[str, object] = {
        "engine": "opa",
        "opa_url": url,
        "opa_timeout": 2.0,
        "opa_deadline": 20.0,
        "opa_retries": 3,
    }
    return EngineSettings(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "faults",
    [
        [ProxyFault("status", 500), ProxyFault("status", 502)],
        [ProxyFault("status", 504), ProxyFault("status", 503), ProxyFault("status", 500)],
        [ProxyFault("reset")],
        [ProxyFault("truncate")],
        [ProxyFault("delay", delay=3.0)],  # past the 2 s timeout
    ],
    ids=["500-502", "504-503-500", "reset", "truncated-body", "slow"],
)
def test_transient_faults_are_retried_until_the_real_decision(
    opa_server: RunningOpa, faults: list[ProxyFault]
) -> None:
    with fault_proxy(opa_server.url, faults) as proxy, build_engine(opa_settings(proxy.url)) as engine:
        decision = decide(engine, TIKTOK_PHONE, at=AT)
        assert [v["rule"] for v in decision["violations"]] == ["eu-commission/tiktok"]
        assert decision["allow"] is False
        assert proxy.requests == len(faults) + 1
        assert engine.retried == len(faults)  # type: ignore[attr-defined]


def test_retries_are_bounded(opa_server: RunningOpa) -> None:
    faults = [ProxyFault("status", 502)] * 10
    with (
        fault_proxy(opa_server.url, faults) as proxy,
        build_engine(opa_settings(proxy.url, opa_retries=2)) as engine,
    ):
        with pytest.raises(EngineError, match=r"HTTP 502 \(gave up after 3 attempts"):
            engine.evaluate({"at": AT, "report": TIKTOK_PHONE})
        assert proxy.requests == 3


def test_4xx_is_not_retried(opa_server: RunningOpa) -> None:
    with (
        fault_proxy(opa_server.url, [ProxyFault("status", 403)]) as proxy,
        build_engine(opa_settings(proxy.url)) as engine,
    ):
        with pytest.raises(EngineError, match="HTTP 403"):
            engine.evaluate({"at": AT, "report": TIKTOK_PHONE})
        assert proxy.requests == 1


def test_total_deadline_bounds_slow_retries(opa_server: RunningOpa) -> None:
    faults = [ProxyFault("delay", delay=0.8)] * 20
    with (
        fault_proxy(opa_server.url, faults) as proxy,
        build_engine(opa_settings(proxy.url, opa_timeout=0.3, opa_deadline=1.5, opa_retries=10)) as engine,
    ):
        started = time.monotonic()
        with pytest.raises(EngineError, match=r"deadline 1\.5 s"):
            engine.evaluate({"at": AT, "report": TIKTOK_PHONE})
        assert time.monotonic() - started < 1.5 + 1.5  # the deadline, plus slack for a loaded machine


def _verdict(decision: dict[str, Any]) -> tuple[bool, list[str], list[Any]]:
    """allow, the rules broken, and the policy's errors: a decision, not an error that denies."""
    return decision["allow"], [v["rule"] for v in decision["violations"]], decision["errors"]


def test_opa_killed_mid_run_gives_no_decision(own_opa: RunningOpa) -> None:
    with build_engine(opa_settings(own_opa.url, opa_retries=2, opa_deadline=2.0)) as engine:
        assert _verdict(decide(engine, TIKTOK_PHONE, at=AT)) == (False, ["eu-commission/tiktok"], [])
        own_opa.process.send_signal(signal.SIGKILL)
        own_opa.process.wait(timeout=5)
        with pytest.raises(EngineError, match="cannot connect"):
            decide(engine, TIKTOK_PHONE, at=AT)


def test_opa_paused_gives_no_decision_within_the_deadline(own_opa: RunningOpa) -> None:
    with build_engine(opa_settings(own_opa.url, opa_retries=1, opa_timeout=0.4, opa_deadline=1.5)) as engine:
        os.kill(own_opa.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(EngineError, match="no answer within"):
                decide(engine, TIKTOK_PHONE, at=AT)
        finally:
            os.kill(own_opa.process.pid, signal.SIGCONT)
    with build_engine(opa_settings(own_opa.url)) as resumed:  # (a resumed OPA may take a moment)
        assert _verdict(decide(resumed, TIKTOK_PHONE, at=AT)) == (False, ["eu-commission/tiktok"], [])


def test_bundle_not_yet_active_gives_no_decision(opa_bin: str, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "services": {"bundles": {"url": f"http://127.0.0.1:{free_port()}"}},
                "bundles": {"pyagent": {"service": "bundles", "resource": "bundle.tar.gz"}},
            }
        )
    )
    with run_opa_server(opa_bin, tmp_path, paths=[], extra_args=["--config-file", str(config)]) as server:
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(f"{server.url}/health?bundles", timeout=2)
        assert health.value.code == 500
        with (
            build_engine(opa_settings(server.url)) as engine,
            pytest.raises(EngineError, match=r"no result for data\.pyagent\.decision"),
        ):
            engine.evaluate({"at": AT, "report": TIKTOK_PHONE})


def test_fallback_to_embedded_when_opa_is_down(own_opa: RunningOpa, policy_bundle: Path) -> None:
    settings = opa_settings(
        own_opa.url,
        opa_retries=1,
        opa_deadline=5.0,
        fallback_embedded=True,
        bundle=str(policy_bundle),
        max_policy_age=3600.0,
    )
    with build_engine(settings) as engine:
        first = decide(engine, TIKTOK_PHONE, at=AT)
        assert (first["engine"], "fallback_reason" in first) == ("opa", False)
        own_opa.process.send_signal(signal.SIGKILL)
        own_opa.process.wait(timeout=5)
        second = decide(engine, TIKTOK_PHONE, at=AT)
    assert second["engine"] == "embedded"
    assert "cannot connect" in second["fallback_reason"]
    assert [v["rule"] for v in second["violations"]] == ["eu-commission/tiktok"]
    assert second["allow"] is False


def _with_built_at(bundle: Path, out: Path, built_at: str) -> Path:
    """``bundle`` with ``built_at`` (JSON text, so NaN can be written) in its manifest's metadata."""
    with tarfile.open(bundle, "r:gz") as source, tarfile.open(out, "w:gz") as target:
        for member in source:
            content = source.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
            if member.name.lstrip("/") == ".manifest":
                manifest = json.loads(content)
                text = (
                    json.dumps(manifest)[:-1] + ', "metadata": {"pyagent": {"built_at": ' + built_at + "}}}"
                )
                content = text.encode()
                member.size = len(content)
            target.addfile(member, io.BytesIO(content))
    return out


@pytest.mark.parametrize(
    ("built_at", "refusal"),
    [
        (None, r"is \d+ s old, over --max-policy-age 86400 s: failing closed$"),  # the file's date
        # (no JSON, as OPA reads it: the manifest itself is refused, before its age is asked)
        ("NaN", r"\.manifest: invalid JSON: NaN is not a JSON number$"),
        ("Infinity", r"\.manifest: invalid JSON: Infinity is not a JSON number$"),
        ("99999999999", r"built_at is \d+ s ahead of this clock: its age is unknown, failing closed$"),
    ],
    ids=["week-old", "NaN", "infinity", "future"],
)
def test_opa_down_and_a_bundle_too_old_or_claiming_freshness_gives_no_decision(
    own_opa: RunningOpa, policy_bundle: Path, tmp_path: Path, built_at: str | None, refusal: str
) -> None:
    """A week-old bundle, or one whose manifest would keep it young for ever (``age > limit`` never
    holds for NaN or a negative age), fails closed with OPA down."""
    crafted = tmp_path / "crafted.tar.gz"
    if built_at is None:
        crafted.write_bytes(policy_bundle.read_bytes())
    else:
        _with_built_at(policy_bundle, crafted, built_at)
    week_ago = time.time() - 7 * 86400
    os.utime(crafted, (week_ago, week_ago))
    settings = opa_settings(
        own_opa.url,
        opa_retries=0,
        opa_deadline=1.0,
        fallback_embedded=True,
        bundle=str(crafted),
        max_policy_age=86400.0,
    )
    own_opa.process.send_signal(signal.SIGKILL)
    own_opa.process.wait(timeout=5)
    with build_engine(settings) as engine, pytest.raises(NoDecisionError, match=refusal):
        decide(engine, TIKTOK_PHONE, at=AT)
