"""The goals of the issue as ratios of one run's numbers, each with pass/fail."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bench.fleet_views import views_goals
from bench.ingest_report import ingest_goals
from bench.opa_index_report import index_goals

__all__ = ["goals"]


def _median(results: dict[str, Any], key: str) -> float | None:
    value = results.get(key)
    median = value.get("median_ms") if isinstance(value, dict) else None
    return float(median) if isinstance(median, int | float) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _fleet_runs(
    results: dict[str, Any], engine: str, jobs: object = "default"
) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for run in results.get("fleet", {}).get("runs", []):
        if run["engine"] == engine and run["jobs"] == jobs and not run.get("capped"):
            out.setdefault(int(run["devices"]), []).append(run)
    return out


def _median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = sorted(float(r[key]) for r in runs if r.get(key) is not None)
    return values[len(values) // 2] if values else None


def _scale(results: dict[str, Any], kind: str, key: str) -> dict[int, float]:
    rows = results.get("scale", {}).get(kind, [])
    return {int(r[key]): float(r["median_ms"]) for r in rows if r.get("median_ms") is not None}


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal of the issue as a ratio of numbers from this run, with pass/fail."""
    embedded = _median(results, "embedded_ms")
    agent = _median(results, "rest_agent_ms")
    raw = _median(results, "rest_raw_ms")
    opa_ms = results["opa_bench_ns"] / 1e6 if results.get("opa_bench_ns") else None
    apps = _scale(results, "apps", "apps")
    banned = _scale(results, "banned_ids", "banned_ids")
    fleet = _fleet_runs(results, "embedded")
    sizes = sorted(fleet)
    rows: list[tuple[str, str, float | None, str, float]] = [
        ("embedded_vs_opa_bench", "embedded warm decision / opa bench", _ratio(embedded, opa_ms), "<=", 3),
        ("rest_agent_vs_embedded", "opa engine / embedded decision", _ratio(agent, embedded), ">=", 5),
        ("rest_agent_vs_raw", "opa engine / bare HTTP client", _ratio(agent, raw), "<=", 1.3),
        (
            "validate_vs_embedded",
            "schema validation / embedded decision",
            _ratio(_median(results, "validate_ms"), embedded),
            "<=",
            0.10,
        ),
        (
            "cold_check_vs_opa_eval",
            "cold `pyagent check` / cold `opa eval`",
            _ratio(_median(results, "cold_check_ms"), _median(results, "cold_opa_eval_ms")),
            "<=",
            1.5,
        ),
    ]
    if len(banned) >= 2:
        low, high = min(banned), max(banned)
        rows.append(
            (
                "banned_ids",
                f"{high:,} banned ids / {low:,} banned ids",
                _ratio(banned[high], banned[low]),
                "<=",
                1.2,
            )
        )
    if len(apps) >= 2:
        small, large = sorted(apps)[-2:]
        exponent = math.log(apps[large] / apps[small]) / math.log(large / small) if apps[small] > 0 else None
        rows.append(
            (
                "apps_scaling_exponent",
                f"apps growth exponent ({small:,} -> {large:,} apps; 1 = linear)",
                round(exponent, 3) if exponent is not None else None,
                "<=",
                1.1,
            )
        )
    for size in sizes:
        rate = _median_of(fleet[size], "devices_per_s")
        rows.append(
            (
                f"fleet_embedded_{size}",
                f"fleet, embedded, {size:,} devices: devices/s / 2,000",
                _ratio(rate, 2000.0),
                ">=",
                1.0,
            )
        )
    if len(sizes) >= 2:
        small_mem = _median_of(fleet[sizes[0]], "peak_tree_rss_mb")
        large_mem = _median_of(fleet[sizes[-1]], "peak_tree_rss_mb")
        rows.append(
            (
                "fleet_memory_flat",
                f"fleet peak RSS, {sizes[-1]:,} / {sizes[0]:,} devices",
                _ratio(large_mem, small_mem),
                "<=",
                1.2,
            )
        )
    rows += index_goals(results)
    rows += ingest_goals(results)
    rows += views_goals(results)
    checks: dict[str, Callable[[float, float], bool]] = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t}
    return [
        {
            "id": ident,
            "goal": text,
            "value": value,
            "op": op,
            "target": target,
            "pass": value is not None and checks[op](value, target),
        }
        for ident, text, value, op, target in rows
    ]
