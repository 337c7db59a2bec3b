"""The "Agent through REST" part of ``docs/benchmarks.md``: every run of ``bench/opa_throughput.py``,
and what the figures say about the two OPA servers."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from bench.opa_throughput import DEPLOYED, GO_DEFAULTS, env_text, rate, ratio, runs_of

__all__ = ["throughput_markdown"]

_HEAD = [
    "OPA",
    "clients",
    "decisions",
    "decisions/s",
    "OPA CPU ms per decision",
    "of which Go's collector",
    "collections per 1,000 decisions",
    "clients' CPU ms per decision",
]


def _cell(run: Mapping[str, Any], key: str, spec: str) -> str:
    return format(run[key], spec) if run.get(key) is not None else "-"


def throughput_markdown(section: Mapping[str, Any], server_eval_ms: float | None) -> list[str]:
    """The table of every run, the memory each OPA held, and what the figures say."""
    runs = section.get("throughput", [])
    if not runs:
        return []
    rows = [
        [
            env_text(section, t.get("opa", GO_DEFAULTS)),
            str(t["clients"]),
            f"{t['decisions']:,}",
            f"{t['per_s']:,}",
            _cell(t, "opa_cpu_ms", ".3f"),
            _cell(t, "gc_cpu_ms", ".3f"),
            _cell(t, "gc_per_1000", ".1f"),
            _cell(t, "client_cpu_ms", ".3f"),
        ]
        for t in runs
    ]
    servers = sorted({t.get("opa", GO_DEFAULTS) for t in runs}, key=lambda name: name != DEPLOYED)
    counts = ", ".join(str(n) for n in sorted({t["clients"] for t in runs}))
    who = (
        "Two OPA servers run side by side on the same files and take turns (the order alternates from "
        "round to round): one with the environment that `deploy/systemd/pyagent-opa.service` sets "
        "(`bench/opa_throughput.py` reads its `Environment=` lines), one with Go's defaults (no Go "
        "runtime variable at all)."
        if len(servers) == 2
        else f"One OPA server ({env_text(section, servers[0])})."
    )
    lines = [
        "### Agent through REST",
        "",
        f"N client processes ({counts}), each `decide()` on pyagent's `opa` engine in a loop for "
        f"{section.get('throughput_seconds', 0):g} s, started together, against one `opa run --server` on "
        "the same machine over loopback TCP, loading the shipped policy and data with its index from local "
        f"files (no bundle downloads, no decision logs). {who} OPA's CPU is its process's (`/proc`); the "
        "collector's share and its collections are what OPA's Go runtime reports on `GET /metrics` "
        "(`go_cpu_classes_gc_total_cpu_seconds_total`, `go_gc_cycles_total_gc_cycles_total`).",
        "",
        "| " + " | ".join(_HEAD) + " |",
        "|" + "|".join("---" for _ in _HEAD) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    return [*lines, *_standing(section, server_eval_ms)]


def _median(section: Mapping[str, Any], opa: str, clients: int, key: str) -> float | None:
    values = [t[key] for t in runs_of(section, opa) if t["clients"] == clients and t.get(key) is not None]
    return statistics.median(values) if values else None


def _mb(section: Mapping[str, Any], opa: str) -> str:
    peak = section.get("throughput_opa", {}).get(opa, {}).get("peak_rss_kb")
    return f"{peak / 1024:.0f} MB" if peak else "?"


def _standing(section: Mapping[str, Any], server_eval_ms: float | None) -> list[str]:
    figures = {}
    for opa in (DEPLOYED, GO_DEFAULTS):
        one, eight, cpu = rate(section, 1, opa), rate(section, 8, opa), _median(section, opa, 8, "opa_cpu_ms")
        scaled = ratio(section, opa)  # None too when a run made no decision at all (a smoke run, loaded)
        if one is None or eight is None or cpu is None or scaled is None:
            return []
        gc_cpu, gcs = _median(section, opa, 8, "gc_cpu_ms"), _median(section, opa, 8, "gc_per_1000")
        collector = (
            f", of which the collector {gc_cpu:.2f} ms in {gcs:.1f} collections per 1,000 decisions"
            if gc_cpu is not None and gcs is not None
            else ""
        )
        figures[opa] = (
            f"one client {one:,.0f} and eight {eight:,.0f} decisions/s (ratio {scaled:.2f}); at "
            f"eight clients OPA used {cpu:.2f} ms of CPU per decision{collector}; it held at most "
            f"{_mb(section, opa)}"
        )
    eval_text = f"{server_eval_ms:.3f} ms" if server_eval_ms is not None else "a part"
    return [
        f"Medians over the rounds. With {env_text(section, DEPLOYED)}: {figures[DEPLOYED]}. With "
        f"{env_text(section, GO_DEFAULTS)}: {figures[GO_DEFAULTS]}. Of OPA's CPU per decision, its eval "
        f"is {eval_text}; the rest is reading the 20 KB input (Go's `encoding/json` into `any`, then into "
        "Rego values), HTTP, and Go's collector. OPA's live heap is small and every decision's input is "
        "garbage, so at Go's default the collector runs every few decisions (the collections per 1,000 "
        "decisions above); GOGC sets how far the heap may grow beyond what is live before the next "
        "collection (100 % by default), so a higher one collects less often and holds more memory under "
        "load. The collector matters for the ratio "
        "because alone, a client and OPA take turns on one core while the collector marks on the other, "
        "idle one; with eight clients both cores are busy and each decision costs what it costs in CPU. "
        "Beyond two clients the curve is bounded by CPU, not by OPA's concurrency; 32 clients mostly add "
        "scheduling cost. The `opa` engine keeps its connection open between decisions "
        "(`bounded_http.Session`) and writes its input with orjson.",
        "",
    ]
