"""The whole loop, end to end, with real processes only (issue 13, the first "Must show").

``pyagent server run`` (verifying publishes with ``[server.verification] key_path``), a long-running
``pyagent agent run`` and the pinned ``opa run --server -c config.yaml``, both configured with OPA's
tables (``services``, ``bundles``, ``keys`` with the same public key, ``decision_logs``, ``status``,
``labels``), on the same signed policy built by :func:`pyagent.bundles.build.build_signed_bundle`:

1. publish r1 (the rego and the wasm build, signed) over ``PUT /api/v1/bundles/pyagent`` → the agent and
   the OPA are both active on r1, as they see it and as the server sees it, and decide alike;
   publish r2 → both are on r2 within 5 s of the publish, through their long polls (their plain
   polling delays are 20-30 s);
2. the agent pulls its bundle from a plain nginx (logs and status still go to the server: two
   services) that serves a tampered, an unsigned and a replayed (older serial) bundle in turn → the
   agent stays on r2 and decides with it, and the server's view of the device shows each refusal
   with its reason;
3. the server is SIGKILLed while the agent decides, then restarted on the same database and port →
   the decisions made meanwhile are uploaded;
4. the agent is SIGKILLed in the middle of downloading a huge bundle that a tiny server in this test
   drips → the next start is on r2, the last good bundle, and decides with it;

and at the end every decision in the agent's spool is in the server's ``decisions`` table exactly
once, and no other decision of that agent is. Timings are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pyagent.agent.store import RawRecord
from tests.agent.conftest import REPO, pyagent_env
from tests.agent.plugins.conftest import serve
from tests.e2e.parts.agent import (
    body,
    bundle_status,
    decision_id,
    downloads,
    records,
    reported,
    revision_of,
    running_agent,
    write_agent_config,
)
from tests.e2e.parts.drip import DOWN_MESSAGE, drip_server
from tests.e2e.parts.evidence import Evidence, wait_for
from tests.e2e.parts.http import put_bundles
from tests.e2e.parts.names import BUNDLE, DEVICE_ID, FAST_POLLING
from tests.e2e.parts.opa import Opa, running_opa
from tests.e2e.parts.plane import Plane, start_plane
from tests.e2e.parts.signed import Signed, make_bundles
from tests.helpers.nginx import run_nginx

T = TypeVar("T")


LATENCY_LIMIT = 5.0
"""Seconds from a publish to the new revision being active, in the agent and in the OPA."""


@dataclass
class Loop:
    """What the phases share: the bundles, the control plane, the agent's state directory, the notes."""

    workdir: Path
    signed: Signed
    plane: Plane
    evidence: Evidence
    state: Path
    notes: dict[str, str] = field(default_factory=dict)

    def note(self, name: str, value: float, unit: str = "s") -> None:
        self.notes[name] = f"{value:.2f} {unit}" if unit == "s" else f"{value:g} {unit}"

    def config(self, name: str, **options: Any) -> Path:
        path = self.workdir / f"agent-{name}.yaml"
        return write_agent_config(path, self.plane, self.signed, self.state, **options)

    def wait(
        self,
        what: str,
        probe: Callable[[], T | None],
        timeout: float,
        detail: Callable[[], object] = lambda: "",
    ) -> T:
        return wait_for(what, probe, timeout, self.evidence, detail)

    def head_seq(self) -> int:
        rows = records(self.state)
        return rows[-1].seq if rows else 0

    def decided_after(self, seq: int, revision: str | None = None) -> Callable[[], RawRecord | None]:
        """A probe: the newest record after ``seq`` (made with ``revision``, when given)."""

        def probe() -> RawRecord | None:
            rows = [row for row in records(self.state) if row.seq > seq]
            if not rows or (revision is not None and revision_of(rows[-1]) != revision):
                return None
            return rows[-1]

        return probe

    def shown(self) -> dict[str, Any]:
        return reported(self.plane.device())

    def shows_refusal(self, kind: str, reason: str) -> bool:
        return shows_refusal(self.plane.device(), kind, reason)


@pytest.mark.timeout(150)
def test_policy_out_results_back(tmp_path: Path, opa_bin: str) -> None:
    began = time.monotonic()
    evidence = Evidence()
    with contextlib.ExitStack() as stack:
        signed = make_bundles(tmp_path / "bundles")
        plane = start_plane(tmp_path, signed, evidence, stack)
        loop = Loop(tmp_path, signed, plane, evidence, tmp_path / "state")
        publish_r1_then_r2(loop, opa_bin)
        refusals_from_nginx(loop)
        server_down_for_a_while(loop)
        killed_during_a_download(loop)
        every_decision_uploaded_once(loop)
    loop.note("total", time.monotonic() - began)
    print("\n" + "\n".join(f"e2e: {name}: {value}" for name, value in loop.notes.items()))


def publish_r1_then_r2(loop: Loop, opa_bin: str) -> None:
    plane, signed = loop.plane, loop.signed
    status, answer = put_bundles(plane.url, plane.admin, signed.unsigned)
    refused = (  # the server verifies
        f"bundle {signed.unsigned.name}: rejected (unsigned): no /.signatures.json, and a verification key "
        "is configured: unsigned bundles are refused"
    )
    assert (status, answer) == (400, {"code": "invalid_parameter", "message": refused})
    status, answer = put_bundles(plane.url, plane.admin, signed.rego["r1"], signed.wasm["r1"])
    assert status == 201, (status, answer)
    assert (answer["revision"], answer["serial"], answer["signed"]) == ("r1", 1, True), answer
    assert answer["targets"] == ["rego", "wasm"], answer

    config = loop.config("server")
    with (
        running_opa(opa_bin, loop.workdir, plane, signed, loop.evidence) as opa,
        running_agent(config, loop.workdir, "1-server", loop.evidence) as agent,
    ):
        # r1 everywhere: in the agent, in the OPA, and in the status each of them sent the server

        def local() -> dict[str, Any]:
            return bundle_status(loop.state)

        loop.wait("the agent to activate r1", lambda: local().get("active_revision") == "r1", 20, local)
        loop.wait(
            "the agent's status with r1 in the server",
            lambda: loop.shown()["active_revision"] == "r1",
            10,
            loop.shown,
        )
        loop.wait("the OPA to activate r1", lambda: opa.revision() == "r1", 20, opa.revision)
        loop.wait(
            "the OPA's status with r1 in the server",
            lambda: opa_reported(plane, opa) == "r1",
            10,
            lambda: plane.instance(opa.instance_id),
        )
        first = loop.wait("a decision of the agent, made with r1", loop.decided_after(0, "r1"), 10)
        loop.wait(
            "that decision in the server",
            lambda: in_history(plane.device(), decision_id(first)),
            10,
            plane.device,
        )

        # the same policy: the OPA, given the agent's policy input, decides as the agent did
        agents, opas = body(first)["decision"], opa.decide(body(first)["input"])
        assert opas["provenance"]["bundles"] == {BUNDLE: {"revision": "r1"}}, opas["provenance"]
        for key in ("organization", "violations", "warnings", "exempted", "errors"):
            assert opas["result"][key] == agents[key], (key, opas["result"][key], agents[key])
        assert bool(opas["result"]["allow"]) == agents["allow"], (opas["result"], agents)

        time.sleep(1)  # both are inside a long poll now; their plain polling would wait 20-30 s
        published = time.monotonic()
        status, answer = put_bundles(plane.url, plane.admin, signed.rego["r2"], signed.wasm["r2"])
        loop.note("publish r2 (PUT, verified by the server)", time.monotonic() - published)
        assert status == 201 and answer["revision"] == "r2", (status, answer)
        probes: dict[str, Callable[[], bool]] = {
            "agent active": lambda: local().get("active_revision") == "r2",
            "agent's status in the server": lambda: loop.shown()["active_revision"] == "r2",
            "OPA active": lambda: opa.revision() == "r2",
            "OPA's status in the server": lambda: opa_reported(plane, opa) == "r2",
        }
        seen: dict[str, float] = {}
        while len(seen) < len(probes) and time.monotonic() - published < LATENCY_LIMIT + 1:
            for name, probe in probes.items():
                if name not in seen and probe():
                    seen[name] = time.monotonic() - published
            time.sleep(0.02)
        for name, seconds in seen.items():
            loop.note(f"publish r2 -> {name}", seconds)
        late = [name for name in probes if seen.get(name, LATENCY_LIMIT) >= LATENCY_LIMIT]
        assert not late, (
            f"not on r2 within {LATENCY_LIMIT} s of the publish: {late} (on r2 after: {seen}); the agent's "
            f"bundle: {local()}; the server's view of it: {loop.shown()}; the OPA: {opa.revision()}; its "
            f"status in the server: {plane.instance(opa.instance_id)}\n{loop.evidence.tails()}"
        )

        # and both decide with r2; the OPA's decisions come back too
        newer = loop.wait("a decision of the agent, made with r2", loop.decided_after(first.seq, "r2"), 5)
        loop.wait(
            "that decision in the server",
            lambda: in_history(plane.device(), decision_id(newer)),
            10,
            plane.device,
        )
        opas = opa.decide(body(newer)["input"])
        assert opas["provenance"]["bundles"] == {BUNDLE: {"revision": "r2"}}, opas["provenance"]
        loop.wait(
            "the OPA's decision in the server's decisions table",
            lambda: opas["decision_id"] in plane.stored_decisions(opa.instance_id),
            10,
        )
        agent.stop()
    assert "stopped by SIGTERM" in agent.log.read_text()


def opa_reported(plane: Plane, opa: Opa) -> str | None:
    row = plane.instance(opa.instance_id)
    return row["bundles"].get(BUNDLE, {}).get("active_revision") if row else None


def in_history(device: dict[str, Any] | None, wanted: str) -> bool:
    return device is not None and any(h["decision_id"] == wanted for h in device["history"])


def shows_refusal(device: dict[str, Any] | None, kind: str, reason: str) -> bool:
    """The server's view of the device shows the bundle refused, as ``kind``, for ``reason``."""
    errors = reported(device)["errors"]
    if not errors or errors[0].get("bundle") != BUNDLE:
        return False
    message = str(errors[0].get("message", ""))
    return f"rejected ({kind})" in message and reason in message


#: What follows each case's reason in the whole refusal (a pattern: a digest is shown cut).
WHOLE = {
    "tampered": r" \(signed [0-9a-f]{16}[.][.][.], got [0-9a-f]{16}[.][.][.]\)",
    "unsigned": re.escape(": unsigned bundles are refused"),
    "rollback": re.escape(" (revision r2): replay of an old bundle refused"),
}


def refusals_from_nginx(loop: Loop) -> None:
    plane, signed = loop.plane, loop.signed
    root, good = loop.workdir / "www", loop.state / "bundles" / BUNDLE / "last-good-bundle.tar.gz"
    assert good.read_bytes() == signed.wasm["r2"].read_bytes()
    cases = [
        (signed.tampered, "tampered", "data.json: digest mismatch"),
        (signed.unsigned, "unsigned", "no /.signatures.json, and a verification key is configured"),
        (signed.wasm["r1"], "rollback", "build serial 1 is older than the last accepted 2"),
    ]
    serve(root, cases[0][0], mtime=1_700_000_001)
    with run_nginx(loop.workdir, static_root=root) as nginx:
        loop.evidence.add("nginx", nginx.error_log)
        static = ("static", f"bundles/{BUNDLE}.tar.gz", {"url": nginx.url})
        config = loop.config("nginx", bundles_from=static, polling=FAST_POLLING)
        with running_agent(config, loop.workdir, "2-nginx", loop.evidence) as agent:
            for index, (bundle, kind, reason) in enumerate(cases, start=1):
                if index > 1:
                    serve(root, bundle, mtime=1_700_000_000 + index)
                started = time.monotonic()
                loop.wait(
                    f"the server's view of {DEVICE_ID} to show the {kind} bundle refused ({reason})",
                    functools.partial(loop.shows_refusal, kind, reason),
                    10,
                    loop.shown,
                )
                loop.note(
                    f"nginx serves the {kind} bundle -> its refusal in the server", time.monotonic() - started
                )
                assert loop.shown()["active_revision"] == "r2", loop.shown()
                local = bundle_status(loop.state)
                assert (local["active_revision"], local["active_serial"]) == ("r2", 2), local
                refusal = local["refusals"][-1]
                label = re.escape(f"bundle {BUNDLE} ({nginx.url}/bundles/{BUNDLE}.tar.gz)")
                whole = rf"{label}: rejected \({kind}\): {re.escape(reason)}{WHOLE[kind]}"
                assert refusal["kind"] == kind and re.fullmatch(whole, refusal["reason"]), local
                assert good.read_bytes() == signed.wasm["r2"].read_bytes()
                rollout = plane.rollout()
                # on the newest published revision, it refused what nginx offered, not what was published
                assert DEVICE_ID not in [r["instance_id"] for r in rollout["refusals"]], rollout
                mine = [r for r in rollout["errors_on_newest"] if r["instance_id"] == DEVICE_ID]
                assert len(mine) == 1 and mine[0]["active_revision"] == "r2", rollout
                assert mine[0]["message"] == refusal["reason"], rollout
                plugins = loop.plane.instance(DEVICE_ID)["plugins"]  # type: ignore[index]  # OPA's: no ERROR
                assert plugins["bundle"] == {"state": "OK", "message": f"{BUNDLE}: {refusal['reason']}"}
                # the agent goes on deciding, with r2
                loop.wait(
                    f"a decision with r2 after the {kind} refusal",
                    loop.decided_after(loop.head_seq(), "r2"),
                    5,
                    lambda: [revision_of(r) for r in records(loop.state)[-3:]],
                )
            agent.stop()
    text = agent.log.read_text()
    assert f"refused, the active bundle stays: bundle {BUNDLE} ({nginx.url}" in text, text[-3000:]
    for _, _, reason in cases:
        assert reason in text, (reason, text[-3000:])


def server_down_for_a_while(loop: Loop) -> None:
    plane = loop.plane
    with running_agent(loop.config("server"), loop.workdir, "3-server-down", loop.evidence) as agent:
        loop.wait(
            "the agent back on the server, without errors (r2: 304 Not Modified)",
            lambda: loop.shown() == {"active_revision": "r2", "errors": []},
            10,
            loop.shown,
        )
        told = len(agent.log.read_bytes())
        plane.kill()
        killed, at_kill = time.monotonic(), loop.head_seq()  # later records are made with the server down

        def down() -> list[RawRecord] | None:
            rows = [row for row in records(loop.state) if row.seq > at_kill]
            return rows if len(rows) >= 3 else None

        made = loop.wait(
            "three decisions while the server is down", down, 10, lambda: records(loop.state)[-1:]
        )
        assert all(revision_of(row) == "r2" for row in made), [row.body[:300] for row in made]
        loop.wait(
            "the agent to tell of failed uploads",
            lambda: b"decision logs: " in agent.log.read_bytes()[told:],
            5,
        )
        assert b"connection refused" in agent.log.read_bytes()[told:], agent.log.read_text()[-3000:]
        pending = {row.seq for row in records(loop.state) if row.shipped_at is None}
        assert {row.seq for row in made} <= pending, (pending, [row.seq for row in made])
        loop.note("server down (SIGKILL to restart)", time.monotonic() - killed)
        restarted = time.monotonic()
        plane.start()  # the same database, the same port
        loop.note("server restart (to healthy)", time.monotonic() - restarted)
        ids = {decision_id(row) for row in made}
        loop.wait(
            "the decisions made while the server was down, in its decisions table",
            lambda: ids <= set(plane.stored_decisions(DEVICE_ID)),
            10,
            lambda: sorted(ids - set(plane.stored_decisions(DEVICE_ID))),
        )
        loop.note("server restart -> the decisions made meanwhile stored", time.monotonic() - restarted)
        agent.stop()


def killed_during_a_download(loop: Loop) -> None:
    with drip_server() as drip:
        slow = ("slow", f"bundles/{BUNDLE}.tar.gz", {"url": drip.url, "response_header_timeout_seconds": 30})
        before = loop.head_seq()
        config = loop.config("drip", bundles_from=slow, polling=FAST_POLLING)
        with running_agent(config, loop.workdir, "4-drip", loop.evidence) as agent:
            loop.wait(
                "a decision with r2, the bundle service answering 503",
                loop.decided_after(before, "r2"),
                15,
                lambda: drip.requests,
            )
            drip.mode = "drip"

            def on_disk() -> list[tuple[str, int]]:
                return [(p.name, p.stat().st_size) for p in downloads(loop.state)]

            loop.wait(
                "half a megabyte of the huge bundle on the agent's disk",
                lambda: drip.sent >= 512 * 1024 and any(size >= 256 * 1024 for _, size in on_disk()),
                10,
                lambda: (drip.sent, on_disk()),
            )
            loop.wait("a decision while it downloads", loop.decided_after(loop.head_seq(), "r2"), 5)
            agent.kill()  # SIGKILL, in the middle of the download
        drip.mode = "down"
        drip.stop.set()
        left = downloads(loop.state)
        assert left and all(p.stat().st_size > 0 for p in left), left  # the half download the crash left
        loop.note("downloaded when killed", sum(p.stat().st_size for p in left) / 2**20, "MiB")
        at_kill = loop.head_seq()

        config = loop.config("drip-restart", bundles_from=slow, polling=FAST_POLLING, interval=3600)
        with running_agent(config, loop.workdir, "5-restart", loop.evidence) as agent:
            restarted = time.monotonic()
            loop.wait(
                "the first decision after the restart, with r2",
                loop.decided_after(at_kill, "r2"),
                15,
                lambda: [revision_of(r) for r in records(loop.state)[-3:]],
            )
            loop.note("restart after the SIGKILL -> a decision with r2", time.monotonic() - restarted)
            local = bundle_status(loop.state)
            assert (local["active_revision"], local["active_serial"]) == ("r2", 2), local
            good = loop.state / "bundles" / BUNDLE / "last-good-bundle.tar.gz"
            assert good.read_bytes() == loop.signed.wasm["r2"].read_bytes()
            assert not any(p.exists() for p in left), left  # the half download is cleaned away
            loop.wait(
                f"the server's view of {DEVICE_ID}: r2 active, the bundle service's 503 told",
                lambda: (s := loop.shown())["active_revision"] == "r2" and DOWN_MESSAGE in json.dumps(s),
                10,
                loop.shown,
            )
            loop.wait(
                "every decision in the spool uploaded",
                lambda: all(row.shipped_at is not None for row in records(loop.state)),
                10,
                lambda: [row.seq for row in records(loop.state) if row.shipped_at is None],
            )
            agent.stop()


def every_decision_uploaded_once(loop: Loop) -> None:
    rows = records(loop.state)
    unsent = [
        (row.seq, row.shipped_at) for row in rows if not row.shipped_at or row.shipped_at.startswith("set")
    ]
    assert not unsent, f"records not uploaded, or set aside: {unsent}"
    spooled = [decision_id(row) for row in rows]
    stored = loop.plane.stored_decisions(DEVICE_ID)
    assert len(spooled) == len(set(spooled)), "a decision id twice in the spool"
    missing, extra = set(spooled) - set(stored), set(stored) - set(spooled)
    assert not missing and not extra and len(stored) == len(spooled), (
        f"spool: {len(spooled)} decisions; server: {len(stored)}; missing in the server: {sorted(missing)}; "
        f"in the server but not in the spool: {sorted(extra)}"
    )
    loop.note("decisions in the spool = decisions stored, each once", len(spooled), "decisions")
    verify = subprocess.run(
        [sys.executable, "-m", "pyagent", "log", "verify", "--db", str(loop.state / "spool.sqlite")],
        capture_output=True,
        text=True,
        env=pyagent_env(),
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr  # the chain is whole after the SIGKILLs
    chain = (loop.plane.device() or {}).get("chain") or {}  # the server, checking each record, says so
    assert [chain.get(k) for k in ("seq", "missing", "breaks")] == [max(r.seq for r in rows), 0, 0], chain
