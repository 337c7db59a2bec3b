"""Agent through REST: N client processes, each pyagent's ``opa`` engine deciding in a loop, against one
OPA server, for 1, 8 and 32 clients. Two OPA servers run side by side on the same files and take turns:
one as ``deploy/systemd/pyagent-opa.service`` runs it (the variables of its ``Environment=`` lines, e.g.
``GOGC``), one with Go's defaults (no Go runtime variable at all), so that the setting we ship is
measured against the one it replaces on the same machine, in the same minutes.

``python -m bench.opa_throughput client URL REPORT START_AT SECONDS`` is one client; the section starts
them."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.inputs import AT
from bench.opa import opa_server

__all__ = [
    "DEPLOYED",
    "GO_DEFAULTS",
    "OPA_UNIT",
    "measure",
    "opa_environments",
    "rate",
    "throughput_goals",
    "throughput_markdown",
    "unit_environment",
]

REPO = Path(__file__).resolve().parents[1]
OPA_UNIT = REPO / "deploy" / "systemd" / "pyagent-opa.service"
GO_RUNTIME_VARS = ("GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG")
DEPLOYED, GO_DEFAULTS = "deployed", "go-defaults"


def unit_environment(unit: Path) -> dict[str, str]:
    """The variables that a systemd unit's ``Environment=`` lines set. Only plain ``KEY=VALUE`` words
    are read; a quote or a backslash is refused, so that the bench never runs what the unit does not say."""
    env: dict[str, str] = {}
    for number, line in enumerate(unit.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("Environment="):
            continue
        for word in line.removeprefix("Environment=").split():
            key, sep, value = word.partition("=")
            if not sep or not key.isidentifier() or any(c in word for c in "\"'\\"):
                raise ValueError(f"{unit}:{number}: cannot read {word!r} (only KEY=VALUE words)")
            env[key] = value
    return env


def opa_environments(
    unit: Path = OPA_UNIT, base: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """The two OPA servers' environments: ``base`` (default: ours) without Go's runtime variables, and
    that plus the unit's ``Environment=``."""
    plain = {k: v for k, v in (os.environ if base is None else base).items() if k not in GO_RUNTIME_VARS}
    return {DEPLOYED: {**plain, **unit_environment(unit)}, GO_DEFAULTS: plain}


def _peak_rss_kb(pid: int) -> int:
    """``VmHWM`` of process ``pid``: the most memory it has held so far, in KiB (0 when unknown)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _clients(url: str, opa_pid: int, report: Path, count: int, seconds: float) -> dict[str, Any]:
    """``count`` client processes started together; with the CPU time per decision of the OPA server
    (``/proc/PID/stat`` over the run: the clients' one warm-up decision each included) and of the
    clients (each its own, over its window only)."""
    from bench.ingest_client import process_cpu_s

    opa_cpu = process_cpu_s(opa_pid)
    start_at = time.time() + 1.5 + 0.05 * count
    command = [sys.executable, "-m", "bench.opa_throughput", "client", url, str(report), str(start_at)]
    procs = [
        subprocess.Popen([*command, str(seconds)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    outputs = [(p.communicate(timeout=seconds + 120)[0] or "0 0").split() for p in procs]
    opa_cpu = process_cpu_s(opa_pid) - opa_cpu
    decisions = sum(int(out[0]) for out in outputs)
    client_cpu = sum(float(out[1]) for out in outputs)
    per_decision = 1000 / max(1, decisions)
    return {
        "clients": count,
        "decisions": decisions,
        "per_s": round(decisions / seconds, 1),
        "opa_cpu_ms": round(opa_cpu * per_decision, 3),
        "client_cpu_ms": round(client_cpu * per_decision, 3),
    }


def _client_main(url: str, report_path: str, start_at: str, seconds: str) -> None:
    from pyagent.decide import decide
    from pyagent.engines.base import EngineSettings
    from pyagent.engines.select import build_engine

    report = json.loads(Path(report_path).read_text())
    engine = build_engine(EngineSettings(engine="opa", opa_url=url))
    decide(engine, report, at=AT)  # connected and warm before the window opens
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
    """Each round: every client count against the deployed OPA, then against Go's defaults."""
    envs = opa_environments()
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(opa_server(opa, paths, workdir, env)) for name, env in envs.items()
        }
        for _ in range(rounds):
            for name, server in servers.items():
                for count in clients:
                    runs.append({"opa": name, **_clients(server.url, server.pid, report, count, seconds)})
                    log(f"opa throughput ({name}) {count} clients: {runs[-1]['per_s']} decisions/s")
        peaks = {name: _peak_rss_kb(server.pid) for name, server in servers.items()}
    return {
        "throughput": runs,
        "throughput_seconds": seconds,
        "throughput_opa": {
            name: {"env": {k: v for k, v in env.items() if k in GO_RUNTIME_VARS}, "peak_rss_kb": peaks[name]}
            for name, env in envs.items()
        },
    }


def _runs(section: Mapping[str, Any], opa: str) -> list[dict[str, Any]]:
    """The runs against one OPA (before both were measured, every run was with Go's defaults)."""
    return [t for t in section.get("throughput", []) if t.get("opa", GO_DEFAULTS) == opa]


def rate(section: Mapping[str, Any], clients: int, opa: str = DEPLOYED) -> float | None:
    """The median decisions/s of ``clients`` clients against one OPA."""
    rates = [t["per_s"] for t in _runs(section, opa) if t["clients"] == clients]
    return statistics.median(rates) if rates else None


def _ratio(section: Mapping[str, Any], opa: str) -> float | None:
    one, eight = rate(section, 1, opa), rate(section, 8, opa)
    return round(eight / one, 3) if one and eight else None


def _env_text(section: Mapping[str, Any], opa: str) -> str:
    env = section.get("throughput_opa", {}).get(opa, {}).get("env", {})
    return " ".join(f"{k}={v}" for k, v in sorted(env.items())) or "Go's defaults"


def throughput_goals(section: Mapping[str, Any]) -> list[tuple[str, str, float | None, str, float]]:
    """The goal row: the OPA that ``deploy/systemd`` ships (the default one where no run had it)."""
    opa = DEPLOYED if _runs(section, DEPLOYED) else GO_DEFAULTS
    label = f"REST throughput, 8 clients / 1 client (OPA: {_env_text(section, opa)})"
    return [("rest_throughput_8", label, _ratio(section, opa), ">=", 1.6)]


def throughput_markdown(section: Mapping[str, Any], server_eval_ms: float | None) -> list[str]:
    """The table of every run, the memory each OPA held, and what the figures say."""
    runs = section.get("throughput", [])
    if not runs:
        return []
    rows = [
        [
            _env_text(section, t.get("opa", GO_DEFAULTS)), str(t["clients"]), f"{t['decisions']:,}",
            f"{t['per_s']:,}", f"{t['opa_cpu_ms']:.3f}" if "opa_cpu_ms" in t else "-",
            f"{t['client_cpu_ms']:.3f}" if "client_cpu_ms" in t else "-",
        ]
        for t in runs
    ]  # fmt: skip
    head = [
        "OPA",
        "clients",
        "decisions",
        "decisions/s",
        "OPA CPU ms per decision",
        "clients' CPU ms per decision",
    ]
    lines = [
        "### Agent through REST",
        "",
        f"N client processes, each `decide()` on pyagent's `opa` engine in a loop for "
        f"{section.get('throughput_seconds', 0):g} s, started together, against one OPA server (shipped data "
        "with its index) on the same 2-core machine. Two OPA servers run side by side on the same files "
        "and take turns, each round 1, 8, 32 clients: one with the environment that "
        "`deploy/systemd/pyagent-opa.service` sets (`bench/opa_throughput.py` reads its `Environment=` "
        "lines), one with Go's defaults.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    return [*lines, *_standing(section, server_eval_ms)]


def _cpu(section: Mapping[str, Any], opa: str, clients: int, key: str) -> float | None:
    values = [t[key] for t in _runs(section, opa) if t["clients"] == clients and key in t]
    return statistics.median(values) if values else None


def _standing(section: Mapping[str, Any], server_eval_ms: float | None) -> list[str]:
    deployed, default = _env_text(section, DEPLOYED), _env_text(section, GO_DEFAULTS)
    numbers = {
        opa: (
            rate(section, 1, opa),
            rate(section, 8, opa),
            _ratio(section, opa),
            _cpu(section, opa, 8, "opa_cpu_ms"),
        )
        for opa in (DEPLOYED, GO_DEFAULTS)
    }
    if any(value is None for value in (*numbers[DEPLOYED], *numbers[GO_DEFAULTS])):
        return []
    peaks = {
        opa: section.get("throughput_opa", {}).get(opa, {}).get("peak_rss_kb", 0) / 1024 for opa in numbers
    }
    (d1, d8, dr, dcpu), (g1, g8, gr, gcpu) = numbers[DEPLOYED], numbers[GO_DEFAULTS]
    eval_text = f"{server_eval_ms:.3f} ms" if server_eval_ms is not None else "a fraction"
    return [
        f"Medians over the rounds: with {deployed}, one client {d1:,.0f} and eight {d8:,.0f} decisions/s "
        f"(ratio {dr:.2f}), OPA {dcpu:.2f} ms of CPU per decision at eight clients, and the OPA held at most "
        f"{peaks[DEPLOYED]:.0f} MB; with {default}, {g1:,.0f} and {g8:,.0f} (ratio {gr:.2f}), {gcpu:.2f} ms, "
        f"{peaks[GO_DEFAULTS]:.0f} MB. Of OPA's CPU per decision, its eval is {eval_text}; the rest is "
        "reading the 20 KB input (Go's `encoding/json` into `any`, then into Rego values), HTTP, and Go's "
        "collector: OPA's live heap is small and every decision's input is garbage, so at Go's default "
        "the collector runs every few dozen decisions (a CPU profile of OPA under one client, `opa run "
        "--pprof` and `go tool pprof`, had a quarter of its samples in the collector's mark workers). "
        "GOGC sets how far the heap may grow beyond what is live before the next collection (100 % by "
        "default). It matters for the ratio because alone, a client and OPA take turns on one core "
        "while the collector marks on the other, idle one; with eight clients both cores are busy and "
        "each decision costs what it costs in CPU. Beyond two clients the curve is bounded by CPU, not "
        "by OPA's concurrency; 32 clients mostly add scheduling cost. The `opa` engine keeps its "
        "connection open between decisions (`bounded_http.Session`) and writes its input with orjson.",
        "",
    ]


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "client":
        _client_main(*sys.argv[2:6])
    else:
        raise SystemExit("usage: python -m bench.opa_throughput client URL REPORT START_AT SECONDS")
