"""Agent through REST: N client processes, each pyagent's ``opa`` engine deciding in a loop, against one
OPA server, for 1, 8 and 32 clients. Two OPA servers run side by side on the same files and take turns:
one as ``deploy/systemd/pyagent-opa.service`` runs it (the variables of its ``Environment=`` lines, e.g.
``GOGC``), one with Go's defaults (no Go runtime variable at all), so that the setting we ship is
measured against the one it replaces on the same machine, in the same minutes.

``python -m bench.opa_throughput client URL REPORT START_AT SECONDS`` is one client; the section starts
them."""

from __future__ import annotations

import contextlib
import http.client
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.inputs import AT
from bench.opa import GO_RUNTIME_VARS, OpaServer, go_defaults, opa_server

__all__ = [
    "DEPLOYED",
    "GO_DEFAULTS",
    "OPA_UNIT",
    "env_text",
    "go_metrics",
    "measure",
    "opa_environments",
    "rate",
    "ratio",
    "runs_of",
    "throughput_goals",
    "unit_environment",
]

REPO = Path(__file__).resolve().parents[1]
OPA_UNIT = REPO / "deploy" / "systemd" / "pyagent-opa.service"
DEPLOYED, GO_DEFAULTS = "deployed", "go-defaults"
_GO_METRICS = {  # from OPA's own /metrics (Prometheus text): Go's runtime, as OPA runs it
    "go_gc_gogc_percent": "gogc",
    "go_gc_cycles_total_gc_cycles_total": "gc_cycles",
    "go_cpu_classes_gc_total_cpu_seconds_total": "gc_cpu_s",
}


def unit_environment(unit: Path) -> dict[str, str]:
    """The variables that the ``Environment=`` lines of a systemd unit's ``[Service]`` set. Only what
    can be read exactly is read: plain ``KEY=VALUE`` words; quotes, backslashes, ``%`` specifiers, an
    empty ``Environment=`` (a reset) and ``EnvironmentFile=`` are refused, so that the bench never runs
    an OPA other than the one the unit starts."""
    env: dict[str, str] = {}
    section = ""
    for number, raw in enumerate(unit.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line
            continue
        key, sep, value = line.partition("=")
        if section != "[Service]" or not sep or line.startswith(("#", ";")):
            continue
        where = f"{unit}:{number}"
        if key.strip() == "EnvironmentFile":
            raise ValueError(f"{where}: EnvironmentFile= is not read by the bench; use Environment=")
        if key.strip() != "Environment":
            continue
        if not value.strip():
            raise ValueError(f"{where}: an empty Environment= resets the list; not read by the bench")
        for word in value.split():
            name, sep, setting = word.partition("=")
            if not sep or not name.isidentifier() or any(c in word for c in "\"'\\%"):
                raise ValueError(f"{where}: cannot read {word!r} (only KEY=VALUE words)")
            env[name] = setting
    return env


def opa_environments(
    unit: Path = OPA_UNIT, base: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """The two OPA servers' environments: ``base`` (default: ours) without Go's runtime variables
    (:func:`bench.opa.go_defaults`), and that plus the unit's ``Environment=``."""
    plain = go_defaults(base)
    return {DEPLOYED: {**plain, **unit_environment(unit)}, GO_DEFAULTS: plain}


def _peak_rss_kb(pid: int) -> int | None:
    """``VmHWM`` of process ``pid``: the most memory it has held so far, in KiB."""
    with open(f"/proc/{pid}/status", "rb") as handle:
        for line in handle:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1])
    return None


def go_metrics(host: str, port: int) -> dict[str, float]:
    """Go's collector as OPA reports it on ``GET /metrics``: its GOGC, GC cycles and GC CPU seconds
    so far (each key of ``_GO_METRICS`` that OPA reports)."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read(4 << 20).decode("utf-8", "replace")
        if response.status != 200:
            raise RuntimeError(f"OPA answered GET /metrics with HTTP {response.status}")
    finally:
        connection.close()
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in _GO_METRICS:
            found[_GO_METRICS[name]] = float(value)
    return found


def _clients(server: OpaServer, report: Path, count: int, seconds: float) -> dict[str, Any]:
    """``count`` client processes started together; with the CPU time per decision of the OPA server
    (``/proc/PID/stat`` over the run: the clients' one warm-up decision each included), of its
    collector (OPA's ``/metrics``) and of the clients (each its own, over its window only). A client
    that fails fails the run: it is never counted as zero decisions."""
    from bench.ingest_client import process_cpu_s

    opa_cpu, before = process_cpu_s(server.pid), go_metrics(server.host, server.port)
    command = [sys.executable, "-m", "bench.opa_throughput", "client", server.url, str(report), str(seconds)]
    procs: list[subprocess.Popen[str]] = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        # the window opens once every client is connected and warm (a loaded machine starts them late)
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                _, err = proc.communicate(timeout=120)
                raise RuntimeError(
                    f"a throughput client failed (exit {proc.returncode}): {err.strip()[-2000:]}"
                )
        start_at = time.time() + 0.2
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start_at}\n")
            proc.stdin.flush()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 120)
            if proc.returncode != 0 or len(out.split()) != 2:
                raise RuntimeError(
                    f"a throughput client failed (exit {proc.returncode}): {err.strip()[-2000:]}"
                )
            outputs.append(out.split())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    opa_cpu = process_cpu_s(server.pid) - opa_cpu
    after = go_metrics(server.host, server.port)
    decisions = sum(int(out[0]) for out in outputs)
    client_cpu = sum(float(out[1]) for out in outputs)
    per_decision = 1000 / max(1, decisions)
    row: dict[str, Any] = {
        "clients": count,
        "decisions": decisions,
        "per_s": round(decisions / seconds, 1),
        "opa_cpu_ms": round(opa_cpu * per_decision, 3),
        "client_cpu_ms": round(client_cpu * per_decision, 3),
    }
    if "gc_cycles" in before and "gc_cycles" in after:
        row["gc_per_1000"] = round((after["gc_cycles"] - before["gc_cycles"]) * per_decision, 1)
    if "gc_cpu_s" in before and "gc_cpu_s" in after:
        row["gc_cpu_ms"] = round((after["gc_cpu_s"] - before["gc_cpu_s"]) * per_decision, 3)
    return row


def _client_main(url: str, report_path: str, seconds: str) -> None:
    from pyagent.decide import decide
    from pyagent.engines.base import EngineSettings
    from pyagent.engines.select import build_engine

    report = json.loads(Path(report_path).read_text())
    engine = build_engine(EngineSettings(engine="opa", opa_url=url))
    decide(engine, report, at=AT)  # connected and warm before the window opens
    print("ready", flush=True)
    start_at = sys.stdin.readline()  # when the window opens, the same instant for every client
    time.sleep(max(0.0, float(start_at) - time.time()))
    end = float(start_at) + float(seconds)
    cpu = time.process_time()
    done = 0
    while time.time() < end:
        decide(engine, report, at=AT)
        done += 1
    print(done, round(time.process_time() - cpu, 4))


def measure(
    opa: str,
    paths: Sequence[Path],
    report: Path,
    workdir: Path,
    *,
    clients: Sequence[int],
    seconds: float,
    rounds: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Each round: every client count against one OPA, then against the other; the order alternates
    from round to round, so that neither is always measured first."""
    envs = opa_environments()
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(opa_server(opa, paths, workdir, env)) for name, env in envs.items()
        }
        gogc = {name: go_metrics(server.host, server.port).get("gogc") for name, server in servers.items()}
        for number in range(rounds):
            for name, server in list(servers.items())[:: 1 if number % 2 == 0 else -1]:
                for count in clients:
                    runs.append({"opa": name, **_clients(server, report, count, seconds)})
                    log(f"opa throughput ({name}) {count} clients: {runs[-1]['per_s']} decisions/s")
        peaks = {name: _peak_rss_kb(server.pid) for name, server in servers.items()}
    return {
        "throughput": runs,
        "throughput_seconds": seconds,
        "throughput_opa": {
            name: {
                "env": {k: v for k, v in env.items() if k in GO_RUNTIME_VARS},
                "gogc_reported": gogc[name],  # what OPA's Go runtime says it runs with
                "peak_rss_kb": peaks[name],
            }
            for name, env in envs.items()
        },
    }


def runs_of(section: Mapping[str, Any], opa: str) -> list[dict[str, Any]]:
    """The runs against one OPA (before both were measured, every run was with Go's defaults)."""
    return [t for t in section.get("throughput", []) if t.get("opa", GO_DEFAULTS) == opa]


def rate(section: Mapping[str, Any], clients: int, opa: str = DEPLOYED) -> float | None:
    """The median decisions/s of ``clients`` clients against one OPA."""
    rates = [t["per_s"] for t in runs_of(section, opa) if t["clients"] == clients]
    return statistics.median(rates) if rates else None


def ratio(section: Mapping[str, Any], opa: str) -> float | None:
    """Eight clients' decisions/s over one client's, against one OPA."""
    one, eight = rate(section, 1, opa), rate(section, 8, opa)
    return round(eight / one, 3) if one and eight else None


def env_text(section: Mapping[str, Any], opa: str) -> str:
    env = section.get("throughput_opa", {}).get(opa, {}).get("env", {})
    return " ".join(f"{k}={v}" for k, v in sorted(env.items())) or "Go's defaults"


def throughput_goals(section: Mapping[str, Any]) -> list[tuple[str, str, float | None, str, float]]:
    """The goal row: the OPA that ``deploy/systemd`` ships (the default one where no run had it)."""
    opa = DEPLOYED if runs_of(section, DEPLOYED) else GO_DEFAULTS
    label = f"REST throughput, 8 clients / 1 client (OPA: {env_text(section, opa)})"
    return [("rest_throughput_8", label, ratio(section, opa), ">=", 1.6)]


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "client":
        _client_main(*sys.argv[2:5])
    else:
        raise SystemExit("usage: python -m bench.opa_throughput client URL REPORT START_AT SECONDS")
